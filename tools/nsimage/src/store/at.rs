//! File operations relative to a directory fd that never follow a symbolic link: the applier
//! walks every path one component at a time with `O_NOFOLLOW`, so no entry of a layer can
//! reach outside the layer's directory (what `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS)`
//! gives, with missing parents created on the way).

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

/// A C string of a path component or link target (refusing an interior NUL).
fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Opens the directory `name` in `dir`, refusing a symbolic link (ELOOP) or non-directory.
pub fn open_dir(dir: RawFd, name: &OsStr) -> io::Result<OwnedFd> {
    let name = cstr(name)?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: a valid C string and a directory fd the caller owns; the returned fd is new.
    let fd = check(unsafe { libc::openat(dir, name.as_ptr(), flags) })?;
    // SAFETY: `fd` was just opened and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens `path` (a directory) itself, e.g. a layer's root.
pub fn open_root(path: &std::path::Path) -> io::Result<OwnedFd> {
    let c = cstr(path.as_os_str())?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: a valid C string; the returned fd is new.
    let fd = check(unsafe { libc::open(c.as_ptr(), flags) })?;
    // SAFETY: `fd` was just opened and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `mkdirat`; an existing entry is reported as `AlreadyExists`.
pub fn mkdir(dir: RawFd, name: &OsStr, mode: u32) -> io::Result<()> {
    let name = cstr(name)?;
    // SAFETY: a valid C string and a directory fd.
    check(unsafe { libc::mkdirat(dir, name.as_ptr(), mode as libc::mode_t) }).map(drop)
}

/// Creates a new regular file with permission bits `mode` (less the umask), never through a
/// link; fails with `AlreadyExists` if the name exists.
pub fn create_file(dir: RawFd, name: &OsStr, mode: u32) -> io::Result<File> {
    let name = cstr(name)?;
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let mode = (mode & 0o777) as libc::c_uint;
    // SAFETY: a valid C string and a directory fd; the returned fd is new.
    let fd = check(unsafe { libc::openat(dir, name.as_ptr(), flags, mode) })?;
    // SAFETY: `fd` was just opened and is owned by nothing else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// `mknodat` (devices, fifos, whiteouts).
pub fn mknod(
    dir: RawFd,
    name: &OsStr,
    kind: libc::mode_t,
    mode: u32,
    dev: libc::dev_t,
) -> io::Result<()> {
    let name = cstr(name)?;
    // SAFETY: a valid C string and a directory fd.
    check(unsafe {
        libc::mknodat(
            dir,
            name.as_ptr(),
            kind | (mode & 0o7777) as libc::mode_t,
            dev,
        )
    })
    .map(drop)
}

/// `symlinkat`: the target is stored, never followed.
pub fn symlink(target: &OsStr, dir: RawFd, name: &OsStr) -> io::Result<()> {
    let (target, name) = (cstr(target)?, cstr(name)?);
    // SAFETY: valid C strings and a directory fd.
    check(unsafe { libc::symlinkat(target.as_ptr(), dir, name.as_ptr()) }).map(drop)
}

/// `linkat` without following a final symbolic link.
pub fn link(from_dir: RawFd, from: &OsStr, to_dir: RawFd, to: &OsStr) -> io::Result<()> {
    let (from, to) = (cstr(from)?, cstr(to)?);
    // SAFETY: valid C strings and directory fds; flags 0 follows no link.
    check(unsafe { libc::linkat(from_dir, from.as_ptr(), to_dir, to.as_ptr(), 0) }).map(drop)
}

/// Removes `name` (a file, or an empty directory).
pub fn unlink(dir: RawFd, name: &OsStr, is_dir: bool) -> io::Result<()> {
    let name = cstr(name)?;
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: a valid C string and a directory fd.
    check(unsafe { libc::unlinkat(dir, name.as_ptr(), flags) }).map(drop)
}

/// `lstat` of `name` in `dir`; `None` when there is nothing there.
pub fn lstat(dir: RawFd, name: &OsStr) -> io::Result<Option<libc::stat>> {
    let name = cstr(name)?;
    // SAFETY: an all-zero stat is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string, a directory fd and a stat buffer we own.
    match check(unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) }) {
        Ok(_) => Ok(Some(st)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `fchownat` without following a symbolic link.
pub fn chown(dir: RawFd, name: &OsStr, uid: u32, gid: u32) -> io::Result<()> {
    let name = cstr(name)?;
    // SAFETY: a valid C string and a directory fd.
    check(unsafe { libc::fchownat(dir, name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) })
        .map(drop)
}

/// `fchmodat` (callers never pass a symbolic link: the mode of a link means nothing).
pub fn chmod(dir: RawFd, name: &OsStr, mode: u32) -> io::Result<()> {
    let name = cstr(name)?;
    // SAFETY: a valid C string and a directory fd.
    check(unsafe { libc::fchmodat(dir, name.as_ptr(), (mode & 0o7777) as libc::mode_t, 0) })
        .map(drop)
}

/// Sets access and modification time to `mtime`, not following a symbolic link.
pub fn set_mtime(dir: RawFd, name: &OsStr, mtime: i64) -> io::Result<()> {
    let name = cstr(name)?;
    let t = libc::timespec {
        tv_sec: mtime as libc::time_t,
        tv_nsec: 0,
    };
    let times = [t, t];
    // SAFETY: a valid C string, a directory fd and two timespecs we own.
    check(unsafe {
        libc::utimensat(
            dir,
            name.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// Sets an extended attribute on `name` in `dir` without following it if it is a link
/// (through `/proc/self/fd/DIR/NAME`: the directory fd is the one already resolved in root).
pub fn set_xattr(dir: RawFd, name: &OsStr, key: &str, value: &[u8]) -> io::Result<()> {
    let mut path = format!("/proc/self/fd/{}/", dir).into_bytes();
    path.extend_from_slice(name.as_bytes());
    let path = CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let key = CString::new(key).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: valid C strings and a value buffer that outlives the call.
    check(unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            key.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
    .map(drop)
}

/// `fchown` of an open file or directory.
pub fn fchown(fd: RawFd, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: plain integers; an invalid fd is an error, not undefined behaviour.
    check(unsafe { libc::fchown(fd, uid, gid) }).map(drop)
}

/// `fchmod` of an open file or directory.
pub fn fchmod(fd: RawFd, mode: u32) -> io::Result<()> {
    // SAFETY: plain integers.
    check(unsafe { libc::fchmod(fd, (mode & 0o7777) as libc::mode_t) }).map(drop)
}

/// Sets access and modification time of an open file or directory to `mtime`.
pub fn futimes(fd: RawFd, mtime: i64) -> io::Result<()> {
    let t = libc::timespec {
        tv_sec: mtime as libc::time_t,
        tv_nsec: 0,
    };
    let times = [t, t];
    // SAFETY: an fd and two timespecs we own.
    check(unsafe { libc::futimens(fd, times.as_ptr()) }).map(drop)
}

/// Sets an extended attribute of an open file or directory.
pub fn fset_xattr(fd: RawFd, key: &str, value: &[u8]) -> io::Result<()> {
    let key = CString::new(key).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: a valid C string and a value buffer that outlives the call.
    check(unsafe { libc::fsetxattr(fd, key.as_ptr(), value.as_ptr().cast(), value.len(), 0) })
        .map(drop)
}

/// `fstat` of an open fd.
pub fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: an all-zero stat is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: an fd and a stat buffer we own.
    check(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

/// The fd's number, for messages and the calls above.
pub fn raw(fd: &OwnedFd) -> RawFd {
    fd.as_raw_fd()
}
