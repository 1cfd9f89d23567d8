//! A [`Profile`] compiled to classic BPF for `seccomp(SECCOMP_SET_MODE_FILTER)`.
//!
//! The program, in order: a system call of another architecture kills the process (the
//! rules are written in x86_64 numbers; i386 numbers differ, so they could not be applied —
//! as on a kernel without 32-bit emulation), an x32 call fails with ENOSYS; optionally, a
//! number beyond the table fails with ENOSYS (the default profile's "unknown is refused");
//! then one block per (rule, system call), those with argument conditions first, then first
//! match wins, each block jumping to the next
//! when its number or an argument condition does not match; then the default action.
//!
//! Argument conditions compare all 64 bits, unsigned, as libseccomp does: two 32-bit loads
//! per condition. Every jump stays inside its block, so no offset nears BPF's 255 limit.

use std::collections::HashSet;

use super::profile::{Action, ArgCondition, Filter, Op, Profile};

#[cfg(target_arch = "x86_64")]
use crate::sys::bpf::AUDIT_ARCH as AUDIT_ARCH_NATIVE;
use crate::sys::bpf::X32_SYSCALL_BIT;
/// What the profile calls this machine's architecture, and Docker's `arches` names for it.
#[cfg(target_arch = "x86_64")]
const NATIVE_NAMES: [&str; 3] = ["SCMP_ARCH_X86_64", "amd64", "x86_64"];
/// Architectures a profile may list: their calls are refused here (see the module header).
const KNOWN_ARCHES: [&str; 17] = [
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_RISCV64",
];
/// BPF_MAXINSNS.
const MAX_INSNS: usize = 4096;

/// What the rules are judged against.
#[derive(Debug, Default, Clone)]
pub struct Conditions {
    /// The capabilities the process will hold (`CAP_SYS_ADMIN`, ...).
    pub caps: HashSet<String>,
    /// The running kernel's (major, minor).
    pub kernel: (u32, u32),
    /// Numbers beyond the table fail with this errno (the default profile's allowlist
    /// semantics); `None`: the profile's default action applies to them too.
    pub unknown_errno: Option<u32>,
}

/// A compiled profile.
#[derive(Debug)]
pub struct Compiled {
    /// The BPF program.
    pub program: Vec<libc::sock_filter>,
    /// `SECCOMP_FILTER_FLAG_*` bits for seccomp(2).
    pub flags: u32,
    /// Names no rule could use: not system calls of this machine (skipped, as runc and crun
    /// skip them).
    pub unknown_names: Vec<String>,
}

/// One instruction whose jumps may still point at the end of its block.
#[derive(Clone, Copy)]
enum Target {
    Next(u8),
    Fail,
}

struct Insn {
    code: u32,
    k: u32,
    jt: Target,
    jf: Target,
}

fn stmt(code: u32, k: u32) -> Insn {
    Insn {
        code,
        k,
        jt: Target::Next(0),
        jf: Target::Next(0),
    }
}

fn jump(code: u32, k: u32, jt: Target, jf: Target) -> Insn {
    Insn { code, k, jt, jf }
}

use libc::{BPF_ABS, BPF_ALU, BPF_AND, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JMP, BPF_JSET, BPF_K};
use libc::{BPF_LD, BPF_RET, BPF_W};
use Target::{Fail, Next};

const LD: u32 = BPF_LD | BPF_W | BPF_ABS;
const JEQ: u32 = BPF_JMP | BPF_JEQ | BPF_K;
const JGT: u32 = BPF_JMP | BPF_JGT | BPF_K;
const JGE: u32 = BPF_JMP | BPF_JGE | BPF_K;
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;

/// Offsets of the low and high halves of args[index] in `struct seccomp_data`.
fn arg_offsets(index: u32) -> (u32, u32) {
    let base = 16 + 8 * index;
    if cfg!(target_endian = "little") {
        (base, base + 4)
    } else {
        (base + 4, base)
    }
}

/// The instructions that fall through when `cond` holds and jump to the block's end if not.
fn condition(cond: &ArgCondition) -> Vec<Insn> {
    let (lo_at, hi_at) = arg_offsets(cond.index);
    let (hi, lo) = ((cond.value >> 32) as u32, cond.value as u32);
    match cond.op {
        Op::Eq => vec![
            stmt(LD, hi_at),
            jump(JEQ, hi, Next(0), Fail),
            stmt(LD, lo_at),
            jump(JEQ, lo, Next(0), Fail),
        ],
        Op::Ne => vec![
            stmt(LD, hi_at),
            jump(JEQ, hi, Next(0), Next(2)),
            stmt(LD, lo_at),
            jump(JEQ, lo, Fail, Next(0)),
        ],
        Op::MaskedEq => {
            let (want_hi, want_lo) = ((cond.value_two >> 32) as u32, cond.value_two as u32);
            vec![
                stmt(LD, hi_at),
                stmt(BPF_ALU | BPF_AND | BPF_K, hi),
                jump(JEQ, want_hi, Next(0), Fail),
                stmt(LD, lo_at),
                stmt(BPF_ALU | BPF_AND | BPF_K, lo),
                jump(JEQ, want_lo, Next(0), Fail),
            ]
        }
        // arg > v: high half greater, or equal and the low half greater.
        Op::Gt | Op::Ge => vec![
            stmt(LD, hi_at),
            jump(JGT, hi, Next(3), Next(0)),
            jump(JEQ, hi, Next(0), Fail),
            stmt(LD, lo_at),
            jump(if cond.op == Op::Gt { JGT } else { JGE }, lo, Next(0), Fail),
        ],
        // arg < v: high half less, or equal and the low half less.
        Op::Lt | Op::Le => vec![
            stmt(LD, hi_at),
            jump(JGE, hi, Next(0), Next(3)),
            jump(JEQ, hi, Next(0), Fail),
            stmt(LD, lo_at),
            jump(if cond.op == Op::Lt { JGE } else { JGT }, lo, Fail, Next(0)),
        ],
    }
}

/// The `SECCOMP_RET_*` value of an action.
fn verdict(action: Action, value: Option<u32>, default_errno: u32) -> Result<u32, String> {
    Ok(match action {
        Action::Kill => libc::SECCOMP_RET_KILL_THREAD,
        Action::KillProcess => libc::SECCOMP_RET_KILL_PROCESS,
        Action::Trap => libc::SECCOMP_RET_TRAP,
        Action::Errno => {
            let errno = value.unwrap_or(default_errno);
            if errno > 4095 {
                return Err(format!("errnoRet {errno}: not an errno (at most 4095)"));
            }
            libc::SECCOMP_RET_ERRNO | errno
        }
        Action::Trace => libc::SECCOMP_RET_TRACE | (value.unwrap_or(0) & 0xffff),
        Action::Allow => libc::SECCOMP_RET_ALLOW,
        Action::Log => libc::SECCOMP_RET_LOG,
        Action::Notify => {
            return Err(
                "SCMP_ACT_NOTIFY needs a seccomp listener, which nschain does not run".into(),
            )
        }
    })
}

fn parse_version(text: &str) -> (u32, u32) {
    let mut parts = text.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Whether a Docker `includes` (`wanted`) or `excludes` (not `wanted`) filter lets a rule
/// apply.
fn filter_allows(filter: &Filter, wanted: bool, when: &Conditions) -> bool {
    let native = |a: &String| NATIVE_NAMES.contains(&a.as_str());
    if wanted {
        filter.caps.iter().all(|c| when.caps.contains(c))
            && (filter.arches.is_empty() || filter.arches.iter().any(native))
            && filter
                .min_kernel
                .as_deref()
                .is_none_or(|v| when.kernel >= parse_version(v))
    } else {
        !filter.caps.iter().any(|c| when.caps.contains(c))
            && !filter.arches.iter().any(native)
            && filter
                .min_kernel
                .as_deref()
                .is_none_or(|v| when.kernel < parse_version(v))
    }
}

fn check_header(profile: &Profile) -> Result<u32, String> {
    for arch in &profile.architectures {
        if !KNOWN_ARCHES.contains(&arch.as_str()) {
            return Err(format!("unknown architecture {arch:?}"));
        }
    }
    if !profile.architectures.is_empty()
        && !profile
            .architectures
            .iter()
            .any(|a| NATIVE_NAMES.contains(&a.as_str()))
    {
        return Err(format!(
            "the profile's architectures do not include this machine's ({})",
            NATIVE_NAMES[0]
        ));
    }
    if profile.listener_path.is_some() {
        return Err("listenerPath: seccomp notify listeners are not supported".into());
    }
    let mut flags = 0;
    for flag in &profile.flags {
        flags |= match flag.as_str() {
            "SECCOMP_FILTER_FLAG_TSYNC" => 1,
            "SECCOMP_FILTER_FLAG_LOG" => 2,
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => 4,
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" => 32,
            other => return Err(format!("unknown flag {other:?}")),
        };
    }
    Ok(flags)
}

/// Compiles `profile` for this machine under `when`.
pub fn compile(profile: &Profile, when: &Conditions) -> Result<Compiled, String> {
    let flags = check_header(profile)?;
    let default_errno = profile.default_errno_ret.unwrap_or(libc::EPERM as u32);
    let mut blocks: Vec<Vec<Insn>> = Vec::new();
    let mut unknown_names = Vec::new();
    for rule in &profile.syscalls {
        let action = verdict(rule.action, rule.errno_ret, default_errno)?;
        if rule.args.len() > 6 {
            return Err("a rule has more than 6 argument conditions".into());
        }
        if let Some(bad) = rule.args.iter().find(|a| a.index > 5) {
            return Err(format!("argument index {}: at most 5", bad.index));
        }
        if !filter_allows(&rule.includes, true, when) || !filter_allows(&rule.excludes, false, when)
        {
            continue;
        }
        for name in rule.all_names() {
            let Some(nr) = super::syscall_number(name) else {
                unknown_names.push(name.to_owned());
                continue;
            };
            let mut block = vec![stmt(LD, OFFSET_NR), jump(JEQ, nr, Next(0), Fail)];
            for cond in &rule.args {
                block.extend(condition(cond));
            }
            block.push(stmt(BPF_RET | BPF_K, action));
            blocks.push(block);
        }
    }
    // As libseccomp orders them: a rule with argument conditions is tried before a rule for
    // the same call without (which then acts as that call's fallback); otherwise file order.
    blocks.sort_by_key(|block| block.len() <= 3);
    let mut program = prologue(when.unknown_errno);
    for block in blocks {
        program.extend(resolve(block)?);
    }
    program.push(bpf(
        BPF_RET | BPF_K,
        verdict(profile.default_action, None, default_errno)?,
        0,
        0,
    ));
    if program.len() > MAX_INSNS {
        return Err(format!(
            "the profile compiles to {} instructions, more than the kernel's {MAX_INSNS}",
            program.len()
        ));
    }
    Ok(Compiled {
        program,
        flags,
        unknown_names,
    })
}

fn bpf(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// Architecture, x32 and (optionally) unknown-number checks.
fn prologue(unknown_errno: Option<u32>) -> Vec<libc::sock_filter> {
    let mut p = vec![
        bpf(LD, OFFSET_ARCH, 0, 0),
        bpf(JEQ, AUDIT_ARCH_NATIVE, 1, 0),
        bpf(BPF_RET | BPF_K, libc::SECCOMP_RET_KILL_PROCESS, 0, 0),
        bpf(LD, OFFSET_NR, 0, 0),
        bpf(BPF_JMP | BPF_JSET | BPF_K, X32_SYSCALL_BIT, 0, 1),
        bpf(
            BPF_RET | BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
            0,
            0,
        ),
    ];
    if let Some(errno) = unknown_errno {
        p.push(bpf(JGT, super::highest_number(), 0, 1));
        p.push(bpf(
            BPF_RET | BPF_K,
            libc::SECCOMP_RET_ERRNO | (errno & 0xfff),
            0,
            0,
        ));
    }
    p
}

/// A block with its "fail" jumps pointed at its end (the next block).
fn resolve(block: Vec<Insn>) -> Result<Vec<libc::sock_filter>, String> {
    let len = block.len();
    let offset = |at: usize, t: Target| -> Result<u8, String> {
        match t {
            Next(n) => Ok(n),
            Fail => u8::try_from(len - at - 1).map_err(|_| "a rule is too long".to_string()),
        }
    };
    block
        .iter()
        .enumerate()
        .map(|(at, i)| Ok(bpf(i.code, i.k, offset(at, i.jt)?, offset(at, i.jf)?)))
        .collect()
}
