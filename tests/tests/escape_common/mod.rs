//! What the escape, fault, bad-input and load suites share: a throwaway "host" (network, IPC
//! and UTS namespaces made by the test, so nothing of the machine is touched), a busybox
//! container root carrying the attacker program `nsattack` (C, built with `gcc -static` at
//! test time so that it runs in any root), the three chain configurations the suites attack,
//! and the leak audit around every run.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use nschain_tests::audit::{assert_nothing_left_watching, snapshot_watching, Snapshot};
use nschain_tests::*;

/// The tools of the chain (and nsps), as built beside the tests.
pub const TOOLS: &[&str] = &[
    "netns", "userns", "ipcns", "utsns", "pidns", "mntns", "nsps", "timens", "cgroupns",
];

const APPLETS: &[&str] = &[
    "sh", "cat", "ls", "echo", "true", "false", "sleep", "hostname", "id", "stat", "test", "mkdir",
    "rm", "ln", "readlink", "wc", "head",
];

/// The attacker's C source (one mode per attack; see the file).
const NSATTACK_C: &str = include_str!("nsattack.c");

/// Builds `nsattack` once per test process (static: the busybox root has no libc).
pub fn attacker() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            assert!(
                require(
                    have("gcc"),
                    "gcc and a static libc (libc6-dev) to build nsattack"
                ),
                "gcc is needed"
            );
            let dir = bin_dir();
            let src = dir.join(format!(".nsattack-{}.c", std::process::id()));
            let tmp = dir.join(format!(".nsattack-{}", std::process::id()));
            std::fs::write(&src, NSATTACK_C).unwrap();
            let out = Command::new("gcc")
                .args(["-static", "-O1", "-Wall", "-o"])
                .arg(&tmp)
                .arg(&src)
                .output()
                .unwrap();
            let _ = std::fs::remove_file(&src);
            assert!(
                out.status.success(),
                "gcc -static nsattack.c failed: {}",
                stderr(&out)
            );
            let ldd = Command::new("ldd").arg(&tmp).output().unwrap();
            let text = String::from_utf8_lossy(&ldd.stdout).into_owned()
                + &String::from_utf8_lossy(&ldd.stderr);
            assert!(
                text.contains("not a dynamic executable") || text.contains("statically linked"),
                "nsattack is not static: {text}"
            );
            let path = dir.join("nsattack");
            std::fs::rename(&tmp, &path).unwrap();
            path
        })
        .clone()
}

/// Whether /bin/busybox (Debian's busybox-static) is there; under CI its absence fails.
pub fn have_busybox() -> bool {
    nschain_tests::need::busybox()
}

/// A busybox root in `dir/root`, readable by everyone, with `/nsattack` in it.
pub fn busybox_root(dir: &Path) -> PathBuf {
    let root = nschain_tests::roots::busybox_root(dir, APPLETS);
    for d in ["tmp", "mnt"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    copy_exe(&attacker(), &root.join("nsattack"));
    root
}

fn unique(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "nsc-{tag}-{}-{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A throwaway network namespace (`ip netns`) that plays the host; deleted on drop.
pub struct HostNs {
    pub name: String,
}

impl HostNs {
    pub fn new(tag: &str) -> HostNs {
        let name = unique(tag);
        let out = run(Command::new("ip").args(["netns", "add", &name]));
        assert!(out.status.success(), "ip netns add: {}", stderr(&out));
        run(Command::new("ip").args(["-n", &name, "link", "set", "lo", "up"]));
        HostNs { name }
    }
}

impl Drop for HostNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// The three chains every attack runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Config {
    /// As root: netns → ipcns → utsns → pidns → mntns --rootfs.
    Rootful,
    /// As root with a user namespace: netns → userns --map-auto → ipcns → ... → mntns.
    RootfulUserns,
    /// As uid 65534: userns → netns → ipcns → utsns → pidns → mntns --rootfs.
    Rootless,
}

impl Config {
    pub const ALL: [Config; 3] = [Config::Rootful, Config::RootfulUserns, Config::Rootless];

    pub fn name(self) -> &'static str {
        match self {
            Config::Rootful => "rootful",
            Config::RootfulUserns => "rootful+userns --map-auto",
            Config::Rootless => "rootless (uid 65534)",
        }
    }

    /// The links before mntns, `--name NAME` on the first one.
    pub fn links(self, name: Option<&str>) -> Vec<String> {
        let order: &[&str] = match self {
            Config::Rootful => &["netns", "ipcns", "utsns", "pidns"],
            Config::RootfulUserns => &["netns", "userns --map-auto", "ipcns", "utsns", "pidns"],
            Config::Rootless => &["userns", "netns", "ipcns", "utsns", "pidns"],
        };
        let mut argv = Vec::new();
        for (i, link) in order.iter().enumerate() {
            argv.extend(link.split(' ').map(str::to_owned));
            if i == 0 {
                if let Some(name) = name {
                    argv.extend(["--name".to_owned(), name.to_owned()]);
                }
            }
            argv.push("--".to_owned());
        }
        argv
    }
}

/// One test's world: scratch dir, state dirs, busybox root, throwaway host.
pub struct Lab {
    pub dir: tempfile::TempDir,
    pub state: PathBuf,
    pub root: PathBuf,
    pub host: HostNs,
    /// A private copy of the tools, first on PATH (so that nothing else runs them).
    pub bin: Option<PathBuf>,
    before: Snapshot,
}

impl Lab {
    pub fn new(tag: &str) -> Lab {
        let dir = scratch();
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
        let root = busybox_root(dir.path());
        let host = HostNs::new(tag);
        let before = snapshot_watching(&state, Some(&host.name), &[dir.path()]);
        Lab {
            dir,
            state,
            root,
            host,
            bin: None,
            before,
        }
    }

    /// Copies the tools into a directory of this lab and puts it first on PATH.
    pub fn private_tools(&mut self) -> Vec<PathBuf> {
        let bin = self.dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut copies = Vec::new();
        for t in TOOLS {
            let dst = bin.join(t);
            copy_exe(&nschain_tests::bin(t), &dst);
            copies.push(dst);
        }
        self.bin = Some(bin);
        copies
    }

    /// The environment of every command of this lab.
    pub fn env(&self, cmd: &mut Command) {
        with_env(cmd, &self.state);
        if let Some(bin) = &self.bin {
            let path = format!(
                "{}:{}:/usr/sbin:/usr/bin:/sbin:/bin",
                bin.display(),
                bin_dir().display()
            );
            cmd.env("PATH", path);
        }
    }

    /// `ip netns exec HOST unshare --ipc --uts -- sh -c PRE; ARGV` (as uid 65534 after the
    /// wrapper when `nobody`). The "host" hostname is set to `nsc-host` first and printed on
    /// stderr as `host-hostname=...` after ARGV.
    pub fn in_host(&self, pre: &str, nobody: bool, argv: &[String]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &self.host.name,
            "unshare",
            "--ipc",
            "--uts",
            "--",
        ]);
        cmd.args(["sh", "-c"]).arg(format!(
            "hostname nsc-host; {pre}\n\"$@\"; rc=$?; echo \"host-hostname=$(hostname)\" >&2; exit $rc"
        ));
        cmd.arg("sh");
        if nobody {
            cmd.args(setpriv_as(NOBODY));
        }
        cmd.args(argv);
        self.env(&mut cmd);
        cmd.current_dir(self.dir.path());
        cmd
    }

    /// The argv of a whole chain of `config` running `command` in this lab's root.
    pub fn chain_argv(
        &self,
        config: Config,
        name: Option<&str>,
        mntns_args: &[&str],
        command: &[&str],
    ) -> Vec<String> {
        let mut argv = config.links(name);
        argv.push("mntns".to_owned());
        if !mntns_args.contains(&"--overlay") {
            argv.push("--rootfs".to_owned());
            argv.push(self.root.display().to_string());
        }
        argv.extend(mntns_args.iter().map(|s| (*s).to_owned()));
        argv.push("--".to_owned());
        argv.extend(command.iter().map(|s| (*s).to_owned()));
        argv
    }

    /// The chain of `config` running `command`, in the throwaway host.
    pub fn chain(
        &self,
        config: Config,
        pre: &str,
        mntns_args: &[&str],
        command: &[&str],
    ) -> Command {
        let argv = self.chain_argv(config, None, mntns_args, command);
        self.in_host(pre, config == Config::Rootless, &argv)
    }

    /// SIGKILLs every process that carries this lab's NSCHAIN_RUN_DIR (its containers).
    pub fn kill_all(&self) {
        let marker = format!("NSCHAIN_RUN_DIR={}", self.state.join("run").display());
        for p in nschain_tests::audit::processes_with_env(&marker) {
            let pid: i32 = p.split(' ').next().unwrap().parse().unwrap();
            // SAFETY: kill(2) on a process of this lab's containers.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }

    /// SIGKILLs this lab's processes until none is left (up to 30 s).
    pub fn kill_all_and_wait(&self) {
        let marker = format!("NSCHAIN_RUN_DIR={}", self.state.join("run").display());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !nschain_tests::audit::processes_with_env(&marker).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the lab's processes do not die"
            );
            self.kill_all();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The registration directory of chain `name` in this lab's state.
    pub fn chain_dir(&self, name: &str) -> PathBuf {
        self.state.join("run/chains").join(name)
    }

    /// Waits until chain `name` registered its mount namespace (its mntns is set up).
    pub fn wait_registered(&self, name: &str) {
        wait_for_record(&self.chain_dir(name), "mnt");
    }

    /// Whether chain `name` has a user namespace to join.
    pub fn has_user(&self, name: &str) -> bool {
        self.chain_dir(name).has_record("user")
    }

    /// Makes the lab's bridge on `subnet` and its nft table (the host's shared objects, kept),
    /// then takes the audit's baseline again.
    pub fn make_bridge(&mut self, subnet: &str) {
        let argv: Vec<String> = ["netns", "--bridge", "--subnet", subnet, "--", "true"]
            .map(str::to_owned)
            .to_vec();
        let out = run(&mut self.in_host("", false, &argv));
        assert!(out.status.success(), "netns --bridge: {}", stderr(&out));
        self.rebase_settled();
    }

    /// Waits (up to 30 s) until no process of this lab runs, then takes the baseline again.
    pub fn rebase_settled(&mut self) {
        let marker = format!("NSCHAIN_RUN_DIR={}", self.state.join("run").display());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !nschain_tests::audit::processes_with_env(&marker).is_empty()
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        self.rebase();
    }

    /// Takes the audit's baseline again (after making the host's shared objects on purpose:
    /// a bridge, the nft table).
    pub fn rebase(&mut self) {
        self.before = snapshot_watching(&self.state, Some(&self.host.name), &[self.dir.path()]);
    }

    /// Asserts that the runs of this lab left nothing behind (mounts, links, nft, state
    /// files, processes carrying its NSCHAIN_RUN_DIR).
    pub fn assert_clean(&self) {
        self.assert_clean_keeping(&[]);
    }

    /// [`Lab::assert_clean`], allowing the state files under `kept`.
    pub fn assert_clean_keeping(&self, kept: &[&Path]) {
        assert_nothing_left_watching(
            &self.before,
            &self.state,
            Some(&self.host.name),
            kept,
            &[self.dir.path()],
        );
    }

    /// The data directories of the `--map-auto` ranges (`DATA/userns-<uid>`) used so far.
    pub fn range_data_dirs(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.state.join("data"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("userns-"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The `dev:ino` of files, as nsattack's exe-watch takes them.
pub fn dev_ino(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|p| {
            let m = std::fs::metadata(p).unwrap();
            format!("{}:{}", m.dev(), m.ino())
        })
        .collect()
}

/// Asserts that an attack was blocked: the attacker exited 0, printed at least one BLOCKED
/// line and no ESCAPED line. `claim` names the CVE or the promise the case guards.
pub fn assert_blocked(claim: &str, config: Config, out: &Output) {
    if let Err(e) = check_blocked(claim, config, out) {
        panic!("{e}");
    }
}

/// [`assert_blocked`] as a result, for tests that try every configuration before failing.
pub fn check_blocked(claim: &str, config: Config, out: &Output) -> Result<(), String> {
    let text = stdout(out);
    let escaped: Vec<&str> = text.lines().filter(|l| l.contains("ESCAPED")).collect();
    if !escaped.is_empty() {
        return Err(format!(
            "HOLE [{claim}] in the {} chain:\n{}\n--- full attacker output:\n{text}\n--- stderr:\n{}",
            config.name(),
            escaped.join("\n"),
            stderr(out)
        ));
    }
    if !(out.status.success() && text.lines().any(|l| l.contains("BLOCKED"))) {
        return Err(format!(
            "[{claim}] the attack did not run in the {} chain (status {}):\nstdout:\n{text}\nstderr:\n{}",
            config.name(),
            out.status,
            stderr(out)
        ));
    }
    Ok(())
}

/// Panics with every failure of `results` (one per configuration), if any.
pub fn assert_all(results: Vec<Result<(), String>>) {
    let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Whether the chains as uid 65534 can run here (under CI their absence fails).
pub fn need_rootless() -> bool {
    nschain_tests::need::rootless()
}

/// The requirements of the rootful suites: a throwaway host and a busybox root.
pub fn need_root() -> bool {
    nschain_tests::need::lab()
}

// Loop devices (escape_devices, escape_setuid)

/// A loop device attached to a file of the test (`losetup -f --show`), detached on drop.
pub struct LoopDevice {
    pub dev: String,
    pub file: PathBuf,
    pub major: u32,
    pub minor: u32,
}

impl LoopDevice {
    /// A file of `size_mib` MiB at `file` (an empty ext4 when `ext4`), attached.
    pub fn new(file: &Path, size_mib: u64, ext4: bool) -> LoopDevice {
        let f = std::fs::File::create(file).unwrap();
        f.set_len(size_mib << 20).unwrap();
        drop(f);
        if ext4 {
            let out = run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(file));
            assert!(out.status.success(), "mkfs.ext4: {}", stderr(&out));
        }
        let out = run(Command::new("losetup").args(["-f", "--show"]).arg(file));
        assert!(out.status.success(), "losetup -f --show: {}", stderr(&out));
        let dev = stdout(&out).trim().to_owned();
        let meta = std::fs::metadata(&dev).unwrap();
        assert!(
            std::os::unix::fs::FileTypeExt::is_block_device(&meta.file_type()),
            "{dev}"
        );
        let rdev = meta.rdev();
        LoopDevice {
            dev,
            file: file.to_owned(),
            major: libc::major(rdev),
            minor: libc::minor(rdev),
        }
    }

    /// Whether `marker` reached the file behind the loop device.
    pub fn holds(&self, marker: &str) -> bool {
        let data = std::fs::read(&self.file).unwrap();
        data.windows(marker.len()).any(|w| w == marker.as_bytes())
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}
