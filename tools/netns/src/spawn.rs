//! Starting a detached helper cheaply: it must not be a child of this process (which execs
//! into the container, whose program never expects it), so it is spawned by a short-lived
//! intermediate and re-parented to init (or the nearest subreaper).
//!
//! A double `fork()` copies this process's page tables twice (about 1.5 ms here); instead the
//! intermediate is a `clone(CLONE_VM | CLONE_VFORK)` child (no copy: it runs on a small stack
//! of its own while this process waits), which `posix_spawn`s the helper (glibc uses the same
//! kind of clone) in a new session, with its descriptors set by file actions, and exits.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

/// What the intermediate needs; it writes `result` back (it shares this memory).
struct Context {
    exe: *const libc::c_char,
    argv: *const *mut libc::c_char,
    envp: *const *mut libc::c_char,
    actions: *const libc::posix_spawn_file_actions_t,
    attr: *const libc::posix_spawnattr_t,
    result: libc::c_int,
}

extern "C" fn intermediate(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the Context the parent keeps alive (and does not touch) until this
    // child has exited (CLONE_VFORK); posix_spawn only reads the prepared arguments.
    unsafe {
        let ctx = &mut *arg.cast::<Context>();
        let mut pid: libc::pid_t = 0;
        ctx.result =
            libc::posix_spawn(&mut pid, ctx.exe, ctx.actions, ctx.attr, ctx.argv, ctx.envp);
    }
    0
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Spawns `exe argv...` detached (new session, re-parented away from this process), with
/// stdin and stdout on /dev/null, stderr too unless `keep_stderr`, `fds` placed at the given
/// numbers (source, target; targets from 3 up) and every other descriptor closed.
pub fn detached(
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
    let first_closed = fds.iter().map(|(_, t)| *t + 1).max().unwrap_or(3).max(3) as libc::c_uint;

    let mut argv_ptrs: Vec<*mut libc::c_char> =
        argv.iter().map(|a| a.as_ptr().cast_mut()).collect();
    argv_ptrs.push(std::ptr::null_mut());
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    let mut envp: Vec<*mut libc::c_char> = env.iter().map(|e| e.as_ptr().cast_mut()).collect();
    envp.push(std::ptr::null_mut());
    let devnull = c"/dev/null";

    // SAFETY: zeroed storage is what posix_spawn_*_init expects to initialise.
    let mut actions: libc::posix_spawn_file_actions_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut attr: libc::posix_spawnattr_t = unsafe { std::mem::zeroed() };
    // SAFETY: initialising the objects just declared; destroyed below on every path.
    unsafe {
        check(libc::posix_spawn_file_actions_init(&mut actions))?;
        check(libc::posix_spawnattr_init(&mut attr))?;
    }
    let result = (|| -> io::Result<()> {
        // SAFETY: the objects are initialised; the pointers outlive the calls.
        unsafe {
            check(libc::posix_spawn_file_actions_addopen(
                &mut actions,
                0,
                devnull.as_ptr(),
                libc::O_RDWR,
                0,
            ))?;
            check(libc::posix_spawn_file_actions_adddup2(&mut actions, 0, 1))?;
            if !keep_stderr {
                check(libc::posix_spawn_file_actions_adddup2(&mut actions, 0, 2))?;
            }
            for (fd, target) in &moved {
                check(libc::posix_spawn_file_actions_adddup2(
                    &mut actions,
                    fd.as_raw_fd(),
                    *target,
                ))?;
            }
            check(libc::posix_spawn_file_actions_addclosefrom_np(
                &mut actions,
                first_closed as libc::c_int,
            ))?;
            check(libc::posix_spawnattr_setflags(
                &mut attr,
                libc::POSIX_SPAWN_SETSID as libc::c_short,
            ))?;
        }
        let mut ctx = Context {
            exe: exe.as_ptr(),
            argv: argv_ptrs.as_ptr(),
            envp: envp.as_ptr(),
            actions: &actions,
            attr: &attr,
            result: 0,
        };
        let mut stack = vec![0u8; 256 * 1024];
        // The stack grows down: hand clone its (16-byte aligned) top.
        let top = (stack.as_mut_ptr() as usize + stack.len()) & !15;
        // SAFETY: CLONE_VM | CLONE_VFORK: the child runs `intermediate` on its own stack in
        // this address space while this thread is suspended until it exits, so `ctx`, the
        // stack and every pointer in `ctx` stay valid and unshared for its whole life.
        let pid = unsafe {
            libc::clone(
                intermediate,
                top as *mut libc::c_void,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                (&mut ctx as *mut Context).cast(),
            )
        };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        drop(stack);
        check(ctx.result)
    })();
    // SAFETY: destroying the objects initialised above, once.
    unsafe {
        libc::posix_spawn_file_actions_destroy(&mut actions);
        libc::posix_spawnattr_destroy(&mut attr);
    }
    drop(moved);
    result
}
