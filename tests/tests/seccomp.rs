//! Issue 17, item 4: seccomp profiles. A container in mntns's container mode gets the default
//! profile (Docker's policy), `--seccomp FILE` takes an OCI `linux.seccomp` object or a
//! Docker/podman profile, `--seccomp unconfined` opts out, and a process joined later
//! (`nsps exec`, `mntns --join`) gets the profile its container recorded.
//!
//! Each refusal is shown against the same call succeeding where the profile is off.

use std::path::Path;
use std::process::{Command, Stdio};

use nschain_tests::*;

/// Python run inside the container: the raw system calls, each reported as `NAME=0` or
/// `NAME=ERRNONAME` (libc's syscall(), so no wrapper second-guesses the kernel).
const PROBE: &str = r#"
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
def call(name, nr, *args):
    rc = libc.syscall(nr, *args)
    e = ctypes.get_errno()
    print(f"{name}=" + ("0" if rc >= 0 else errno.errorcode.get(e, str(e))), flush=True)
call("unshare_user", 272, 0x10000000)
call("keyctl", 250, 0, -3, 1)
call("clone3", 435, 0, 0)
call("getpid", 39)
call("userfaultfd", 323, 1)
for line in open("/proc/self/status"):
    if line.startswith("Seccomp"):
        print(line.strip().replace(":\t", "="), flush=True)
"#;

fn need() -> bool {
    need::root() && require(have("python3"), "python3")
}

fn mntns(state: &Path, args: &[&str]) -> Command {
    let mut cmd = tool("mntns", state);
    cmd.args(args);
    cmd
}

fn probe(state: &Path, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["--", "python3", "-c", PROBE]);
    ok(&mut mntns(state, &all))
}

#[test]
fn the_default_profile_refuses_what_docker_refuses() {
    if !need() {
        return;
    }
    let dir = scratch();
    // Proof: the same calls, no profile: a new user namespace is made, keyctl answers.
    let open = probe(
        dir.path(),
        &["--overlay", "/", "--rm", "--seccomp", "unconfined"],
    );
    assert!(open.contains("unshare_user=0"), "{open}");
    assert!(!open.contains("keyctl=EPERM"), "{open}");
    assert!(
        open.contains("Seccomp_filters=1"),
        "only the terminal filter: {open}"
    );
    // The default: refused with EPERM; clone3 says ENOSYS so libc falls back to clone.
    let confined = probe(dir.path(), &["--overlay", "/", "--rm"]);
    for line in [
        "unshare_user=EPERM",
        "keyctl=EPERM",
        "clone3=ENOSYS",
        "getpid=0",
        "userfaultfd=EPERM",
        "Seccomp=2",
        "Seccomp_filters=2",
    ] {
        assert!(confined.contains(line), "{line} missing in:\n{confined}");
    }
}

#[test]
fn the_default_profile_follows_the_capabilities() {
    if !need() {
        return;
    }
    let dir = scratch();
    // CAP_SYS_ADMIN makes namespaces legitimate again, as in Docker's profile.
    let admin = probe(
        dir.path(),
        &["--overlay", "/", "--rm", "--cap-add", "SYS_ADMIN"],
    );
    assert!(admin.contains("unshare_user=0"), "{admin}");
    assert!(
        admin.contains("keyctl=EPERM"),
        "never, whatever the caps: {admin}"
    );
}

#[test]
fn a_rootless_container_gets_the_default_profile_too() {
    if !(need() && need::rootless()) {
        return;
    }
    let dir = scratch();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let chmod = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap()
    };
    chmod(dir.path());
    chmod(&state);
    let run_as_nobody = |extra: &[&str]| {
        let mut cmd = tool("userns", &state);
        cmd.args(["--", "mntns", "--overlay", "/", "--rm"]);
        cmd.args(extra);
        cmd.args(["--", "python3", "-c", PROBE]);
        ok(&mut as_nobody(&cmd))
    };
    let open = run_as_nobody(&["--seccomp", "unconfined"]);
    assert!(open.contains("unshare_user=0"), "{open}");
    let confined = run_as_nobody(&[]);
    assert!(confined.contains("unshare_user=EPERM"), "{confined}");
    assert!(confined.contains("Seccomp_filters=2"), "{confined}");
}

#[test]
fn a_profile_file_applies_with_or_without_a_new_root() {
    if !need() {
        return;
    }
    let dir = scratch();
    let profile = dir.path().join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )
    .unwrap();
    let target = dir.path().join("made");
    let script = format!("mkdir {} && echo made", target.display());
    // Without the profile, mntns (no new root) leaves system calls alone.
    let plain = ok(&mut mntns(dir.path(), &["--", "sh", "-c", &script]));
    assert!(plain.contains("made"), "{plain}");
    std::fs::remove_dir(&target).unwrap();
    let out = run(&mut mntns(
        dir.path(),
        &[
            "--seccomp",
            profile.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            &script,
        ],
    ));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
    assert!(!target.exists());
    // In a new root the file replaces the default: a new user namespace is allowed again.
    let replaced = probe(
        dir.path(),
        &[
            "--overlay",
            "/",
            "--rm",
            "--seccomp",
            profile.to_str().unwrap(),
        ],
    );
    assert!(replaced.contains("unshare_user=0"), "{replaced}");
}

#[test]
fn podmans_own_profile_file_runs_a_container() {
    let podman_profile = Path::new("/usr/share/containers/seccomp.json");
    if !(need()
        && require(
            podman_profile.exists(),
            "/usr/share/containers/seccomp.json (golang-github-containers-common)",
        ))
    {
        return;
    }
    let dir = scratch();
    let out = probe(
        dir.path(),
        &[
            "--overlay",
            "/",
            "--rm",
            "--seccomp",
            "/usr/share/containers/seccomp.json",
        ],
    );
    // podman's profile lets namespaces be made (unlike Docker's); userfaultfd it refuses.
    assert!(out.contains("getpid=0"), "{out}");
    assert!(out.contains("unshare_user=0"), "{out}");
    assert!(out.contains("userfaultfd=EPERM"), "{out}");
    assert!(out.contains("Seccomp_filters=2"), "{out}");
}

fn nsps_exec_probe(state: &Path, name: &str) -> String {
    let mut cmd = tool("nsps", state);
    cmd.args(["exec", name, "--", "python3", "-c", PROBE]);
    ok(&mut cmd)
}

#[test]
fn a_joined_process_gets_the_profile_its_container_recorded() {
    if !need() {
        return;
    }
    let dir = scratch();
    let state = dir.path();
    let mut started = Vec::new();
    for (name, extra) in [
        ("scopen", &["--seccomp", "unconfined"][..]),
        ("scdefault", &[][..]),
    ] {
        let mut cmd = tool("pidns", state);
        cmd.args(["--", "mntns", "--overlay", "/", "--rm", "--name", name]);
        cmd.args(extra);
        cmd.args(["--", "sleep", "60"]);
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_record(&state.join("run/chains").join(name), "mnt");
        started.push(child);
    }
    let open = nsps_exec_probe(state, "scopen");
    assert!(open.contains("unshare_user=0"), "{open}");
    let confined = nsps_exec_probe(state, "scdefault");
    assert!(confined.contains("unshare_user=EPERM"), "{confined}");
    assert!(confined.contains("keyctl=EPERM"), "{confined}");
    // mntns --join takes the recorded profile as well, unless --seccomp says otherwise.
    let join = |extra: &[&str]| {
        let mut cmd = tool("pidns", state);
        cmd.args(["--join", "scdefault", "--", "mntns", "--join", "scdefault"]);
        cmd.args(extra);
        cmd.args(["--", "python3", "-c", PROBE]);
        ok(&mut cmd)
    };
    assert!(join(&[]).contains("unshare_user=EPERM"));
    assert!(join(&["--seccomp", "unconfined"]).contains("unshare_user=0"));
    for mut child in started {
        // SAFETY: a signal to our own child, which pidns forwards to the container.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let _ = child.wait();
    }
}

#[test]
fn bad_profiles_fail_with_125_before_anything_is_made() {
    if !need() {
        return;
    }
    let dir = scratch();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let cases: Vec<(String, &str)> = vec![
        (
            String::new(),
            "expected default, unconfined or a profile file",
        ),
        (
            dir.path().join("missing.json").display().to_string(),
            "No such file",
        ),
        (write("junk.json", "{"), "not a seccomp profile"),
        (
            write(
                "arm.json",
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_AARCH64"]}"#,
            ),
            "this machine",
        ),
        (
            write("notify.json", r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#),
            "listener",
        ),
        (
            write("action.json", r#"{"defaultAction": "SCMP_ACT_MAYBE"}"#),
            "not a seccomp profile",
        ),
    ];
    for (value, expected) in cases {
        let out = run(&mut mntns(
            dir.path(),
            &["--overlay", "/", "--seccomp", &value, "--", "true"],
        ));
        assert_fatal(&out, "mntns");
        assert!(stderr(&out).contains(expected), "{value}: {}", stderr(&out));
        let layers = dir.path().join("data/overlay");
        let left = std::fs::read_dir(&layers).map(|d| d.count()).unwrap_or(0);
        assert_eq!(left, 0, "{value}: a layer was left in {}", layers.display());
    }
}
