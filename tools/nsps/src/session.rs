//! What a joined process leaves of its caller's session, as mntns's entry does for a container
//! (common::terminal, common::keyring): the controlling terminal (the seccomp filter does the
//! rest) and the session keyring. No opt-out: runc exec has none either.

use common::keyring::{self, Keyring};
use common::terminal::{self, Detached};
use common::{debug, Fatal};

/// Returns whether this process leads its session (it keeps its terminal: its child gives it
/// up instead).
pub fn leave_callers_session() -> Result<bool, Fatal> {
    let detached = debug::step("give up the controlling terminal", terminal::detach)
        .map_err(|e| Fatal::from(e).context("unable to give up the controlling terminal"))?;
    let keyring = debug::step("new session keyring", keyring::join_new_session)
        .map_err(|e| Fatal::from(e).context("unable to join a new session keyring"))?;
    if keyring == Keyring::Unavailable {
        debug::note("no kernel keys here: the caller's keyring is out of reach");
    }
    Ok(detached == Detached::SessionLeader)
}
