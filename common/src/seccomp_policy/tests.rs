//! The compiler checked by running its programs: a small interpreter of the classic BPF it
//! emits, on `seccomp_data` built here. (The end-to-end tests run real containers.)

use super::*;

const X86_64: u32 = 0xC000_003E;
const I386: u32 = 0x4000_0003;
const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

fn run(program: &[libc::sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = Vec::new();
    data.extend_from_slice(&nr.to_ne_bytes());
    data.extend_from_slice(&arch.to_ne_bytes());
    data.extend_from_slice(&0u64.to_ne_bytes());
    for arg in args {
        data.extend_from_slice(&arg.to_ne_bytes());
    }
    let (mut pc, mut acc) = (0usize, 0u32);
    loop {
        let insn = program[pc];
        let code = u32::from(insn.code);
        match code & 0x07 {
            libc::BPF_LD => {
                let k = insn.k as usize;
                acc = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap());
                pc += 1;
            }
            libc::BPF_ALU => {
                assert_eq!(code & 0xf0, libc::BPF_AND);
                acc &= insn.k;
                pc += 1;
            }
            libc::BPF_JMP => {
                let taken = match code & 0xf0 {
                    libc::BPF_JEQ => acc == insn.k,
                    libc::BPF_JGT => acc > insn.k,
                    libc::BPF_JGE => acc >= insn.k,
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

fn nr(name: &str) -> u32 {
    syscall_number(name).unwrap()
}

fn compiled(json: &str, caps: &[&str]) -> Compiled {
    let profile = Profile::parse(json.as_bytes()).unwrap();
    let when = Conditions {
        caps: caps.iter().map(|c| c.to_string()).collect(),
        kernel: (6, 1),
        unknown_errno: None,
    };
    compile(&profile, &when).unwrap()
}

fn default_for(caps: &[&str]) -> Compiled {
    let when = Conditions {
        caps: caps.iter().map(|c| c.to_string()).collect(),
        kernel: (6, 1),
        unknown_errno: Some(libc::ENOSYS as u32),
    };
    compile(&default_profile(), &when).unwrap()
}

#[test]
fn the_table_knows_the_calls_by_their_numbers() {
    assert_eq!(nr("read"), libc::SYS_read as u32);
    assert_eq!(nr("mount"), libc::SYS_mount as u32);
    assert_eq!(nr("clone3"), libc::SYS_clone3 as u32);
    assert_eq!(nr("mseal"), 462);
    assert!(syscall_number("no_such_call").is_none());
}

#[test]
fn rules_match_first_and_the_default_takes_the_rest() {
    let p = compiled(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [
              {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
              {"names": ["read", "write", "mkdir", "no_such_call"], "action": "SCMP_ACT_ALLOW"},
              {"name": "getpid", "action": "SCMP_ACT_KILL_PROCESS"}
            ]}"#,
        &[],
    );
    let program = &p.program;
    assert_eq!(run(program, X86_64, nr("read"), [0; 6]), ALLOW);
    assert_eq!(run(program, X86_64, nr("write"), [0; 6]), ALLOW);
    assert_eq!(
        run(program, X86_64, nr("mkdir"), [0; 6]),
        libc::SECCOMP_RET_ERRNO | 13
    );
    assert_eq!(
        run(program, X86_64, nr("getpid"), [0; 6]),
        libc::SECCOMP_RET_KILL_PROCESS
    );
    assert_eq!(run(program, X86_64, nr("openat"), [0; 6]), ENOSYS);
    assert_eq!(p.unknown_names, vec!["no_such_call".to_string()]);
    // Other architectures' numbers mean other calls: killed, not misjudged.
    assert_eq!(
        run(program, I386, 3, [0; 6]),
        libc::SECCOMP_RET_KILL_PROCESS
    );
    assert_eq!(
        run(program, X86_64, 0x4000_0000 | nr("read"), [0; 6]),
        ENOSYS
    );
}

#[test]
fn argument_conditions_compare_all_64_bits() {
    let rule = |op: &str, value: u64| {
        format!(
            r#"{{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {{"names": ["dup3"], "action": "SCMP_ACT_ERRNO",
                  "args": [{{"index": 2, "value": {value}, "op": "{op}"}}]}}]}}"#
        )
    };
    let verdict = |json: &str, arg: u64| {
        run(
            &compiled(json, &[]).program,
            X86_64,
            nr("dup3"),
            [0, 0, arg, 0, 0, 0],
        )
    };
    type Holds = fn(u64, u64) -> bool;
    let ops: [(&str, Holds); 6] = [
        ("SCMP_CMP_EQ", |a, v| a == v),
        ("SCMP_CMP_NE", |a, v| a != v),
        ("SCMP_CMP_GT", |a, v| a > v),
        ("SCMP_CMP_GE", |a, v| a >= v),
        ("SCMP_CMP_LT", |a, v| a < v),
        ("SCMP_CMP_LE", |a, v| a <= v),
    ];
    // Values whose halves differ in both directions, probed around each half.
    let values = [0x1_0000_0005u64, 0x5_0000_0001, 7];
    let probes = [
        0,
        1,
        5,
        6,
        7,
        0x0_ffff_ffff,
        0x1_0000_0004,
        0x1_0000_0005,
        0x1_0000_0006,
        0x3_0000_0000,
        0x3_0000_0002,
        0x5_0000_0000,
        0x5_0000_0001,
        0x5_0000_0002,
        0x6_0000_0000,
        u64::MAX,
    ];
    for (op, holds) in ops {
        for value in values {
            let json = rule(op, value);
            for arg in probes {
                let expected = if holds(arg, value) { EPERM } else { ALLOW };
                assert_eq!(verdict(&json, arg), expected, "{op} {value:#x} on {arg:#x}");
            }
        }
    }
    let masked = r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["dup3"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 2, "value": 4294967552, "valueTwo": 256, "op": "SCMP_CMP_MASKED_EQ"}]}]}"#;
    assert_eq!(verdict(masked, 0x100), EPERM);
    assert_eq!(verdict(masked, 0x1_0000_0100), ALLOW);
    assert_eq!(verdict(masked, 0xff), ALLOW);
}

#[test]
fn all_conditions_of_a_rule_must_hold() {
    let p = compiled(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [
              {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
              {"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]}]}"#,
        &[],
    );
    assert_eq!(
        run(&p.program, X86_64, nr("kill"), [1, 9, 0, 0, 0, 0]),
        EPERM
    );
    assert_eq!(
        run(&p.program, X86_64, nr("kill"), [1, 15, 0, 0, 0, 0]),
        ALLOW
    );
    assert_eq!(
        run(&p.program, X86_64, nr("kill"), [2, 9, 0, 0, 0, 0]),
        ALLOW
    );
}

#[test]
fn docker_includes_and_excludes_follow_the_capabilities() {
    let json = r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["getpid"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["getppid"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
        {"names": ["gettid"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "9.0"}}]}"#;
    let plain = compiled(json, &[]);
    let admin = compiled(json, &["CAP_SYS_ADMIN"]);
    assert_eq!(run(&plain.program, X86_64, nr("mount"), [0; 6]), EPERM);
    assert_eq!(run(&admin.program, X86_64, nr("mount"), [0; 6]), ALLOW);
    assert_eq!(run(&plain.program, X86_64, nr("getpid"), [0; 6]), ALLOW);
    assert_eq!(run(&admin.program, X86_64, nr("getpid"), [0; 6]), EPERM);
    assert_eq!(run(&plain.program, X86_64, nr("getppid"), [0; 6]), EPERM);
    assert_eq!(run(&plain.program, X86_64, nr("gettid"), [0; 6]), EPERM);
}

#[test]
fn bad_profiles_are_refused_with_the_reason() {
    let bad = |json: &str| {
        let profile = Profile::parse(json.as_bytes());
        match profile {
            Err(e) => e,
            Ok(p) => compile(&p, &Conditions::default()).unwrap_err(),
        }
    };
    assert!(bad(r#"{"defaultAction": "SCMP_ACT_FOO"}"#).contains("not a seccomp profile"));
    assert!(
        bad(r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_ARM"]}"#)
            .contains("this machine")
    );
    assert!(bad(r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["NOPE"]}"#).contains("NOPE"));
    assert!(bad(r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#).contains("listener"));
    assert!(bad(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}"#
    )
    .contains("index 6"));
    assert!(
        bad(r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 5000}"#).contains("5000")
    );
}

#[test]
fn the_default_profile_is_dockers_policy() {
    let plain = default_for(&["CAP_CHOWN", "CAP_SYS_CHROOT"]);
    let p = &plain.program;
    for ok in [
        "read",
        "openat",
        "execve",
        "capset",
        "setresuid",
        "close_range",
        "chroot",
    ] {
        assert_eq!(run(p, X86_64, nr(ok), [0; 6]), ALLOW, "{ok}");
    }
    for refused in [
        "mount",
        "umount2",
        "unshare",
        "setns",
        "pivot_root",
        "keyctl",
        "add_key",
        "bpf",
        "init_module",
        "kexec_load",
        "reboot",
        "io_uring_setup",
        "userfaultfd",
        "open_tree",
        "fsopen",
        "move_mount",
        "perf_event_open",
        "ptrace_not_a_call_skip",
    ] {
        if let Some(number) = syscall_number(refused) {
            assert_eq!(run(p, X86_64, number, [0; 6]), EPERM, "{refused}");
        }
    }
    // clone: threads and forks yes, namespaces no; clone3 falls back to clone.
    let threads = (libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u64;
    assert_eq!(run(p, X86_64, nr("clone"), [threads, 0, 0, 0, 0, 0]), ALLOW);
    let newns = (libc::SIGCHLD | libc::CLONE_NEWNS) as u64;
    assert_eq!(run(p, X86_64, nr("clone"), [newns, 0, 0, 0, 0, 0]), EPERM);
    assert_eq!(run(p, X86_64, nr("clone3"), [0; 6]), ENOSYS);
    assert_eq!(
        run(p, X86_64, nr("personality"), [0xffff_ffff, 0, 0, 0, 0, 0]),
        ALLOW
    );
    assert_eq!(
        run(p, X86_64, nr("personality"), [0x0040_0000, 0, 0, 0, 0, 0]),
        EPERM
    );
    // A call the table does not know yet.
    assert_eq!(run(p, X86_64, highest_number() + 1, [0; 6]), ENOSYS);

    let admin = default_for(&["CAP_SYS_ADMIN"]);
    assert_eq!(run(&admin.program, X86_64, nr("mount"), [0; 6]), ALLOW);
    assert_eq!(
        run(&admin.program, X86_64, nr("clone"), [newns, 0, 0, 0, 0, 0]),
        ALLOW
    );
    assert_eq!(run(&admin.program, X86_64, nr("clone3"), [0; 6]), ALLOW);
    assert_eq!(run(&admin.program, X86_64, nr("keyctl"), [0; 6]), EPERM);
}

#[test]
fn every_jump_lands_inside_the_program() {
    for program in [
        default_for(&[]).program,
        default_for(&["CAP_SYS_ADMIN"]).program,
    ] {
        assert!(program.len() < 4096);
        for (i, insn) in program.iter().enumerate() {
            if u32::from(insn.code) & 0x07 == libc::BPF_JMP {
                let far = i + 1 + usize::from(insn.jt.max(insn.jf));
                assert!(far < program.len(), "jump at {i} leaves the program");
            }
        }
        let last = program.last().unwrap();
        assert_eq!(u32::from(last.code), libc::BPF_RET | libc::BPF_K);
    }
}

#[test]
fn choices_parse_and_a_bad_file_is_refused_early() {
    assert_eq!("default".parse::<Choice>().unwrap(), Choice::Default);
    assert_eq!("unconfined".parse::<Choice>().unwrap(), Choice::Unconfined);
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    std::fs::write(&good, r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#).unwrap();
    assert!(matches!(
        good.to_str().unwrap().parse::<Choice>(),
        Ok(Choice::File(_))
    ));
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{").unwrap();
    let err = bad.to_str().unwrap().parse::<Choice>().unwrap_err();
    assert!(err.contains("bad.json"), "{err}");
    assert!("/no/such/profile.json".parse::<Choice>().is_err());
}
