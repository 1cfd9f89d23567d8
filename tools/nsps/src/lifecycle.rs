//! `nsps stop|kill|wait|rm -f`: a chain's life from another shell, like `docker stop`.
//!
//! The signals go to the payload's init: the container's PID 1 (pidns's init forwards them to
//! the command), else the chain's first process that still holds one of its namespaces. A
//! chain has ended when none of its namespaces is held any more and its first process (the
//! supervisor of a detached chain) is gone: `stop` and `wait` return only then, when
//! everything the chain made has been released by the processes that release it.

use std::time::{Duration, Instant};

use common::supervisor;
use common::{chain, Fatal};

/// How often the chain is looked at while waiting for its end.
const POLL: Duration = Duration::from_millis(50);

/// A signal given by name (`TERM`, `SIGTERM`, any case) or number (1 to SIGRTMAX).
pub fn parse_signal(text: &str) -> Result<i32, String> {
    let bad = || format!("invalid signal '{text}': use a name (TERM, SIGKILL) or a number");
    if let Ok(n) = text.parse::<i32>() {
        return match (1..=libc::SIGRTMAX()).contains(&n) {
            true => Ok(n),
            false => Err(bad()),
        };
    }
    let upper = text.to_ascii_uppercase();
    let name = match upper.strip_prefix("SIG") {
        Some(_) => upper,
        None => format!("SIG{upper}"),
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| bad())
}

/// Parses `-t SECS`: whole seconds, at most a day.
pub fn parse_timeout(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(n) if n <= 86_400 => Ok(n),
        _ => Err(format!(
            "invalid timeout '{text}': use whole seconds, 0 to 86400"
        )),
    }
}

/// The host pid the chain's signals go to, or an error when it is not running.
fn target(name: &str) -> Result<u32, Fatal> {
    let container = crate::inspect::container(name)?;
    Ok(container.pid)
}

fn send(pid: u32, signal: i32) -> Result<(), Fatal> {
    // SAFETY: kill(2) only sends a signal; a pid that is gone gives ESRCH.
    let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
    match nix::errno::Errno::result(rc) {
        Ok(_) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(Fatal::from(e).context(format!("unable to signal process {pid}"))),
    }
}

/// Whether a chain of this name is known: running, or ended but kept (detached).
fn known(name: &str) -> bool {
    chain::live_pid(name).is_some() || chain::dir(name).is_dir()
}

fn unknown(name: &str) -> Fatal {
    Fatal::new(format!("no chain named {name}")).with_hint("nsps --all lists the chains")
}

/// Blocks until the chain has ended; false if `deadline` came first.
pub(crate) fn wait_until_ended(name: &str, deadline: Option<Instant>) -> bool {
    loop {
        if chain::has_ended(name) {
            return true;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// `nsps stop NAME [-t SECS]`: SIGTERM to the payload's init, SIGKILL after the timeout; returns
/// once the chain has ended. A chain already stopped is not an error.
pub fn stop(name: &str, seconds: u64) -> Result<u8, Fatal> {
    if chain::has_ended(name) {
        return match known(name) {
            true => Ok(0),
            false => Err(unknown(name)),
        };
    }
    let pid = match target(name) {
        Ok(pid) => pid,
        // It ended meanwhile.
        Err(_) if chain::has_ended(name) => return Ok(0),
        Err(fatal) => return Err(fatal),
    };
    send(pid, libc::SIGTERM)?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    if !wait_until_ended(name, Some(deadline)) {
        // The payload's init may have changed (it was the first link, now it is gone).
        let pid = target(name).unwrap_or(pid);
        send(pid, libc::SIGKILL)?;
        wait_until_ended(name, None);
    }
    println!("{name}");
    Ok(0)
}

/// `nsps kill NAME [-s SIGNAL]`: one signal to the payload's init.
pub fn kill(name: &str, signal: i32) -> Result<u8, Fatal> {
    send(target(name)?, signal)?;
    println!("{name}");
    Ok(0)
}

/// `nsps wait NAME`: blocks until the chain has ended, then exits with its status (the shell
/// encoding: 128+s for a signal). A chain started in the foreground keeps no status: its
/// status is its caller's, and this returns 0 with a warning.
pub fn wait(name: &str) -> Result<u8, Fatal> {
    if !known(name) {
        return Err(unknown(name));
    }
    wait_until_ended(name, None);
    match supervisor::read_status(name).and_then(|s| s.exit_code) {
        Some(code) => {
            println!("{code}");
            Ok(code)
        }
        None => {
            common::report::warning(format_args!(
                "chain {name} ran in the foreground: its exit status went to its caller"
            ));
            Ok(0)
        }
    }
}

/// `nsps rm [-f] NAME`: with `-f`, kills a running chain first (SIGKILL, like `docker rm
/// -f`); then deletes what it kept (layer, log, status, registration).
pub fn rm(name: &str, force: bool) -> Result<u8, Fatal> {
    if force && !chain::has_ended(name) {
        if let Ok(pid) = target(name) {
            send(pid, libc::SIGKILL)?;
        }
        wait_until_ended(name, None);
    }
    crate::inspect::remove(name)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(parse_signal("TERM"), Ok(libc::SIGTERM));
        assert_eq!(parse_signal("sigkill"), Ok(libc::SIGKILL));
        assert_eq!(parse_signal("SIGHUP"), Ok(libc::SIGHUP));
        assert_eq!(parse_signal("10"), Ok(10));
        for bad in ["", "0", "-1", "65", "SIGNOPE", "TERM9", "9x"] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timeouts_are_whole_seconds() {
        assert_eq!(parse_timeout("0"), Ok(0));
        assert_eq!(parse_timeout("10"), Ok(10));
        for bad in ["", "-1", "1.5", "x", "86401"] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
    }
}
