//! Classic BPF programs given to the kernel: seccomp filters, and socket filters (a netlink
//! socket that only wakes for the messages its filter accepts).

use std::os::fd::{AsRawFd, BorrowedFd};

use super::Errno;

/// `AUDIT_ARCH_*` of the native system call table: what `seccomp_data.arch` holds for a
/// native system call.
#[cfg(target_arch = "x86_64")]
pub const AUDIT_ARCH: u32 = 0xC000_003E;
/// `AUDIT_ARCH_*` of the native system call table: what `seccomp_data.arch` holds for a
/// native system call.
#[cfg(target_arch = "aarch64")]
pub const AUDIT_ARCH: u32 = 0xC000_00B7;

/// x32 system calls on x86_64 carry this bit in `seccomp_data.nr` (no native number has it).
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// `TIOCSCTTY` (asm-generic, shared by x86_64 and aarch64), as a seccomp filter compares it.
pub const TIOCSCTTY: u32 = 0x540E;

/// One BPF instruction that does not jump (`BPF_LD`, `BPF_ALU`, `BPF_RET`, ...).
pub fn stmt(code: u32, k: u32) -> libc::sock_filter {
    jump(code, k, 0, 0)
}

/// One BPF instruction; a conditional jump goes `jt` or `jf` instructions past the next one.
pub fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

fn fprog(program: &[libc::sock_filter]) -> libc::sock_fprog {
    libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut(),
    }
}

/// `prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, program)`: the filter applies to this thread
/// and everything it execs. Needs CAP_SYS_ADMIN in the current user namespace or
/// no_new_privs.
pub fn install_seccomp(program: &[libc::sock_filter]) -> Result<(), Errno> {
    let prog = fprog(program);
    // SAFETY: `prog` points to `program`, which outlives the call; the kernel copies it.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const libc::sock_fprog,
        )
    };
    Errno::result(rc).map(drop)
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, program)`: as [`install_seccomp`], with the
/// `SECCOMP_FILTER_FLAG_*` flags (log, TSYNC, ...) that only this call takes.
pub fn install_seccomp_with_flags(
    program: &[libc::sock_filter],
    flags: libc::c_ulong,
) -> Result<(), Errno> {
    let prog = fprog(program);
    // SAFETY: `prog` points to `program`, which outlives the call; the kernel copies it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    Errno::result(rc).map(drop)
}

/// `setsockopt(SO_ATTACH_FILTER)`: the socket only queues (and its reader only wakes for) the
/// packets `program` accepts.
pub fn attach_socket_filter(
    socket: BorrowedFd<'_>,
    program: &[libc::sock_filter],
) -> Result<(), Errno> {
    let prog = fprog(program);
    // SAFETY: `prog` points to `program`, which outlives the call; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&prog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    Errno::result(rc).map(drop)
}
