//! What the init gives up once COMMAND runs, so that PID 1 is no way out of the container:
//! the caller's filesystem (a chroot into an empty, read-only, detached tmpfs), its
//! capabilities (all but CAP_KILL, see [`drop_capabilities`]), ptrace and /proc access
//! (not dumpable), and every file descriptor but its signalfd.
//!
//! Each step is best effort: the init must never fail once COMMAND runs.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

use common::debug;
use common::sys::mount::{
    self, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY,
};

fn check_int(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// capability(7) number of CAP_KILL.
const CAP_KILL: libc::c_ulong = 5;

/// An empty, read-only tmpfs, not attached anywhere yet.
fn empty_tmpfs() -> io::Result<OwnedFd> {
    let attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    mount::new_fs(c"tmpfs", &[], attrs).map_err(io::Error::from)
}

/// Leaves the caller's filesystem for an empty tmpfs: a chroot into a detached one. Where this
/// process may not create a tmpfs (its mount namespace belongs to another user namespace:
/// every chain with `userns` before pidns), a short-lived child makes it in a mount namespace
/// of its own ([`tmpfs_from_a_child`]); the init itself stays in the caller's mount namespace,
/// as a rootful init does. No `pivot_root`: it walks every task of the system (O(N) per
/// container at scale) and, with the copied mount table, was ~1 ms a start.
fn empty_root() -> io::Result<()> {
    let mnt = match empty_tmpfs() {
        Ok(mnt) => mnt,
        Err(_) => match tmpfs_from_a_child() {
            Ok(mnt) => mnt,
            // No child to be had (a pids limit): a mount namespace of the init's own.
            Err(_) => return empty_mount_namespace(),
        },
    };
    chroot_into(&mnt)
}

/// What the tmpfs-making child writes back into the memory it shares with the init.
struct Made {
    fd: libc::c_int,
    errno: libc::c_int,
}

extern "C" fn make_tmpfs(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Made` the init keeps alive and leaves alone until this child has
    // exited (CLONE_VFORK); the child shares the init's memory and descriptor table.
    let made = unsafe { &mut *arg.cast::<Made>() };
    match empty_tmpfs() {
        Ok(fd) => made.fd = fd.into_raw_fd(),
        Err(e) => made.errno = e.raw_os_error().unwrap_or(libc::EIO),
    }
    0
}

/// An empty tmpfs made by a child started in a new mount namespace (owned by this process's
/// user namespace, so it may create one): it shares this process's memory and descriptor
/// table, so the mount's descriptor is simply left here. The copy of the caller's mount table
/// goes with the child; the detached tmpfs belongs to no namespace and keeps nothing busy.
fn tmpfs_from_a_child() -> io::Result<OwnedFd> {
    let mut made = Made { fd: -1, errno: 0 };
    // SAFETY: `make_tmpfs` touches only `made`, alive until vfork_run returns; the child is
    // reaped there, before COMMAND goes on: it must not find a stray process in its namespace.
    unsafe {
        common::sys::process::vfork_run(
            make_tmpfs,
            (&mut made as *mut Made).cast(),
            libc::CLONE_FILES | libc::CLONE_NEWNS,
            32 * 1024,
        )
    }
    .map_err(io::Error::from)?;
    if made.fd < 0 {
        return Err(io::Error::from_raw_os_error(made.errno));
    }
    // SAFETY: the child opened this descriptor in the table it shares with this process, and
    // nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(made.fd) })
}

/// chroot into a detached mount: nothing of the caller's tree is reachable from it.
fn chroot_into(mnt: &OwnedFd) -> io::Result<()> {
    let dot: &CStr = c".";
    let root: &CStr = c"/";
    // SAFETY: fchdir to the tmpfs's root, a directory fd we own.
    check_int(unsafe { libc::fchdir(mnt.as_raw_fd()) })?;
    // SAFETY: NUL-terminated paths.
    check_int(unsafe { libc::chroot(dot.as_ptr()) })?;
    // SAFETY: NUL-terminated path.
    check_int(unsafe { libc::chdir(root.as_ptr()) })
}

/// Moves the init into a mount namespace of its own whose only mount is an empty tmpfs: it
/// holds no reference to the caller's mounts (which would keep them busy) and sees no file.
/// The fallback of [`tmpfs_from_a_child`], at the price of a `pivot_root`.
fn empty_mount_namespace() -> io::Result<()> {
    // SAFETY: unshare takes flags only.
    check_int(unsafe { libc::unshare(libc::CLONE_NEWNS) })?;
    let root: &CStr = c"/";
    let dot: &CStr = c".";
    // SAFETY: NUL-terminated paths; a propagation change passes no source, type or data.
    check_int(unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    })?;
    let mnt = empty_tmpfs()?;
    // Attached (by fd, empty path) on top of "/".
    mount::move_to_path(mnt.as_fd(), root).map_err(io::Error::from)?;
    // SAFETY: fchdir to the tmpfs's root, a directory fd we own.
    check_int(unsafe { libc::fchdir(mnt.as_raw_fd()) })?;
    // pivot_root(".", "."): the tmpfs becomes the root, the old root is stacked on it.
    let pivoted = mount::pivot_root(".", ".");
    if pivoted.is_err() {
        // No pivot here (an initramfs root): a chroot into the tmpfs still hides every file.
        // SAFETY: NUL-terminated path.
        check_int(unsafe { libc::chroot(dot.as_ptr()) })?;
        return Ok(());
    }
    // SAFETY: detaches the old root, stacked on ".", and everything under it.
    check_int(unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) })?;
    // SAFETY: NUL-terminated path.
    check_int(unsafe { libc::chdir(root.as_ptr()) })
}

/// Drops every capability but CAP_KILL from every set, and clears the bounding and ambient
/// sets. CAP_KILL stays: COMMAND (or a link after this one, `mntns --user`) may switch to
/// another uid, and the init must still be able to forward signals to it.
fn drop_capabilities() -> io::Result<()> {
    for cap in 0..64 {
        if cap == CAP_KILL {
            continue;
        }
        // SAFETY: PR_CAPBSET_DROP takes a capability number; EINVAL past the last one.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
            break;
        }
    }
    // SAFETY: PR_CAP_AMBIENT_CLEAR_ALL takes no further argument.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        );
    }
    let kill = 1u64 << CAP_KILL;
    common::sys::process::set_capabilities(kill, kill, 0).map_err(io::Error::from)
}

/// Not dumpable: no ptrace, no /proc/1/{root,cwd,fd,environ,mem} for the container's processes.
fn not_dumpable() -> io::Result<()> {
    // SAFETY: PR_SET_DUMPABLE takes 0 or 1.
    check_int(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) })
}

/// Closes every descriptor but `keep`, the caller's stdio included: the init must hold no
/// pipe, terminal or lock of the caller's (a reader waiting for EOF, a lock released on exit).
pub fn close_all_but(keep: libc::c_int) {
    let ranges = [(0, keep - 1), (keep + 1, libc::c_int::MAX)];
    for (first, last) in ranges {
        if first > last {
            continue;
        }
        // Before Linux 5.9 (no close_range): one by one.
        common::sys::fs::close_range_or_each(first as libc::c_uint, last as libc::c_uint);
    }
}

/// Sheds everything, in an order that keeps each step possible (capabilities go after the
/// mounts, which need CAP_SYS_ADMIN). Failures are traced with NSCHAIN_DEBUG only.
pub fn shed() {
    note("empty root", debug::step("init: empty root", empty_root));
    note(
        "drop capabilities",
        debug::step("init: drop capabilities", drop_capabilities),
    );
    note(
        "not dumpable",
        debug::step("init: not dumpable", not_dumpable),
    );
}

fn note(what: &str, result: io::Result<()>) {
    if let Err(e) = result {
        debug::note(format_args!("init: {what} failed: {e}"));
    }
}
