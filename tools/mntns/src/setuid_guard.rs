//! The setuid guard's part in mntns (common::setuid_guard says why and holds the filter,
//! which `nsps exec` installs too): the capabilities COMMAND loses and the notice.

use caps::Capability;

pub use common::setuid_guard::install;

use crate::entry::{CapSpec, Entry};

/// What `mntns` says once on stderr when `shared` (host paths) are guarded.
pub fn notice(shared: &[String]) -> String {
    format!(
        "other users of the host can reach {}: this container cannot make setuid or setgid files, file capabilities or device nodes (seccomp), and has no CAP_FSETID or CAP_SETFCAP; to lift this, keep it under a directory only root can enter (chmod 700 a parent)",
        shared.join(", ")
    )
}

/// Takes CAP_FSETID and CAP_SETFCAP out of what COMMAND gets, even when `--cap-add` asks
/// for them: only a root out of others' reach lifts the guard.
pub fn strip_caps(entry: &mut Entry) {
    for cap in [Capability::CAP_FSETID, Capability::CAP_SETFCAP] {
        entry.cap_add.retain(|c| *c != CapSpec::One(cap));
        entry.cap_drop.push(CapSpec::One(cap));
    }
}
