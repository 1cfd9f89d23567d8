//! The exec of every mode: first a sysfs of the new network namespace for a later mntns
//! (`NSCHAIN_SYSFS_FD`, common::sysfs). Under a later `userns`, mntns may not create one for a
//! network namespace the host's user namespace owns; netns, still host root here, can.

use std::ffi::OsString;

use common::handdown::Slot;
use common::{Context, Fatal, Next};

/// Hands down a sysfs of this network namespace (when a mntns follows), then execs COMMAND.
pub fn exec(command: Vec<OsString>, cx: &mut Context) -> Result<Next, Fatal> {
    // An earlier link's sysfs (another network namespace) is closed either way.
    let _ = common::sysfs::take(cx.handdown().sysfs.take());
    if let Some(fd) = common::sysfs::make(&command) {
        cx.handdown().sysfs = Slot::Made(fd);
    }
    Ok(Next::Exec(command))
}
