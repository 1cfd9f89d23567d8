//! The one seccomp filter a container gets: no keystrokes pushed into a terminal.
//!
//! COMMAND keeps the caller's terminal as its controlling terminal (so that Ctrl-C and job
//! control work), so without this filter `ioctl(fd, TIOCSTI, ...)` could type commands into the
//! caller's shell after the container exits (CVE-2017-5226, bubblewrap), and `TIOCLINUX` could
//! do the same on a virtual console (CVE-2023-1523). Both are refused with EPERM, as bubblewrap
//! and Flatpak do. Everything else is allowed: this is not a syscall policy.

use common::{debug, Fatal};

const TIOCSTI: u32 = 0x5412;
const TIOCLINUX: u32 = 0x541C;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

/// x32 system calls on x86_64 carry this bit: refused outright, so that the x32 ioctl cannot
/// bypass the check on the native one.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

// Offsets in `struct seccomp_data`: nr, arch, instruction_pointer, args[6].
const NR: u32 = 0;
const ARCH: u32 = 4;
/// The low 32 bits of args[1] (the ioctl request; the kernel truncates it to 32 bits).
const ARG1_LOW: u32 = 16 + 8 + if cfg!(target_endian = "little") { 0 } else { 4 };

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// The BPF program (jump offsets count from the next instruction).
fn program() -> Vec<libc::sock_filter> {
    use libc::{BPF_ABS, BPF_JEQ, BPF_JGE, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W};
    let deny = libc::SECCOMP_RET_ERRNO | (libc::EPERM as u32);
    vec![
        /* 0 */ stmt(BPF_LD | BPF_W | BPF_ABS, ARCH),
        /* 1 */ jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH, 0, 6), // other arch: allow
        /* 2 */ stmt(BPF_LD | BPF_W | BPF_ABS, NR),
        /* 3 */ jump(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 5, 0), // x32: deny
        /* 4 */ jump(BPF_JMP | BPF_JEQ | BPF_K, libc::SYS_ioctl as u32, 0, 3),
        /* 5 */ stmt(BPF_LD | BPF_W | BPF_ABS, ARG1_LOW),
        /* 6 */ jump(BPF_JMP | BPF_JEQ | BPF_K, TIOCSTI, 2, 0),
        /* 7 */ jump(BPF_JMP | BPF_JEQ | BPF_K, TIOCLINUX, 1, 0),
        /* 8 */ stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW),
        /* 9 */ stmt(BPF_RET | BPF_K, deny),
    ]
}

/// Installs the filter for this process and COMMAND after it. Needs CAP_SYS_ADMIN in the
/// current user namespace (or no_new_privs): call it before the capabilities are dropped.
pub fn deny_terminal_injection() -> Result<(), Fatal> {
    let filter = program();
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    debug::step("seccomp: deny TIOCSTI and TIOCLINUX", || {
        // SAFETY: `prog` points to `filter`, which outlives the call; the kernel copies it.
        let rc = unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog,
            )
        };
        nix::errno::Errno::result(rc).map(drop)
    })
    .map_err(|e| Fatal::from(e).context("unable to install the seccomp filter against TIOCSTI"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_jump_lands_inside_the_program() {
        let program = program();
        for (i, insn) in program.iter().enumerate() {
            if insn.code as u32 & 0x07 == libc::BPF_JMP {
                assert!(i + 1 + (insn.jt as usize) < program.len());
                assert!(i + 1 + (insn.jf as usize) < program.len());
            }
        }
        assert_eq!(program[8].k, libc::SECCOMP_RET_ALLOW);
    }
}
