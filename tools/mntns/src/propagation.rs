//! Mount propagation of the new namespace (`--propagation`).

use common::{debug, Fatal};
use nix::mount::{mount, MsFlags};

use crate::volume::Propagation;

fn flags(mode: Propagation) -> Option<MsFlags> {
    match mode {
        Propagation::Private => Some(MsFlags::MS_PRIVATE),
        Propagation::Slave => Some(MsFlags::MS_SLAVE),
        Propagation::Shared => Some(MsFlags::MS_SHARED),
        Propagation::Unbindable => Some(MsFlags::MS_UNBINDABLE),
        Propagation::Unchanged => None,
    }
}

/// Applies `mode` recursively to `path` (`/` before setup, the new root after pivot_root).
pub fn apply(path: &str, mode: Propagation) -> Result<(), Fatal> {
    let Some(flag) = flags(mode) else {
        return Ok(());
    };
    debug::step(format_args!("propagation {mode:?} on {path}"), || {
        mount(None::<&str>, path, None::<&str>, flag | MsFlags::MS_REC, None::<&str>)
    })
    .map_err(|e| {
        Fatal::from(e)
            .context(format!("unable to change the mount propagation of {path}"))
            .with_hint("a mount namespace needs / to be a mount point: mntns does not work inside a chroot")
    })
}

/// The propagation used while a new root is being set up: never shared, so that nothing
/// mounted during setup can reach the host (pivot_root also refuses shared mounts).
pub fn for_setup(mode: Propagation) -> Propagation {
    match mode {
        Propagation::Slave => Propagation::Slave,
        _ => Propagation::Private,
    }
}
