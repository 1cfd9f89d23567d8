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
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
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
    IDMAP_VAR,
    crate::sysfs::VAR,
    crate::supervisor::FD_VAR,
];
/// The idmapped trees `userns --idmap` hands mntns: one `FD PATH` line per tree.
pub const IDMAP_VAR: &str = "NSCHAIN_IDMAP";
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
    Path::new(program).file_name().is_some_and(|name| {
        name == crate::inprocess::MULTI_CALL || LINKS.iter().any(|l| OsStr::new(l) == name)
    })
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

/// One hand-down as a link holds it.
#[derive(Debug, Default)]
pub enum Slot<T> {
    /// Nothing handed down.
    #[default]
    Empty,
    /// Inherited across a real exec: the variable's text as common read it at the start of
    /// this link (any fds it names are open, inherited, and not this link's to close unless
    /// it consumes them). Only a consumer parses and checks it.
    Inherited(OsString),
    /// Made by a link of this process (an in-process hand-off keeps it as it is).
    Made(T),
}

impl<T> Slot<T> {
    /// Takes the value, leaving [`Slot::Empty`].
    pub fn take(&mut self) -> Slot<T> {
        std::mem::take(self)
    }

    /// Whether something is handed down.
    pub fn is_set(&self) -> bool {
        !matches!(self, Slot::Empty)
    }
}

/// What the earlier links hand this one, and what it hands on: typed values owned by the
/// link's [`crate::Context`]. Their environment form exists only at a real exec boundary:
/// common parses it at a link's start ([`Handdown::from_env`], which removes the variables)
/// and writes it right before a real exec of the next link ([`Handdown::export`]); before
/// COMMAND's exec nothing is written and every fd is closed ([`Handdown::shed`]). An
/// in-process hand-off moves the value to the next link's context.
#[derive(Debug, Default)]
pub struct Handdown {
    /// `NSCHAIN_IDMAP`: idmapped trees (path, detached mount), userns `--idmap` → mntns.
    pub idmap: Slot<Vec<(std::path::PathBuf, OwnedFd)>>,
    /// `NSCHAIN_AFTER_FD`: the socket to the process that waits outside (pidns's monitor, or
    /// the chain's supervisor, crate::sup) → pidns's hand-over, mntns `--rm` and `--tty`.
    pub after: Slot<OwnedFd>,
    /// `NSCHAIN_SYSFS_FD`: a sysfs of the container's network namespace, netns → mntns.
    pub sysfs: Slot<OwnedFd>,
    /// `NSCHAIN_NET`: the network stack netns set up, → mntns (resolv.conf).
    pub net: Slot<String>,
}

impl Handdown {
    /// At a link's start after a real exec: takes the chain's variables out of the
    /// environment. The fd variables are taken whoever set them (a consumer refuses what is
    /// not the chain's); `NSCHAIN_NET` only when the chain exported it.
    pub fn from_env() -> Handdown {
        let listed = listed();
        let idmap = inherited(IDMAP_VAR);
        let after = inherited(crate::after::VAR);
        let sysfs = inherited(crate::sysfs::VAR);
        let net = match std::env::var_os(NET_VAR) {
            Some(value) if listed.iter().any(|v| v == NET_VAR) => {
                unexport(NET_VAR);
                Slot::Inherited(value)
            }
            _ => Slot::Empty,
        };
        Handdown {
            idmap,
            after,
            sysfs,
            net,
        }
    }

    /// The fds this link holds for the next one (kept open by an in-process hand-off).
    pub fn fds(&self) -> Vec<RawFd> {
        let mut fds = Vec::new();
        if let Slot::Made(trees) = &self.idmap {
            fds.extend(trees.iter().map(|(_, fd)| fd.as_raw_fd()));
        }
        for slot in [&self.after, &self.sysfs] {
            if let Slot::Made(fd) = slot {
                fds.push(fd.as_raw_fd());
            }
        }
        fds
    }

    /// Right before a real exec of the next link: writes the variables and lets their fds be
    /// inherited.
    pub fn export(&self) -> std::io::Result<()> {
        match &self.idmap {
            Slot::Empty => {}
            Slot::Inherited(text) => export(IDMAP_VAR, text),
            Slot::Made(trees) => {
                let mut lines = Vec::new();
                for (path, fd) in trees {
                    crate::handed_fd::inherit(fd.as_fd())?;
                    let mut line = fd.as_raw_fd().to_string().into_bytes();
                    line.push(b' ');
                    line.extend_from_slice(path.as_os_str().as_bytes());
                    lines.push(line);
                }
                export(IDMAP_VAR, OsStr::from_bytes(&lines.join(&b'\n')));
            }
        }
        for (var, slot) in [
            (crate::after::VAR, &self.after),
            (crate::sysfs::VAR, &self.sysfs),
        ] {
            match slot {
                Slot::Empty => {}
                Slot::Inherited(text) => export(var, text),
                Slot::Made(fd) => {
                    crate::handed_fd::inherit(fd.as_fd())?;
                    export(var, fd.as_raw_fd().to_string());
                }
            }
        }
        match &self.net {
            Slot::Empty => {}
            Slot::Inherited(text) => export(NET_VAR, text),
            Slot::Made(stack) => export(NET_VAR, stack),
        }
        Ok(())
    }

    /// Before COMMAND's exec: nothing is written, the fds made here are closed and the
    /// inherited ones closed at the exec.
    pub fn shed(&mut self) {
        let texts = [
            inherited_text(&self.idmap),
            inherited_text(&self.after),
            inherited_text(&self.sysfs),
        ];
        for text in texts.into_iter().flatten() {
            for fd in fds_of(&text) {
                // Not ours to close now (a link may still hold it): gone at the exec.
                let _ = fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
            }
        }
        *self = Handdown::default();
    }
}

/// Takes `var` out of the environment as an inherited hand-down.
fn inherited<T>(var: &str) -> Slot<T> {
    match std::env::var_os(var) {
        Some(value) => {
            unexport(var);
            Slot::Inherited(value)
        }
        None => Slot::Empty,
    }
}

fn inherited_text<T>(slot: &Slot<T>) -> Option<OsString> {
    match slot {
        Slot::Inherited(text) => Some(text.clone()),
        _ => None,
    }
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
