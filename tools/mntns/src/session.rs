//! What a container leaves of its caller's session before COMMAND runs: the controlling
//! terminal (common::terminal; the seccomp filter does the rest) and the session keyring
//! (common::keyring; `--no-new-keyring` keeps it).

use common::keyring::{self, Keyring};
use common::terminal::{self, Detached};
use common::{debug, Fatal};

pub fn leave_callers_session(new_keyring: bool) -> Result<(), Fatal> {
    let detached = debug::step("give up the controlling terminal", terminal::detach)
        .map_err(|e| Fatal::from(e).context("unable to give up the controlling terminal"))?;
    if detached == Detached::SessionLeader {
        debug::note("leads its own session: keeps its terminal");
    }
    if new_keyring {
        let keyring =
            debug::step("new session keyring", keyring::join_new_session).map_err(|e| {
                Fatal::from(e)
                    .context("unable to join a new session keyring")
                    .with_hint("--no-new-keyring keeps the caller's session keyring instead")
            })?;
        if keyring == Keyring::Unavailable {
            debug::note("no kernel keys here: the caller's keyring is out of reach");
        }
    }
    Ok(())
}
