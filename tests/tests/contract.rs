//! The chain contract (DESIGN.md §1), checked against every tool binary of the workspace:
//! help and version, usage errors, 126/127, the default shell, argv pass-through, exit status
//! and SIGPIPE disposition of the payload.

use std::path::Path;
use std::process::Command;

use nschain_tests::*;

/// Every namespace tool of the workspace (a directory under tools/ is a tool);
/// `NSCHAIN_TEST_TOOLS="utsns ipcns"` narrows the list while a tool is being written.
fn tools() -> Vec<String> {
    if let Ok(list) = std::env::var("NSCHAIN_TEST_TOOLS") {
        return list.split_whitespace().map(str::to_owned).collect();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools");
    let mut tools: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|t| t.ends_with("ns"))
        .collect();
    tools.sort();
    assert!(tools.len() >= 2, "no tools found");
    tools
}

/// Runs `tool ARGS` for every tool and hands each output to `check`.
fn for_each_tool(args: &[&str], check: impl Fn(&str, &std::process::Output)) {
    let state = scratch();
    for name in tools() {
        let mut cmd = tool(&name, state.path());
        cmd.args(args);
        check(&name, &run(&mut cmd));
    }
}

#[test]
fn help_and_version_print_to_stdout_and_exit_0() {
    for flag in ["--help", "--version", "-h", "-V"] {
        for_each_tool(&[flag], |name, out| {
            assert_eq!(out.status.code(), Some(0), "{name} {flag}");
            assert!(stdout(out).contains(name), "{name} {flag}: {}", stdout(out));
            assert!(out.stderr.is_empty(), "{name} {flag} wrote to stderr");
        });
    }
}

#[test]
fn an_unknown_option_is_a_usage_error_125_naming_the_tool() {
    for_each_tool(&["--no-such-option", "true"], |name, out| {
        assert_fatal(out, name);
        assert!(stderr(out).contains("--no-such-option"), "{}", stderr(out));
    });
}

#[test]
fn a_missing_command_exits_127() {
    require(
        is_root(),
        "root (every tool must be able to create its namespace)",
    );
    for_each_tool(&["--", "/nonexistent/nschain-cmd"], |name, out| {
        assert_eq!(out.status.code(), Some(127), "{name}: {}", stderr(out));
        assert_eq!(
            stderr(out).lines().next().unwrap_or_default(),
            format!("{name}: fatal: unable to execute /nonexistent/nschain-cmd: No such file or directory"),
        );
    });
}

#[test]
fn a_non_executable_file_exits_126() {
    require(is_root(), "root");
    let dir = scratch();
    let file = dir.path().join("not-executable");
    write_exe(&file, "#!/bin/sh\necho hi\n", 0o644);
    for_each_tool(&["--", file.to_str().unwrap()], |name, out| {
        assert_eq!(out.status.code(), Some(126), "{name}: {}", stderr(out));
        assert!(stderr(out).starts_with(&format!("{name}: fatal: unable to execute")));
    });
}

#[test]
fn no_command_runs_the_shell_or_bin_sh() {
    require(is_root(), "root");
    let state = scratch();
    for name in tools() {
        let mut cmd = tool(&name, state.path());
        cmd.env("SHELL", "/bin/echo");
        assert_eq!(ok(&mut cmd), "", "{name} with SHELL=/bin/echo");
        let mut cmd = tool(&name, state.path());
        cmd.env("SHELL", "/bin/sh")
            .stdin(std::process::Stdio::piped());
        let child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
        use std::io::Write;
        let mut child = child;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"echo from-shell-$((6*7))\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(stdout(&out), "from-shell-42", "{name}");
        let mut cmd = tool(&name, state.path());
        cmd.env_remove("SHELL");
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"echo $0\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(stdout(&out), "/bin/sh", "{name} without SHELL");
    }
}

#[test]
fn option_like_words_of_the_command_pass_through_untouched() {
    require(is_root(), "root");
    for args in [
        vec![
            "--",
            "sh",
            "-c",
            "echo -n x; echo \"$@\"",
            "sh",
            "--",
            "--help",
            "-V",
        ],
        vec![
            "sh",
            "-c",
            "echo -n x; echo \"$@\"",
            "sh",
            "--",
            "--help",
            "-V",
        ],
    ] {
        for_each_tool(&args, |name, out| {
            assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(out));
            assert_eq!(stdout(out), "x-- --help -V", "{name} {args:?}");
        });
    }
}

#[test]
fn the_payload_exit_status_comes_back_unchanged() {
    require(is_root(), "root");
    for code in [0, 1, 3, 42, 125, 126, 127, 255] {
        let script = format!("exit {code}");
        for_each_tool(&["--", "sh", "-c", &script], |name, out| {
            assert_eq!(out.status.code(), Some(code), "{name}: {}", stderr(out));
        });
    }
}

#[test]
fn sigpipe_is_at_its_default_in_the_payload() {
    require(is_root(), "root");
    // SigIgn is the mask of ignored signals; SIGPIPE is bit 13 (value 0x1000).
    for_each_tool(
        &["--", "grep", "SigIgn", "/proc/self/status"],
        |name, out| {
            let mask = stdout(out);
            let hex = mask.split_whitespace().last().unwrap_or_default();
            let bits = u64::from_str_radix(hex, 16).unwrap();
            assert_eq!(
                bits & (1 << 12),
                0,
                "{name}: SIGPIPE ignored in the payload ({mask})"
            );
        },
    );
    // And a writer into a closed pipe dies of SIGPIPE rather than seeing EPIPE.
    let state = scratch();
    for name in tools() {
        let mut bash = Command::new("bash");
        with_env(&mut bash, state.path());
        bash.args([
            "-c",
            &format!("{name} -- yes | head -n 1 >/dev/null; echo ${{PIPESTATUS[0]}}"),
        ]);
        assert_eq!(ok(&mut bash), "141", "{name}: `yes` did not die of SIGPIPE");
    }
}

#[test]
fn debug_traces_each_step_with_its_duration() {
    require(is_root(), "root");
    let state = scratch();
    let mut cmd = tool("utsns", state.path());
    cmd.env("NSCHAIN_DEBUG", "1")
        .args(["--hostname", "dbg", "--", "ipcns", "--", "true"]);
    let out = run(&mut cmd);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    for expected in [
        "utsns[",
        "debug: unshare(uts) (",
        "debug: sethostname (",
        "ipcns[",
        "debug: unshare(ipc) (",
        "debug: exec true (at ",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(err.lines().all(|l| l.ends_with(" ms)")), "{err}");
}
