//! The one seccomp filter a container gets: no 32-bit or x32 system calls, and no terminal
//! ioctl that types into, kills or reshapes a terminal the container may share with its caller.
//!
//! COMMAND's stdin/stdout may be the caller's terminal. The entry detaches COMMAND from it as
//! a controlling terminal (`common::terminal`), but the ioctls below act on any terminal fd,
//! controlling or not, and their effect outlives the container:
//!
//! - `TIOCSTI` pushes keystrokes the caller's shell runs after the container exits
//!   (CVE-2017-5226, bubblewrap); `TIOCLINUX` pastes into a virtual console (CVE-2023-1523).
//! - `TIOCSETD` (N_NULL) leaves the terminal dead; `TIOCSWINSZ` reshapes it; `TIOCEXCL`
//!   makes it unopenable (EBUSY) for unprivileged users; `TIOCCONS`, `TIOCVHANGUP`,
//!   `TIOCSLCKTRMIOS` and `TIOCSCTTY` with "steal" need CAP_SYS_ADMIN, which `--cap-add` may
//!   grant: console redirection, hangup, locked modes, stealing the caller's terminal.
//!
//! They are refused with EPERM, as bubblewrap and Flatpak refuse TIOCSTI. Termios changes
//! (`TCSETS`: raw mode for line editors, no echo for passwords) stay allowed: interactive
//! programs need them, and `stty sane` undoes them. A pty of the container's own (issue 18,
//! `mntns --tty`) removes that last trade-off.
//!
//! The ioctl request is checked only for the native system call table, so every other one is
//! closed: a system call of another architecture (i386 through `int 0x80` on x86_64, arm32 on
//! aarch64) kills the process, as on a kernel without 32-bit emulation, and an x32 system
//! call fails with ENOSYS, as on a kernel without x32. Everything else is allowed: this is
//! not a syscall policy.

use common::{debug, Fatal};

/// `(request, why)` of every refused terminal ioctl (asm-generic values, shared by x86_64 and
/// aarch64); `TIOCSCTTY` is refused only with a non-zero argument ("steal").
const REFUSED: [(u32, &str); 8] = [
    (0x5412, "TIOCSTI"),
    (0x541C, "TIOCLINUX"),
    (0x5423, "TIOCSETD"),
    (0x5414, "TIOCSWINSZ"),
    (0x540C, "TIOCEXCL"),
    (0x541D, "TIOCCONS"),
    (0x5437, "TIOCVHANGUP"),
    (0x5457, "TIOCSLCKTRMIOS"),
];
use common::sys::bpf::{jump, stmt, AUDIT_ARCH, TIOCSCTTY, X32_SYSCALL_BIT};

// Offsets in `struct seccomp_data`: nr, arch, instruction_pointer, args[6] (u64 each).
const NR: u32 = 0;
const ARCH: u32 = 4;
const fn arg_low(n: u32) -> u32 {
    16 + 8 * n + if cfg!(target_endian = "little") { 0 } else { 4 }
}
/// The low 32 bits of args[1], the ioctl request (the kernel truncates it to 32 bits).
const REQUEST: u32 = arg_low(1);
/// The low 32 bits of args[2], TIOCSCTTY's argument (an int for the kernel).
const ARGUMENT: u32 = arg_low(2);

/// The BPF program (jump offsets count from the next instruction). Layout: arch check, x32
/// check, ioctl check, one compare per refused request, the TIOCSCTTY argument check, then
/// the four verdicts at the end: allow, deny (EPERM), ENOSYS, kill.
fn program() -> Vec<libc::sock_filter> {
    use libc::{BPF_ABS, BPF_JEQ, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_RET, BPF_W};
    let ld = |offset| stmt(BPF_LD | BPF_W | BPF_ABS, offset);
    let n = REFUSED.len();
    // Index of each verdict: everything before it is the checks below.
    let allow = 6 + n + 3;
    let (deny, enosys, kill) = (allow + 1, allow + 2, allow + 3);
    // A jump from instruction `at` to instruction `to`.
    let to = |at: usize, target: usize| (target - at - 1) as u8;
    let mut p = vec![
        /* 0 */ ld(ARCH),
        /* 1 */ jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH, 0, to(1, kill)),
        /* 2 */ ld(NR),
        /* 3 */
        jump(
            BPF_JMP | BPF_JSET | BPF_K,
            X32_SYSCALL_BIT,
            to(3, enosys),
            0,
        ),
        /* 4 */
        jump(
            BPF_JMP | BPF_JEQ | BPF_K,
            libc::SYS_ioctl as u32,
            0,
            to(4, allow),
        ),
        /* 5 */ ld(REQUEST),
    ];
    for (request, _) in REFUSED {
        let at = p.len();
        p.push(jump(BPF_JMP | BPF_JEQ | BPF_K, request, to(at, deny), 0));
    }
    let at = p.len();
    p.push(jump(BPF_JMP | BPF_JEQ | BPF_K, TIOCSCTTY, 0, to(at, allow)));
    p.push(ld(ARGUMENT));
    let at = p.len();
    p.push(jump(
        BPF_JMP | BPF_JEQ | BPF_K,
        0,
        to(at, allow),
        to(at, deny),
    ));
    debug_assert_eq!(p.len(), allow);
    p.push(stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW));
    p.push(stmt(
        BPF_RET | BPF_K,
        libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
    ));
    p.push(stmt(
        BPF_RET | BPF_K,
        libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
    ));
    p.push(stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_KILL_PROCESS));
    p
}

/// Installs the filter for this process and COMMAND after it. Needs CAP_SYS_ADMIN in the
/// current user namespace (or no_new_privs): call it before the capabilities are dropped.
pub fn deny_terminal_injection() -> Result<(), Fatal> {
    let filter = program();
    debug::step(
        "seccomp: native system calls only, no terminal injection",
        || common::sys::bpf::install_seccomp(&filter),
    )
    .map_err(|e| Fatal::from(e).context("unable to install the seccomp filter"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the classic BPF program on one `seccomp_data` (the subset of BPF it uses).
    fn verdict(arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = Vec::new();
        data.extend_from_slice(&nr.to_ne_bytes());
        data.extend_from_slice(&arch.to_ne_bytes());
        data.extend_from_slice(&0u64.to_ne_bytes());
        for arg in args {
            data.extend_from_slice(&arg.to_ne_bytes());
        }
        let program = program();
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let insn = program[pc];
            let code = u32::from(insn.code);
            match code & 0x07 {
                libc::BPF_LD => {
                    let k = insn.k as usize;
                    acc = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap_or_default());
                    pc += 1;
                }
                libc::BPF_JMP => {
                    let taken = match code & 0xf0 {
                        libc::BPF_JEQ => acc == insn.k,
                        libc::BPF_JSET => acc & insn.k != 0,
                        other => panic!("unexpected jump {other:#x}"),
                    };
                    pc += 1 + usize::from(if taken { insn.jt } else { insn.jf });
                }
                libc::BPF_RET => return insn.k,
                other => panic!("unexpected class {other:#x}"),
            }
        }
    }

    fn ioctl(request: u64, arg: u64) -> u32 {
        verdict(
            AUDIT_ARCH,
            libc::SYS_ioctl as u32,
            [0, request, arg, 0, 0, 0],
        )
    }

    const DENY: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;

    #[test]
    fn every_jump_lands_inside_the_program() {
        let program = program();
        for (i, insn) in program.iter().enumerate() {
            if u32::from(insn.code) & 0x07 == libc::BPF_JMP {
                assert!(i + 1 + (insn.jt as usize) < program.len());
                assert!(i + 1 + (insn.jf as usize) < program.len());
            }
        }
    }

    #[test]
    fn the_terminal_ioctls_are_refused_and_the_others_allowed() {
        for (request, name) in REFUSED {
            assert_eq!(ioctl(request.into(), 0), DENY, "{name}");
            // The kernel only looks at the low 32 bits of the request.
            assert_eq!(ioctl(u64::from(request) | 1 << 32, 0), DENY, "{name}");
        }
        // TIOCSCTTY: taking a free terminal is fine, stealing one is not.
        assert_eq!(ioctl(TIOCSCTTY.into(), 0), libc::SECCOMP_RET_ALLOW);
        assert_eq!(ioctl(TIOCSCTTY.into(), 1), DENY);
        // What interactive programs need: termios, window size reads, job control, FIONREAD.
        for request in [
            0x5401, 0x5402, 0x5403, 0x5404, 0x5413, 0x540F, 0x5410, 0x541B,
        ] {
            assert_eq!(ioctl(request, 0), libc::SECCOMP_RET_ALLOW, "{request:#x}");
        }
        // Other system calls, with the same argument values.
        for nr in [libc::SYS_read, libc::SYS_write, libc::SYS_openat] {
            let v = verdict(AUDIT_ARCH, nr as u32, [0, 0x5412, 1, 0, 0, 0]);
            assert_eq!(v, libc::SECCOMP_RET_ALLOW, "{nr}");
        }
    }

    #[test]
    fn foreign_architectures_are_killed_and_x32_gets_enosys() {
        // i386 (ioctl is 54 there), arm32, and anything else.
        for arch in [0x4000_0003, 0x4000_0028, 0, 0xFFFF_FFFF] {
            assert_eq!(
                verdict(arch, 54, [0, 0x5412, 0, 0, 0, 0]),
                libc::SECCOMP_RET_KILL_PROCESS,
                "{arch:#x}"
            );
            assert_eq!(
                verdict(arch, libc::SYS_getpid as u32, [0; 6]),
                libc::SECCOMP_RET_KILL_PROCESS
            );
        }
        // x32's ioctl (514) and getpid (39), with the x32 bit.
        for nr in [514, 39] {
            assert_eq!(
                verdict(AUDIT_ARCH, X32_SYSCALL_BIT | nr, [0, 0x5412, 0, 0, 0, 0]),
                libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32
            );
        }
    }
}
