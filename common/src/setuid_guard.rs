//! No setuid planting in a root other users can reach.
//!
//! When the container's root is host root (a rootful chain without a user namespace, or a
//! tree handed down by `userns --idmap`, whose writes land as host root) and it writes into a
//! host directory that other users of the host can reach (mntns's `reach`), a setuid-root
//! binary, a setgid binary, a file capability or a device node it makes there is a way to
//! root for them: they run it through the host's path, where no mount flag of the container
//! applies (a `nosuid` mount inside would not stop them). So the container cannot make one:
//!
//! - a seccomp filter refuses (EPERM) every mode with the setuid or setgid bit in `chmod`,
//!   `fchmod`, `fchmodat`, `fchmodat2`, `open`, `openat`, `creat`, `mknod`, `mknodat`, and a
//!   block or character node other than 0:0 (overlay's whiteout); `openat2` (its mode is
//!   behind a pointer) says ENOSYS so callers fall back to `openat`; io_uring, which opens
//!   files without the syscalls, and foreign architectures are refused;
//! - CAP_FSETID goes, so a write into an existing setuid file clears its bits, and
//!   CAP_SETFCAP goes, so no `security.capability` can be written.
//!
//! Everything else works; `mntns` says so once on stderr, with the way to lift it (a parent
//! directory only root can enter, as Docker keeps its data directory, CVE-2021-41091).
//!
//! The filter lives here because `nsps exec` gives it to a process it joins to a guarded
//! container too; the capability part and the notice are mntns's (its `setuid_guard`).

use common::{debug, Fatal};

use common::sys::bpf::{jump, stmt, AUDIT_ARCH, X32_SYSCALL_BIT};

const S_ISUID_GID: u32 = 0o6000;
const S_IFMT: u32 = 0o170000;
const S_IFCHR: u32 = 0o020000;
const S_IFBLK: u32 = 0o060000;

// Offsets in `struct seccomp_data`: nr, arch, instruction_pointer, args[6].
const NR: u32 = 0;
const ARCH: u32 = 4;

/// The low 32 bits of args[i] (modes and dev numbers are 32-bit in the kernel's signatures).
const fn arg_low(i: u32) -> u32 {
    16 + 8 * i + if cfg!(target_endian = "little") { 0 } else { 4 }
}

/// The syscalls that take a mode, with the index of the mode argument.
fn mode_syscalls() -> Vec<(libc::c_long, u32)> {
    let mut list = vec![
        (libc::SYS_fchmod, 1),
        (libc::SYS_fchmodat, 2),
        (libc::SYS_fchmodat2, 2),
        (libc::SYS_openat, 3),
    ];
    #[cfg(target_arch = "x86_64")]
    list.extend([
        (libc::SYS_chmod, 1),
        (libc::SYS_open, 2),
        (libc::SYS_creat, 1),
    ]);
    list
}

/// The node syscalls, with the index of the mode argument (dev follows it).
fn mknod_syscalls() -> Vec<(libc::c_long, u32)> {
    let mut list = vec![(libc::SYS_mknodat, 2)];
    #[cfg(target_arch = "x86_64")]
    list.push((libc::SYS_mknod, 1));
    list
}

/// The BPF program. Each syscall has a block of its own that starts by loading the number
/// and ends in a return, so jump offsets (from the next instruction) stay local.
pub fn program() -> Vec<libc::sock_filter> {
    use libc::{
        BPF_ABS, BPF_ALU, BPF_AND, BPF_JEQ, BPF_JGE, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_RET,
        BPF_W,
    };
    let ld = |off| stmt(BPF_LD | BPF_W | BPF_ABS, off);
    let ret = |k| stmt(BPF_RET | BPF_K, k);
    let allow = libc::SECCOMP_RET_ALLOW;
    let eperm = libc::SECCOMP_RET_ERRNO | (libc::EPERM as u32);
    let enosys = libc::SECCOMP_RET_ERRNO | (libc::ENOSYS as u32);
    let mut p = vec![
        ld(ARCH),
        jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH, 1, 0),
        ret(eperm),
        ld(NR),
        jump(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 0, 1),
        ret(eperm),
    ];
    for (nr, arg) in mode_syscalls() {
        p.extend([
            ld(NR),
            jump(BPF_JMP | BPF_JEQ | BPF_K, nr as u32, 0, 4),
            ld(arg_low(arg)),
            jump(BPF_JMP | BPF_JSET | BPF_K, S_ISUID_GID, 0, 1),
            ret(eperm),
            ret(allow),
        ]);
    }
    for (nr, arg) in mknod_syscalls() {
        p.extend([
            ld(NR),
            jump(BPF_JMP | BPF_JEQ | BPF_K, nr as u32, 0, 9),
            ld(arg_low(arg)),
            jump(BPF_JMP | BPF_JSET | BPF_K, S_ISUID_GID, 6, 0),
            stmt(BPF_ALU | BPF_AND | BPF_K, S_IFMT),
            jump(BPF_JMP | BPF_JEQ | BPF_K, S_IFCHR, 1, 0),
            jump(BPF_JMP | BPF_JEQ | BPF_K, S_IFBLK, 0, 2),
            ld(arg_low(arg + 1)),
            jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 1),
            ret(allow),
            ret(eperm),
        ]);
    }
    for (nr, errno) in [
        (libc::SYS_openat2, enosys),
        (libc::SYS_io_uring_setup, eperm),
    ] {
        p.extend([
            ld(NR),
            jump(BPF_JMP | BPF_JEQ | BPF_K, nr as u32, 0, 1),
            ret(errno),
        ]);
    }
    p.push(ret(allow));
    p
}

/// Installs the filter for this process and COMMAND after it. Needs CAP_SYS_ADMIN in the
/// current user namespace: call it before the capabilities are dropped.
pub fn install() -> Result<(), Fatal> {
    let filter = program();
    debug::step("seccomp: no setuid, setgid or device files", || {
        common::sys::bpf::install_seccomp(&filter)
    })
    .map_err(|e| {
        Fatal::from(e).context("unable to install the seccomp filter against setuid planting")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the classic BPF program on one `seccomp_data` (enough of the machine for it).
    fn eval(program: &[libc::sock_filter], arch: u32, nr: u32, args: [u32; 6]) -> u32 {
        let word = |off: u32| -> u32 {
            match off {
                NR => nr,
                ARCH => arch,
                _ => (0..6)
                    .find(|i| arg_low(*i) == off)
                    .map_or(0xdead_beef, |i| args[i as usize]),
            }
        };
        let (mut a, mut pc) = (0u32, 0usize);
        loop {
            let insn = program[pc];
            let code = u32::from(insn.code);
            pc += 1;
            match code & 0x07 {
                libc::BPF_LD => a = word(insn.k),
                libc::BPF_ALU => a &= insn.k,
                libc::BPF_RET => return insn.k,
                libc::BPF_JMP => {
                    let taken = match code & 0xf0 {
                        libc::BPF_JEQ => a == insn.k,
                        libc::BPF_JGE => a >= insn.k,
                        libc::BPF_JSET => a & insn.k != 0,
                        other => panic!("jump {other:#x}"),
                    };
                    pc += usize::from(if taken { insn.jt } else { insn.jf });
                }
                other => panic!("class {other:#x}"),
            }
        }
    }

    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;

    fn nr(n: libc::c_long) -> u32 {
        n as u32
    }

    #[test]
    fn setuid_and_setgid_modes_are_refused_others_pass() {
        let p = program();
        let run = |n, args| eval(&p, AUDIT_ARCH, nr(n), args);
        assert_eq!(run(libc::SYS_fchmodat, [0, 0, 0o4755, 0, 0, 0]), EPERM);
        assert_eq!(run(libc::SYS_fchmodat, [0, 0, 0o2755, 0, 0, 0]), EPERM);
        assert_eq!(run(libc::SYS_fchmodat, [0, 0, 0o1777, 0, 0, 0]), ALLOW);
        assert_eq!(run(libc::SYS_fchmodat2, [0, 0, 0o6755, 0, 0, 0]), EPERM);
        assert_eq!(run(libc::SYS_fchmod, [3, 0o4711, 0, 0, 0, 0]), EPERM);
        assert_eq!(run(libc::SYS_fchmod, [3, 0o755, 0, 0, 0, 0]), ALLOW);
        assert_eq!(run(libc::SYS_openat, [0, 0, 0o101, 0o4755, 0, 0]), EPERM);
        assert_eq!(run(libc::SYS_openat, [0, 0, 0o101, 0o644, 0, 0]), ALLOW);
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(run(libc::SYS_chmod, [0, 0o4755, 0, 0, 0, 0]), EPERM);
            assert_eq!(run(libc::SYS_creat, [0, 0o2755, 0, 0, 0, 0]), EPERM);
            assert_eq!(run(libc::SYS_open, [0, 0o101, 0o4700, 0, 0, 0]), EPERM);
            assert_eq!(run(libc::SYS_open, [0, 0, 0, 0, 0, 0]), ALLOW);
        }
        assert_eq!(
            run(libc::SYS_write, [1, 0o4755, 0o4755, 0o4755, 0, 0]),
            ALLOW
        );
    }

    #[test]
    fn device_nodes_are_refused_but_whiteouts_fifos_and_files_pass() {
        let p = program();
        let run = |args| eval(&p, AUDIT_ARCH, nr(libc::SYS_mknodat), args);
        let blk = 0o060600;
        let chr = 0o020600;
        assert_eq!(run([0, 0, blk, 0x700, 0, 0]), EPERM);
        assert_eq!(run([0, 0, chr, 0x10_e5, 0, 0]), EPERM);
        assert_eq!(run([0, 0, chr, 0, 0, 0]), ALLOW);
        assert_eq!(run([0, 0, 0o010644, 0, 0, 0]), ALLOW);
        assert_eq!(run([0, 0, 0o100644, 0, 0, 0]), ALLOW);
        assert_eq!(run([0, 0, 0o104755, 0, 0, 0]), EPERM);
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            eval(
                &p,
                AUDIT_ARCH,
                nr(libc::SYS_mknod),
                [0, blk, 0x801, 0, 0, 0]
            ),
            EPERM
        );
    }

    #[test]
    fn openat2_io_uring_x32_and_foreign_architectures_are_refused() {
        let p = program();
        let enosys = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
        assert_eq!(eval(&p, AUDIT_ARCH, nr(libc::SYS_openat2), [0; 6]), enosys);
        assert_eq!(
            eval(&p, AUDIT_ARCH, nr(libc::SYS_io_uring_setup), [0; 6]),
            EPERM
        );
        assert_eq!(eval(&p, AUDIT_ARCH, X32_SYSCALL_BIT | 90, [0; 6]), EPERM);
        // i386 chmod(path, 04755).
        assert_eq!(eval(&p, 0x4000_0003, 15, [0, 0o4755, 0, 0, 0, 0]), EPERM);
    }

    #[test]
    fn every_jump_lands_inside_the_program() {
        let program = program();
        for (i, insn) in program.iter().enumerate() {
            if u32::from(insn.code) & 0x07 == libc::BPF_JMP {
                assert!(i + 1 + (insn.jt as usize) < program.len());
                assert!(i + 1 + (insn.jf as usize) < program.len());
            }
        }
        assert!(program.len() < 256);
    }
}
