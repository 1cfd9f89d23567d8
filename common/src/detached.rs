//! Starting a detached helper cheaply (the cleanup watchers of netns and cgroupns): it must
//! not be a child of this process (which execs into the container, whose program never
//! expects it), so it is started by a short-lived intermediate and re-parented to init (or
//! the nearest subreaper).
//!
//! A double `fork()` copies this process's page tables twice and waits for both; instead the
//! intermediate is a `clone(CLONE_VM | CLONE_VFORK)` child (no copy: it runs on a small stack
//! of its own while this process waits), which makes one raw fork (the helper) and exits at
//! once. The helper, alone in its copy of the memory, starts a new session, places its
//! descriptors, closes every other one and execs; nobody waits for that exec.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

/// Everything the helper needs, prepared before the clone (nothing is allocated after it).
struct Context {
    exe: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    devnull: *const libc::c_char,
    keep_stderr: bool,
    /// (source, target) pairs; every source is at 64 or above, every target below.
    fds: *const (RawFd, RawFd),
    nfds: usize,
    first_closed: libc::c_uint,
    /// The fork's result, written back by the intermediate (it shares this memory).
    forked: libc::c_long,
    errno: libc::c_int,
}

extern "C" fn intermediate(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the Context the parent keeps alive (and does not touch) until this
    // child has exited (CLONE_VFORK). The raw fork gives the helper its own copy of the
    // memory, where it only makes raw system calls on the prepared data, then execs.
    unsafe {
        let ctx = &mut *arg.cast::<Context>();
        match common::sys::process::fork_raw() {
            Ok(0) => {}
            Ok(pid) => {
                ctx.forked = pid.into();
                ctx.errno = 0;
                return 0;
            }
            Err(errno) => {
                ctx.forked = -1;
                ctx.errno = errno as libc::c_int;
                return 0;
            }
        }
        // The helper.
        libc::setsid();
        let null = libc::open(ctx.devnull, libc::O_RDWR | libc::O_CLOEXEC);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::dup2(null, 1);
            if !ctx.keep_stderr {
                libc::dup2(null, 2);
            }
        }
        let fds = std::slice::from_raw_parts(ctx.fds, ctx.nfds);
        for (source, target) in fds {
            libc::dup2(*source, *target);
        }
        let _ = common::sys::fs::close_range(ctx.first_closed, libc::c_uint::MAX, 0);
        libc::execve(ctx.exe, ctx.argv, ctx.envp);
        common::sys::process::exit_group(127)
    }
}

/// Spawns `exe argv...` detached (new session, re-parented away from this process), with
/// stdin and stdout on /dev/null, stderr too unless `keep_stderr`, `fds` placed at the given
/// numbers (source, target; targets from 3 up, below 64) and every other descriptor closed.
/// Errors of the exec itself are not reported (the helper exits 127).
pub fn spawn(
    exe: &CStr,
    argv: &[CString],
    fds: &[(RawFd, RawFd)],
    keep_stderr: bool,
) -> io::Result<()> {
    // Move the sources out of the way of the targets first.
    let mut moved = Vec::with_capacity(fds.len());
    for (source, target) in fds {
        // SAFETY: F_DUPFD_CLOEXEC only duplicates a descriptor the caller owns.
        let fd = unsafe { libc::fcntl(*source, libc::F_DUPFD_CLOEXEC, 64) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new descriptor nothing else owns.
        moved.push((unsafe { OwnedFd::from_raw_fd(fd) }, *target));
    }
    let pairs: Vec<(RawFd, RawFd)> = moved.iter().map(|(fd, t)| (fd.as_raw_fd(), *t)).collect();
    let first_closed = fds.iter().map(|(_, t)| *t + 1).max().unwrap_or(3).max(3) as libc::c_uint;

    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());

    let mut ctx = Context {
        exe: exe.as_ptr(),
        argv: argv_ptrs.as_ptr(),
        envp: envp.as_ptr(),
        devnull: c"/dev/null".as_ptr(),
        keep_stderr,
        fds: pairs.as_ptr(),
        nfds: pairs.len(),
        first_closed,
        forked: 0,
        errno: 0,
    };
    // SAFETY: `intermediate` touches only `ctx` and what its pointers name, all alive until
    // vfork_run returns (the child has exited by then).
    unsafe {
        crate::sys::process::vfork_run(
            intermediate,
            (&mut ctx as *mut Context).cast(),
            0,
            64 * 1024,
        )
    }
    .map_err(io::Error::from)?;
    drop(moved);
    if ctx.forked < 0 {
        return Err(io::Error::from_raw_os_error(ctx.errno));
    }
    Ok(())
}
