//! The per-process state execve resets or recomputes, read and set by hand for an
//! in-process hand-off (see the parent module for when it is used).

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};

/// Whether `path` carries file capabilities (`security.capability`): exec would grant them.
pub fn has_file_caps(path: &Path) -> bool {
    let (Ok(c_path), Ok(name)) = (
        CString::new(path.as_os_str().as_bytes()),
        CString::new("security.capability"),
    ) else {
        return true;
    };
    // SAFETY: both strings are NUL-terminated; a null buffer of size 0 only asks the size.
    let size = unsafe { libc::getxattr(c_path.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) };
    size >= 0
}

/// Whether this process may read `path` (exec of an unreadable program makes it undumpable).
pub fn readable(path: &Path) -> bool {
    nix::unistd::access(path, nix::unistd::AccessFlags::R_OK).is_ok()
}

fn status_field(status: &str, field: &str) -> Option<String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
}

const SECBIT_KEEP_CAPS: libc::c_int = 1 << 4;

/// This process's /proc/self/status, read once per hand-off (each read costs the kernel a
/// walk of the whole task).
pub fn own_status() -> Result<String, String> {
    crate::procfs::read("/proc/self/status").map_err(|e| e.to_string())
}

/// One thread (exec would kill the others), no seccomp filter, no securebits, and the same
/// real, effective and saved ids (exec would change the dumpable flag and the capabilities).
/// `status`: [`own_status`].
pub fn single_threaded_without_seccomp(status: &str) -> Result<(), String> {
    if status_field(status, "Threads").as_deref() != Some("1") {
        return Err("more than one thread".into());
    }
    if status_field(status, "Seccomp").as_deref() != Some("0") {
        return Err("a seccomp filter is installed".into());
    }
    // SAFETY: PR_GET_SECUREBITS takes no pointer argument.
    let securebits = unsafe { libc::prctl(libc::PR_GET_SECUREBITS, 0, 0, 0, 0) };
    // SECBIT_KEEP_CAPS is PR_SET_KEEPCAPS, which exec clears and so does the hand-off.
    if securebits & !SECBIT_KEEP_CAPS != 0 {
        return Err("securebits are set".into());
    }
    let uids = nix::unistd::getresuid().map_err(|e| e.to_string())?;
    let gids = nix::unistd::getresgid().map_err(|e| e.to_string())?;
    if uids.real != uids.effective
        || uids.real != uids.saved
        || gids.real != gids.effective
        || gids.real != gids.saved
    {
        return Err("real, effective and saved ids differ".into());
    }
    Ok(())
}

/// Closes every close-on-exec descriptor but `keep` (what the link hands the next, owned by
/// the hand-down and made inheritable only at a real exec), as execve does; reopens stdio on
/// /dev/null if it is then closed, as every Rust program does at its start.
pub fn close_cloexec_fds(keep: &[i32]) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    // Those left open (the listing's own descriptor is in it too, closed by now: EBADF).
    let mut open: Vec<i32> = Vec::with_capacity(fds.len());
    for fd in fds.into_iter().filter(|fd| !keep.contains(fd)) {
        match fcntl(fd, FcntlArg::F_GETFD) {
            Ok(flags) if FdFlag::from_bits_truncate(flags).contains(FdFlag::FD_CLOEXEC) => {
                let _ = nix::unistd::close(fd);
            }
            Ok(_) => open.push(fd),
            Err(_) => {}
        }
    }
    // A stdio descriptor the listing showed open and that stayed open needs no second look.
    for fd in (0..3).filter(|fd| !open.contains(fd)) {
        if fcntl(fd, FcntlArg::F_GETFD) == Err(Errno::EBADF) {
            // Takes the lowest free number: the missing stdio descriptor.
            let _ = nix::fcntl::open(
                "/dev/null",
                nix::fcntl::OFlag::O_RDWR,
                nix::sys::stat::Mode::empty(),
            );
        }
    }
}

/// The signals this process catches (a handler of its own), from `SigCgt` of `status`
/// ([`own_status`]): bit `n - 1` is signal `n`.
pub fn caught_signals(status: &str) -> Result<u64, String> {
    status_field(status, "SigCgt")
        .and_then(|v| u64::from_str_radix(&v, 16).ok())
        .ok_or_else(|| "no SigCgt in /proc/self/status".into())
}

/// Resets every caught signal (`caught`: [`caught_signals`], read with the plan) to its
/// default, as execve does (ignored ones stay ignored, the mask stays), then SIGPIPE ignored
/// as every Rust program's start sets it. SIGSEGV and SIGBUS keep the Rust runtime's
/// stack-overflow handler, which a fresh start installs too. Only the caught ones are
/// touched: the kernel's list is exact, so asking each of the 64 signals is not needed.
pub fn reset_signals(caught: u64) -> Result<(), String> {
    for sig in 1..=libc::SIGRTMAX() {
        if caught & (1u64 << (sig - 1)) == 0
            || [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, libc::SIGBUS].contains(&sig)
        {
            continue;
        }
        // SAFETY: sigaction is plain data; the zeroed action is SIG_DFL with an empty mask
        // and no flags.
        let default: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: sets the default action for a catchable signal; a number the C library
        // reserves for itself fails with EINVAL and is left to it.
        if unsafe { libc::sigaction(sig, &default, std::ptr::null_mut()) } != 0 {
            if Errno::last() == Errno::EINVAL {
                continue;
            }
            return Err(format!("signal {sig}: {}", Errno::last()));
        }
    }
    // SAFETY: SIG_IGN for SIGPIPE, as std's runtime sets it before main.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    Ok(())
}

/// Dumpable, as execve leaves a process whose ids did not change and whose program it may
/// read (both checked before).
pub fn set_dumpable() -> Result<(), String> {
    nix::sys::prctl::set_dumpable(true).map_err(|e| format!("dumpable: {e}"))
}

/// A process's capability sets, as execve reads and writes them (capabilities(7)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapSets {
    /// Effective.
    pub effective: u64,
    /// Permitted.
    pub permitted: u64,
    /// Inheritable.
    pub inheritable: u64,
    /// Ambient.
    pub ambient: u64,
    /// Bounding.
    pub bounding: u64,
}

impl CapSets {
    /// This process's sets now; `status`: this process's /proc/self/status (for the ambient
    /// and bounding sets).
    pub fn current(status: &str) -> Result<CapSets, String> {
        let (effective, permitted, inheritable) =
            crate::sys::process::capabilities().map_err(|e| format!("capget: {e}"))?;
        let mask = |field: &str| {
            status_field(status, field)
                .and_then(|v| u64::from_str_radix(&v, 16).ok())
                .ok_or(format!("no {field} in /proc/self/status"))
        };
        Ok(CapSets {
            effective,
            permitted,
            inheritable,
            ambient: mask("CapAmb")?,
            bounding: mask("CapBnd")?,
        })
    }

    /// The sets after execve of a program that has no file capabilities and is not
    /// set-user-ID or set-group-ID, run by a process whose real, effective and saved ids are
    /// equal and whose securebits are clear (all checked before), `root` when that uid is 0 in
    /// its user namespace. The kernel's rules (security/commoncap.c) with the file's sets
    /// empty, except that root's program counts as having every file capability:
    /// - ambient: kept (only file capabilities or a set-id change clear it);
    /// - permitted: root: bounding | inheritable | ambient; else ambient;
    /// - effective: root: the new permitted; else the ambient set;
    /// - inheritable and bounding: unchanged.
    pub fn after_execve(self, root: bool) -> CapSets {
        let permitted = match root {
            true => self.bounding | self.inheritable | self.ambient,
            false => self.ambient,
        };
        CapSets {
            effective: permitted,
            permitted,
            ..self
        }
    }
}

/// The capabilities execve would give this (non-set-id, capability-free) program.
#[derive(Debug)]
pub struct ExecCaps {
    after: CapSets,
}

impl ExecCaps {
    /// [`CapSets::after_execve`] for this process (root: euid 0 in its user namespace). `Err`
    /// when that is more than this process holds (exec may raise capabilities; this may not).
    pub fn compute(status: &str) -> Result<ExecCaps, String> {
        let now = CapSets::current(status)?;
        let after = now.after_execve(nix::unistd::geteuid().is_root());
        if after.permitted & !now.permitted != 0 {
            return Err(format!(
                "execve would raise the permitted capabilities ({:#x} to {:#x})",
                now.permitted, after.permitted
            ));
        }
        Ok(ExecCaps { after })
    }

    /// Sets them (the ambient set is what it was: a subset of the new permitted set, so
    /// capset keeps it).
    pub fn apply(&self) -> Result<(), String> {
        let CapSets {
            effective,
            permitted,
            inheritable,
            ..
        } = self.after;
        crate::sys::process::set_capabilities(effective, permitted, inheritable)
            .map_err(|e| format!("capset: {e}"))?;
        Ok(())
    }
}

/// `struct prctl_mm_map` (linux/prctl.h).
#[repr(C)]
struct MmMap {
    start_code: u64,
    end_code: u64,
    start_data: u64,
    end_data: u64,
    start_brk: u64,
    brk: u64,
    start_stack: u64,
    arg_start: u64,
    arg_end: u64,
    env_start: u64,
    env_end: u64,
    auxv: *mut u64,
    auxv_size: u32,
    exe_fd: u32,
}

/// The parts of the memory map that only an exec sets (a fork copies them).
#[derive(Clone, Copy)]
struct Layout {
    start_code: u64,
    end_code: u64,
    start_data: u64,
    end_data: u64,
    start_brk: u64,
    start_stack: u64,
}

/// This process image's [`Layout`], read from /proc/self/stat at its first hand-off only:
/// a chain hands off up to four times in one process, and a fork (pidns's container
/// process) has its parent's layout.
fn fixed_layout() -> Result<Layout, String> {
    static LAYOUT: std::sync::OnceLock<Layout> = std::sync::OnceLock::new();
    if let Some(layout) = LAYOUT.get() {
        return Ok(*layout);
    }
    let stat = crate::procfs::read("/proc/self/stat").map_err(|e| e.to_string())?;
    let after_comm = stat.rsplit_once(')').ok_or("unreadable /proc/self/stat")?.1;
    let fields: Vec<u64> = after_comm
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // /proc/PID/stat field N (1-based) is fields[N - 3] here.
    let field = |n: usize| fields.get(n - 3).copied().ok_or("short /proc/self/stat");
    let layout = Layout {
        start_code: field(26)?,
        end_code: field(27)?,
        start_data: field(45)?,
        end_data: field(46)?,
        start_brk: field(47)?,
        start_stack: field(28)?,
    };
    Ok(*LAYOUT.get_or_init(|| layout))
}

const PR_SET_MM: libc::c_int = 35;
const PR_SET_MM_MAP: libc::c_ulong = 14;

/// Makes `/proc/PID/cmdline` read `argv` and `/proc/PID/environ` the current environment, as
/// after an exec: both are laid out in a buffer that lives as long as the process, and the
/// memory map is rewritten with `PR_SET_MM_MAP` (no privilege needed: the exe link, the
/// auxiliary vector and the data limits stay as they are).
pub fn set_cmdline(argv: &[OsString]) -> Result<(), String> {
    let layout = fixed_layout()?;
    let args = super::nul_joined(argv.iter().map(OsString::as_os_str));
    let env = super::environment();
    let env = super::nul_joined(env.iter().map(OsString::as_os_str));
    let area: &'static mut [u8] = [args.as_slice(), env.as_slice()].concat().leak();
    let start = area.as_ptr() as u64;
    let brk = crate::sys::process::program_break();
    let map = MmMap {
        start_code: layout.start_code,
        end_code: layout.end_code,
        start_data: layout.start_data,
        end_data: layout.end_data,
        start_brk: layout.start_brk,
        brk,
        start_stack: layout.start_stack,
        arg_start: start,
        arg_end: start + args.len() as u64,
        env_start: start + args.len() as u64,
        env_end: start + area.len() as u64,
        auxv: std::ptr::null_mut(),
        auxv_size: 0,
        exe_fd: u32::MAX,
    };
    // SAFETY: `map` is a complete prctl_mm_map of the size passed; the argument and
    // environment areas it names are leaked, so they stay valid for the process's life.
    let rc = unsafe {
        libc::prctl(
            PR_SET_MM,
            PR_SET_MM_MAP,
            &map as *const MmMap,
            std::mem::size_of::<MmMap>(),
            0,
        )
    };
    if rc != 0 {
        return Err(format!("PR_SET_MM_MAP: {}", Errno::last()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::CapSets;

    const FULL: u64 = (1 << 41) - 1;

    fn sets(effective: u64, permitted: u64, inheritable: u64, ambient: u64) -> CapSets {
        CapSets {
            effective,
            permitted,
            inheritable,
            ambient,
            bounding: FULL,
        }
    }

    #[test]
    fn root_after_a_new_user_namespace_keeps_everything() {
        let now = sets(FULL, FULL, 0, 0);
        assert_eq!(now.after_execve(true), now);
    }

    #[test]
    fn root_gets_the_bounding_set_and_keeps_its_ambient_set() {
        let now = CapSets {
            bounding: 0b1100,
            ..sets(0b1, 0b1111, 0b10, 0b10)
        };
        let after = now.after_execve(true);
        assert_eq!((after.permitted, after.effective), (0b1110, 0b1110));
        assert_eq!((after.ambient, after.inheritable), (0b10, 0b10));
    }

    #[test]
    fn another_uid_keeps_only_its_ambient_set() {
        assert_eq!(sets(FULL, FULL, 0, 0).after_execve(false), sets(0, 0, 0, 0));
        let kept = sets(FULL, FULL, FULL, FULL);
        assert_eq!(kept.after_execve(false), kept);
    }
}
