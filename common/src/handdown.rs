//! What one link hands the next, and never COMMAND (DESIGN.md §1).
//!
//! Links pass settings down the chain in `NSCHAIN_*` variables (the state directories, the
//! chain's name, the network stack) and some pass descriptors (`NSCHAIN_AFTER_FD`,
//! `NSCHAIN_IDMAP`). Every variable a link sets goes through [`export`], which also lists its
//! name in `NSCHAIN_HANDED`; at the exec, a link whose next program is not an nschain link
//! (its basename is not one of [`LINKS`]) removes every listed variable, the list itself,
//! and makes the listed descriptors close-on-exec ([`shed_for_payload`]). So COMMAND receives
//! neither the chain's variables nor its fds, whichever link is last, and whether or not a
//! consumer came; a variable the caller set himself (`NSCHAIN_RUN_DIR=... netns ...`) is his
//! and reaches COMMAND as given.
//!
//! The program name decides because it is all a link knows of the next one; wrappers
//! (`env`, `sudo`, `sh -c`) between two links therefore cut the chain's hand-downs, as they
//! would in any case cut a descriptor chain.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};

/// The variable listing what the chain exported.
pub const LIST_VAR: &str = "NSCHAIN_HANDED";
/// The network stack of a namespace netns made (`loopback`, `bridge`, `slirp4netns`,
/// `pasta`, `join`): mntns writes /etc/resolv.conf from it.
pub const NET_VAR: &str = "NSCHAIN_NET";
/// Variables whose value names descriptors: one per line, each line starting with the fd.
const FD_VARS: [&str; 4] = [
    crate::after::VAR,
    "NSCHAIN_IDMAP",
    crate::sysfs::VAR,
    crate::supervisor::FD_VAR,
];
/// The programs that are links of a chain (and take what the previous link handed down).
pub const LINKS: [&str; 8] = [
    "mntns", "utsns", "ipcns", "pidns", "netns", "userns", "timens", "cgroupns",
];

fn listed() -> Vec<String> {
    std::env::var(LIST_VAR)
        .unwrap_or_default()
        .split(',')
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Sets `var` for the next links and lists it as the chain's. A value the caller set
/// himself, unchanged, stays his.
pub fn export(var: &str, value: impl AsRef<OsStr>) {
    let value = value.as_ref();
    let mut list = listed();
    let present = std::env::var_os(var);
    if present.as_deref() == Some(value) && !list.iter().any(|v| v == var) {
        return;
    }
    std::env::set_var(var, value);
    if !list.iter().any(|v| v == var) {
        list.push(var.to_owned());
        std::env::set_var(LIST_VAR, list.join(","));
    }
}

/// Removes `var` (a consumer took it).
pub fn unexport(var: &str) {
    std::env::remove_var(var);
    let list: Vec<String> = listed().into_iter().filter(|v| v != var).collect();
    if list.is_empty() {
        std::env::remove_var(LIST_VAR);
    } else {
        std::env::set_var(LIST_VAR, list.join(","));
    }
}

/// Whether `program` (`argv[0]` of the next exec) is a link of the chain.
pub fn is_link(program: &OsStr) -> bool {
    Path::new(program)
        .file_name()
        .is_some_and(|name| LINKS.iter().any(|l| OsStr::new(l) == name))
}

/// Before COMMAND's exec: drops every variable the chain exported and closes (at the exec)
/// the descriptors they name.
pub fn shed_for_payload() {
    for var in listed() {
        if FD_VARS.contains(&var.as_str()) {
            if let Some(value) = std::env::var_os(&var) {
                for fd in fds_of(&value) {
                    // Not ours to close now (a link may still hold it): gone at the exec.
                    let _ = fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
                }
            }
        }
        std::env::remove_var(&var);
    }
    std::env::remove_var(LIST_VAR);
}

fn fds_of(value: &OsString) -> Vec<i32> {
    value
        .as_bytes()
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let first = line.split(|&b| b == b' ').next()?;
            std::str::from_utf8(first).ok()?.parse::<i32>().ok()
        })
        .filter(|fd| *fd > 2)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_known_by_their_basename() {
        assert!(is_link(OsStr::new("mntns")));
        assert!(is_link(OsStr::new("/usr/local/bin/pidns")));
        assert!(is_link(OsStr::new("./target/debug/userns")));
        assert!(!is_link(OsStr::new("sh")));
        assert!(!is_link(OsStr::new("/bin/mntns-wrapper")));
        assert!(!is_link(OsStr::new("env")));
    }

    #[test]
    fn descriptors_are_read_from_every_line() {
        assert_eq!(fds_of(&OsString::from("11")), vec![11]);
        assert_eq!(fds_of(&OsString::from("5 /\n7 /srv/a b\n")), vec![5, 7]);
        assert!(fds_of(&OsString::from("1\nx")).is_empty());
    }
}
