//! The exec of every mode: first a sysfs of the new network namespace for a later mntns
//! (`NSCHAIN_SYSFS_FD`, common::sysfs). Under a later `userns`, mntns may not create one for a
//! network namespace the host's user namespace owns; netns, still host root here, can.

use std::ffi::OsString;

use common::sysfs::HandDown;
use common::{Context, Fatal, Next};

/// Hands down a sysfs of this network namespace (when a mntns follows), then execs COMMAND.
pub fn exec(command: Vec<OsString>, cx: &mut Context) -> Result<Next, Fatal> {
    let sysfs = HandDown::make(&command);
    sysfs.export().map_err(|e| {
        Fatal::from(e).context("unable to hand down the sysfs of the network namespace")
    })?;
    // The fd named in the variable stays open for the next program.
    cx.hold(sysfs);
    Ok(Next::Exec(command))
}
