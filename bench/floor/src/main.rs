//! `nschain-floor ROOT COMMAND [ARG]...`: the floor of `make bench`.
//!
//! One process makes the syscalls that the whole rootful chain
//! `netns -- userns --map-root -- ipcns -- utsns --hostname b -- pidns -- mntns --rootfs ROOT`
//! makes, with nothing else: one `unshare` of all six namespaces, the uid/gid maps (the caller's
//! ids as 0), `lo` up, the hostname, one fork (the child is PID 1, the parent waits), then in the
//! child: `/` private, ROOT bound onto itself, `/proc`, a tmpfs `/dev` with null, zero, full,
//! random, urandom and tty bound from the host, `pivot_root(".", ".")`, the old root detached,
//! and the exec of COMMAND. No parsing, no allocation beyond the arguments, no state files: its
//! time is what the kernel charges for those steps. Works as root and unprivileged.

use std::ffi::{CString, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(root), Some(program)) = (args.next(), args.next()) else {
        eprintln!("usage: nschain-floor ROOT COMMAND [ARG]...");
        return ExitCode::from(125);
    };
    match run(root, program, args.collect()) {
        Ok(code) => ExitCode::from(code),
        Err((what, e)) => {
            eprintln!("nschain-floor: fatal: unable to {what}: {e}");
            ExitCode::from(125)
        }
    }
}

type Step<T> = Result<T, (&'static str, io::Error)>;

/// Turns a libc return value into a result naming the step.
fn check(what: &'static str, ret: libc::c_int) -> Step<libc::c_int> {
    if ret < 0 {
        Err((what, io::Error::last_os_error()))
    } else {
        Ok(ret)
    }
}

fn cstr(what: &'static str, bytes: &[u8]) -> Step<CString> {
    CString::new(bytes).map_err(|e| (what, io::Error::new(io::ErrorKind::InvalidInput, e)))
}

fn write_file(what: &'static str, path: &str, text: &str) -> Step<()> {
    std::fs::write(path, text).map_err(|e| (what, e))
}

fn run(root: OsString, program: OsString, args: Vec<OsString>) -> Step<u8> {
    // SAFETY: getuid/getgid cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNS;
    // SAFETY: unshare takes flags only; the process is single-threaded.
    check("unshare", unsafe { libc::unshare(flags) })?;
    write_file("write setgroups", "/proc/self/setgroups", "deny")?;
    write_file("write uid_map", "/proc/self/uid_map", &format!("0 {uid} 1"))?;
    write_file("write gid_map", "/proc/self/gid_map", &format!("0 {gid} 1"))?;
    loopback_up()?;
    let name = b"b";
    // SAFETY: the pointer and length describe `name`, which outlives the call.
    check("set the hostname", unsafe {
        libc::sethostname(name.as_ptr().cast(), name.len())
    })?;
    // SAFETY: single-threaded, so the child may run arbitrary code after fork.
    let pid = check("fork", unsafe { libc::fork() })?;
    if pid == 0 {
        let (code, what, e) = match enter(&root, program, args) {
            Ok(e) if e.kind() == io::ErrorKind::NotFound => (127, "execute the command", e),
            Ok(e) => (126, "execute the command", e),
            Err((what, e)) => (125, what, e),
        };
        eprintln!("nschain-floor: fatal: unable to {what}: {e}");
        // SAFETY: _exit ends the forked child without running the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: `status` is a valid out pointer for the duration of the call.
        let ret = unsafe { libc::waitpid(pid, &mut status, 0) };
        if ret >= 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(("wait for the child", e));
        }
    }
    if libc::WIFEXITED(status) {
        Ok(libc::WEXITSTATUS(status) as u8)
    } else {
        Ok(128u8.wrapping_add(libc::WTERMSIG(status) as u8))
    }
}

/// `ip link set lo up`, with one ioctl on a throwaway socket.
fn loopback_up() -> Step<()> {
    // SAFETY: plain socket creation; the fd is closed below.
    let fd = check("open a socket", unsafe {
        libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
    })?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_LOOPBACK | libc::IFF_RUNNING) as i16;
    // SAFETY: SIOCSIFFLAGS reads the ifreq we own; fd is the socket opened above.
    let ret = unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) };
    let ret = check("bring lo up", ret);
    // SAFETY: fd is ours and closed once.
    unsafe { libc::close(fd) };
    ret.map(|_| ())
}

fn mount(
    what: &'static str,
    source: &CString,
    target: &CString,
    fstype: Option<&CString>,
    flags: libc::c_ulong,
    data: Option<&CString>,
) -> Step<()> {
    let fstype = fstype.map_or(std::ptr::null(), |s| s.as_ptr());
    let data = data.map_or(std::ptr::null(), |s| s.as_ptr().cast());
    // SAFETY: every pointer is a NUL-terminated string that outlives the call, or null.
    check(what, unsafe {
        libc::mount(source.as_ptr(), target.as_ptr(), fstype, flags, data)
    })
    .map(|_| ())
}

/// In the child (PID 1 of the new pid namespace): build the root and exec. Returns the exec
/// error, or the failed step.
fn enter(root: &OsString, program: OsString, args: Vec<OsString>) -> Step<io::Error> {
    let none = cstr("mount", b"none")?;
    let slash = cstr("mount", b"/")?;
    let root_c = cstr("mount the root", root.as_bytes())?;
    mount(
        "make / private",
        &none,
        &slash,
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )?;
    mount(
        "bind the root",
        &root_c,
        &root_c,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )?;
    let join = |sub: &str| cstr("build a path", &[root.as_bytes(), sub.as_bytes()].concat());
    let proc_fs = cstr("mount /proc", b"proc")?;
    mount(
        "mount /proc",
        &proc_fs,
        &join("/proc")?,
        Some(&proc_fs),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        None,
    )?;
    let tmpfs = cstr("mount /dev", b"tmpfs")?;
    let mode = cstr("mount /dev", b"mode=755")?;
    mount(
        "mount /dev",
        &tmpfs,
        &join("/dev")?,
        Some(&tmpfs),
        libc::MS_NOSUID,
        Some(&mode),
    )?;
    for dev in DEVICES {
        let target = join(&format!("/dev/{dev}"))?;
        // SAFETY: target is NUL-terminated; the fd is closed right after.
        let fd = check("create a device node", unsafe {
            libc::open(
                target.as_ptr(),
                libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                0o666,
            )
        })?;
        // SAFETY: fd was just opened and is closed once.
        unsafe { libc::close(fd) };
        let source = cstr("bind a device", format!("/dev/{dev}").as_bytes())?;
        mount("bind a device", &source, &target, None, libc::MS_BIND, None)?;
    }
    // SAFETY: root_c is NUL-terminated.
    check("enter the root", unsafe { libc::chdir(root_c.as_ptr()) })?;
    let dot = cstr("pivot_root", b".")?;
    // SAFETY: both arguments are NUL-terminated strings.
    check("pivot_root", unsafe {
        libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) as libc::c_int
    })?;
    // SAFETY: dot is NUL-terminated.
    check("detach the old root", unsafe {
        libc::umount2(dot.as_ptr(), libc::MNT_DETACH)
    })?;
    // SAFETY: slash is NUL-terminated.
    check("enter /", unsafe { libc::chdir(slash.as_ptr()) })?;
    Ok(Command::new(program).args(args).exec())
}
