//! userns: root inside and the caller (or mapped ids) outside, as root and as uid 65534;
//! ranges written directly and through the real newuidmap/newgidmap with a private
//! /etc/subuid and /etc/subgid; --map-auto leases for concurrent chains; ordering; named
//! chains, pin and join; --keep-caps; every bad value refused with nothing left behind.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use nschain_tests::audit::{assert_nothing_left, snapshot};
use nschain_tests::*;

fn userns(state: &Path, args: &[&str]) -> Command {
    let mut cmd = tool("userns", state);
    cmd.args(args);
    cmd
}

/// `cmd` run as uid/gid 65534 with a private /etc/subuid and /etc/subgid, bind-mounted in a
/// private mount namespace (the machine's files are never touched).
fn nobody_with_subids(cmd: &Command, dir: &Path, subuid: &str, subgid: &str) -> Command {
    // Fresh files per call: a running chain may be reading the previous ones.
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, Ordering::SeqCst);
    let uid_file = dir.join(format!("subuid.{n}"));
    let gid_file = dir.join(format!("subgid.{n}"));
    std::fs::write(&uid_file, subuid).unwrap();
    std::fs::write(&gid_file, subgid).unwrap();
    let mut wrapped = Command::new("unshare");
    wrapped.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        "mount --bind \"$1\" /etc/subuid && mount --bind \"$2\" /etc/subgid && shift 2 && \
         exec setpriv --reuid 65534 --regid 65534 --clear-groups -- \"$@\"",
        "sh",
    ]);
    wrapped.arg(&uid_file).arg(&gid_file);
    wrapped.arg(cmd.get_program()).args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => wrapped.env(key, v),
            None => wrapped.env_remove(key),
        };
    }
    wrapped
}

/// The tests that hand out ranges of the built-in pool as root and assert which one comes
/// next run one at a time (each has its own lease directory, but the host's uids are shared).
static POOL: Mutex<()> = Mutex::new(());

fn pool_lock() -> std::sync::MutexGuard<'static, ()> {
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

fn need_root() -> bool {
    nschain_tests::need::root()
}

fn need_rootless() -> bool {
    nschain_tests::need::rootless()
}

/// A directory every id can write to, for files made inside.
fn open_dir(state: &Path, name: &str) -> PathBuf {
    let dir = state.join(name);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

fn owner(path: &Path) -> (u32, u32) {
    let meta = std::fs::metadata(path).unwrap();
    (meta.uid(), meta.gid())
}

fn lines(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// The lease files under the state directory.
fn leases(state: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(state.join("run/userns"))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with("lease-")
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn map_root_as_root_makes_root_inside_and_files_stay_the_callers() {
    if !need_root() {
        return;
    }
    let state = scratch();
    for args in [&["--"][..], &["--map-root", "--"][..]] {
        let mut cmd = userns(state.path(), args);
        cmd.arg("nsprobe");
        let probe = probe_json(&ok(&mut cmd));
        assert_eq!(probe["uid"], "0 0 0 0");
        assert_eq!(lines(&probe["uid_map"]), ["0 0 1"]);
        assert_eq!(lines(&probe["gid_map"]), ["0 0 1"]);
        assert_eq!(probe["setgroups"], "deny");
        assert_ne!(probe["ns"]["user"], own_ns_inode("user"));
    }
    assert_eq!(
        ok(&mut userns(state.path(), &["--map-root", "--", "id", "-u"])),
        "0"
    );
    let dir = open_dir(state.path(), "files");
    let file = dir.join("made-inside");
    ok(userns(state.path(), &["--map-root", "--", "touch"]).arg(&file));
    assert_eq!(owner(&file), (0, 0));
}

#[test]
fn map_root_as_nobody_makes_root_inside_and_files_stay_the_callers() {
    if !need_rootless() {
        return;
    }
    let state = scratch();
    for args in [&["--"][..], &["--map-root", "--"][..]] {
        let mut cmd = userns(state.path(), args);
        cmd.arg("nsprobe");
        let probe = probe_json(&ok(&mut as_nobody(&cmd)));
        assert_eq!(probe["uid"], "0 0 0 0");
        assert_eq!(probe["gid"], "0 0 0 0");
        assert_eq!(lines(&probe["uid_map"]), ["0 65534 1"]);
        assert_eq!(lines(&probe["gid_map"]), ["0 65534 1"]);
        assert_eq!(probe["setgroups"], "deny");
    }
    let id = ok(&mut as_nobody(&userns(
        state.path(),
        &["--map-root", "--", "id", "-u"],
    )));
    assert_eq!(id, "0");
    let dir = open_dir(state.path(), "files");
    let file = dir.join("made-inside");
    let mut cmd = userns(state.path(), &["--", "touch"]);
    cmd.arg(&file);
    ok(&mut as_nobody(&cmd));
    assert_eq!(owner(&file), (65534, 65534));
}

#[test]
fn ranges_as_root_are_written_exactly_and_own_files() {
    if !need_root() {
        return;
    }
    let state = scratch();
    let probe = probe_json(&ok(&mut userns(
        state.path(),
        &[
            "--map-users",
            "0:310000:65536",
            "--map-users",
            "70000:420000:10",
            "--map-groups",
            "0:320000:65536",
            "--",
            "nsprobe",
        ],
    )));
    assert_eq!(
        lines(&probe["uid_map"]),
        ["0 310000 65536", "70000 420000 10"]
    );
    assert_eq!(lines(&probe["gid_map"]), ["0 320000 65536"]);
    assert_eq!(probe["uid"], "0 0 0 0");
    assert_eq!(probe["setgroups"], "allow");

    let dir = open_dir(state.path(), "files");
    let file = dir.join("root-inside");
    ok(userns(
        state.path(),
        &[
            "--map-users",
            "0:310000:65536",
            "--map-groups",
            "0:320000:65536",
            "--",
            "touch",
        ],
    )
    .arg(&file));
    assert_eq!(owner(&file), (310000, 320000));

    // --map-user with ranges picks which mapped uid to become.
    let file = dir.join("uid-70005");
    let out = ok(userns(
        state.path(),
        &[
            "--map-users",
            "0:310000:65536",
            "--map-users",
            "70000:420000:10",
            "--map-groups",
            "0:320000:65536",
            "--map-user",
            "70005",
            "--map-group",
            "7",
            "--setgroups",
            "deny",
            "--",
            "sh",
            "-c",
            "touch \"$1\" && id -u && id -g && cat /proc/self/setgroups",
            "sh",
        ],
    )
    .arg(&file));
    assert_eq!(out, "70005\n7\ndeny");
    assert_eq!(owner(&file), (420005, 320007));
}

#[test]
fn ranges_as_nobody_go_through_newuidmap_with_a_private_subuid() {
    if !need_rootless() {
        return;
    }
    let state = scratch();
    let subuid = "other:100000:65536\nnobody:200000:65536\n";
    let subgid = "nobody:300000:65536\n";
    let mut cmd = userns(
        state.path(),
        &[
            "--map-users",
            "0:200000:65536",
            "--map-groups",
            "0:300000:65536",
            "--",
            "nsprobe",
        ],
    );
    cmd.env("NSCHAIN_DEBUG", "1");
    let out = run(&mut nobody_with_subids(&cmd, state.path(), subuid, subgid));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("write maps (NewIdMap)"),
        "the maps must be written by newuidmap/newgidmap: {}",
        stderr(&out)
    );
    let probe = probe_json(&stdout(&out));
    assert_eq!(lines(&probe["uid_map"]), ["0 200000 65536"]);
    assert_eq!(lines(&probe["gid_map"]), ["0 300000 65536"]);
    assert_eq!(probe["uid"], "0 0 0 0");

    // Files made inside belong to the mapped host ids.
    let dir = open_dir(state.path(), "files");
    let file = dir.join("made-inside");
    let mut cmd = userns(
        state.path(),
        &[
            "--map-users",
            "0:200000:65536",
            "--map-groups",
            "0:300000:65536",
            "--",
            "touch",
        ],
    );
    cmd.arg(&file);
    ok(&mut nobody_with_subids(&cmd, state.path(), subuid, subgid));
    assert_eq!(owner(&file), (200000, 300000));

    // The caller's own id beside delegated ranges (podman's layout).
    let cmd = userns(
        state.path(),
        &[
            "--map-root",
            "--map-users",
            "1:200000:65535",
            "--map-groups",
            "1:300000:65535",
            "--",
            "nsprobe",
        ],
    );
    let probe = probe_json(&ok(&mut nobody_with_subids(
        &cmd,
        state.path(),
        subuid,
        subgid,
    )));
    assert_eq!(lines(&probe["uid_map"]), ["0 65534 1", "1 200000 65535"]);
    assert_eq!(lines(&probe["gid_map"]), ["0 65534 1", "1 300000 65535"]);
}

/// Creates the go file when dropped (also when a test panics), so no chain waits forever.
struct Release(PathBuf);

impl Drop for Release {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, "");
    }
}

/// Kills a process left behind by a test when dropped.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: kill only sends a signal to the process the test started.
        unsafe { libc::kill(self.0, libc::SIGKILL) };
    }
}

/// A `userns --map-auto` chain of the test's own state directory, holding its range until
/// dropped: the tests prove they assume nothing about which range is free by running while
/// one is held (the first free one, when started first).
struct Holder {
    child: Child,
    range: u64,
}

impl Holder {
    fn start(state: &Path) -> Holder {
        let mut child = userns(
            state,
            &[
                "--map-auto",
                "--",
                "sh",
                "-c",
                "head -1 /proc/self/uid_map; exec sleep 1000",
            ],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let range = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_else(|| panic!("the holder chain failed: {line:?}"))
            .parse()
            .unwrap();
        Holder { child, range }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The host uid start of the range one `userns --map-auto` chain gets.
fn leased_range(state: &Path) -> u64 {
    let out = ok(&mut userns(
        state,
        &["--map-auto", "--", "cat", "/proc/self/uid_map"],
    ));
    out.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Whether a process anywhere on the machine runs as a uid of the 65536-id range at `start`
/// (another test or container with another state directory leases the same ranges from its
/// own pool; the allocator rightly keeps such a range).
fn machine_runs_as(start: u64) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        let name = e.file_name();
        let is_pid = name.to_string_lossy().bytes().all(|b| b.is_ascii_digit());
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|r| matches!(r.split_whitespace().next(), Some("Z" | "X")));
        is_pid
            && !zombie
            && e.metadata()
                .is_ok_and(|m| (start..start + 65536).contains(&u64::from(m.uid())))
    })
}

/// Asserts that the next allocation gives the lowest of `freed` (ranges just freed) that no
/// process on the machine runs as: another test or container, with another state directory,
/// leases the same ranges from its own pool, and the allocator rightly keeps a range whose
/// uids are in use. Retried for up to 30 s, as such processes come and go.
fn assert_next_allocation_is_lowest(state: &Path, freed: &[u64], why: &str) {
    let mut freed = freed.to_vec();
    freed.sort();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = leased_range(state);
        let expected = freed.iter().copied().find(|r| !machine_runs_as(*r));
        match expected {
            Some(expected) if got == expected => return,
            None if !freed.contains(&got) => {
                eprintln!("every freed range is in use on the machine: nothing to check");
                return;
            }
            _ => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{why}: got {got}, expected {expected:?} (the lowest of {freed:?} no process runs as)"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts `n` chains `userns --map-auto` at once, each holding its namespace until `go`
/// exists; returns the (uid, gid) host starts each got.
fn concurrent_map_auto(
    state: &Path,
    n: usize,
    wrap: impl Fn(&Command) -> Command,
) -> Vec<(u64, u64, u64)> {
    let go = state.join("go");
    // Released by the go file, or after 10 s should the test fail before making it.
    let _release = Release(go.clone());
    let script = "cat /proc/self/uid_map /proc/self/gid_map; echo ready; i=0; \
                  while [ ! -e \"$1\" ] && [ $i -lt 500 ]; do sleep 0.02; i=$((i+1)); done";
    // Leases of chains already running (a holder started by the test).
    let held = leases(state).len();
    let mut children: Vec<Child> = (0..n)
        .map(|_| {
            let mut cmd = userns(state, &["--map-auto", "--", "sh", "-c", script, "sh"]);
            cmd.arg(&go);
            wrap(&cmd)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ranges = Vec::new();
    for child in &mut children {
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut seen = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                break;
            }
            if line.trim() == "ready" {
                break;
            }
            seen.push(line);
        }
        if seen.len() != 2 {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("a chain failed: {seen:?} {err}");
        }
        let field =
            |l: &str, i: usize| -> u64 { l.split_whitespace().nth(i).unwrap().parse().unwrap() };
        assert_eq!(field(&seen[0], 0), 0);
        assert_eq!(field(&seen[0], 2), 65536);
        assert_eq!(field(&seen[1], 2), 65536);
        ranges.push((field(&seen[0], 1), field(&seen[1], 1), 65536));
    }
    // All are running now: every one holds a live lease.
    assert_eq!(leases(state).len(), held + n, "one lease per running chain");
    std::fs::write(&go, "").unwrap();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    ranges
}

fn assert_pairwise_disjoint(ranges: &[(u64, u64, u64)]) {
    for (i, a) in ranges.iter().enumerate() {
        for b in &ranges[i + 1..] {
            let overlap = |x: u64, y: u64| x < y + b.2 && y < x + a.2;
            assert!(!overlap(a.0, b.0), "uid ranges overlap: {a:?} {b:?}");
            assert!(!overlap(a.1, b.1), "gid ranges overlap: {a:?} {b:?}");
        }
    }
}

#[test]
fn map_auto_as_root_gives_20_concurrent_chains_disjoint_ranges_freed_after() {
    if !need_root() {
        return;
    }
    let _pool = pool_lock();
    let state = scratch();
    let before = snapshot(state.path(), None);
    let busy = Holder::start(state.path());
    let ranges = concurrent_map_auto(state.path(), 20, |c| {
        let mut cmd = Command::new(c.get_program());
        cmd.args(c.get_args());
        for (k, v) in c.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd
    });
    let mut all = ranges.clone();
    all.push((busy.range, busy.range, 65536));
    assert_pairwise_disjoint(&all);
    // From the built-in pool: 64K-aligned blocks in 0x80000..0x6FFF0000.
    for (uid, gid, _) in &ranges {
        assert!(
            (0x80000..0x6FFF0000).contains(uid) && uid % 65536 == 0,
            "{uid}"
        );
        assert_eq!(uid, gid);
    }
    // The ranges are free again: the next allocation reuses the lowest (the held one stays
    // held).
    let freed: Vec<u64> = ranges.iter().map(|r| r.0).collect();
    assert_next_allocation_is_lowest(state.path(), &freed, "the lowest freed range is not reused");
    drop(busy);
    // The leases left name chains that have ended: not live, so nothing is held.
    assert_nothing_left_but_leases(&before, state.path());
}

/// Like the audit, but a lease file of an ended chain and the lock file may stay (they name
/// no live namespace and are reclaimed by the next allocation).
fn assert_nothing_left_but_leases(before: &nschain_tests::audit::Snapshot, state: &Path) {
    let lease_dir = state.join("run/userns");
    let chains = state.join("run/chains");
    assert_nothing_left(
        before,
        state,
        None,
        &[lease_dir.as_path(), chains.as_path()],
    );
    for lease in leases(state) {
        let record: Value = serde_json::from_slice(&std::fs::read(&lease).unwrap()).unwrap();
        let pid = record["pid"].as_u64().unwrap();
        let ino = std::fs::metadata(format!("/proc/{pid}/ns/user")).map(|m| m.ino());
        assert_ne!(
            ino.ok(),
            record["userns"].as_u64(),
            "lease {} is still held",
            lease.display()
        );
    }
}

#[test]
fn map_auto_as_nobody_gives_20_concurrent_chains_disjoint_subuid_ranges() {
    if !need_rootless() {
        return;
    }
    let state = scratch();
    // Room for exactly 20 blocks on each side.
    // Above the built-in pool (which ends at 0x6FFF0000), so root tests never share these.
    let subuid = "nobody:2000000000:1310720\n";
    let subgid = "nobody:2100000000:1310720\n";
    let before = snapshot(state.path(), None);
    let ranges = concurrent_map_auto(state.path(), 20, |c| {
        nobody_with_subids(c, state.path(), subuid, subgid)
    });
    assert_pairwise_disjoint(&ranges);
    for (uid, gid, count) in &ranges {
        assert!(
            *uid >= 2000000000 && uid + count <= 2000000000 + 1310720,
            "{uid}"
        );
        assert!(
            *gid >= 2100000000 && gid + count <= 2100000000 + 1310720,
            "{gid}"
        );
    }
    // All 20 blocks were free again: a 21st chain after them gets the first block.
    let cmd = userns(
        state.path(),
        &["--map-auto", "--", "cat", "/proc/self/gid_map"],
    );
    let again = ok(&mut nobody_with_subids(&cmd, state.path(), subuid, subgid));
    let again: Vec<u64> = again
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    assert_eq!(again, [0, 2100000000, 65536]);
    assert_nothing_left_but_leases(&before, state.path());
}

#[test]
fn a_process_that_outlives_its_chain_keeps_the_range() {
    if !need_root() {
        return;
    }
    let _pool = pool_lock();
    let state = scratch();
    let busy = Holder::start(state.path());
    let map = |out: &str| -> u64 { out.split_whitespace().nth(1).unwrap().parse().unwrap() };
    // The chain's process exits at once, its background child lives on in the namespace.
    let out = ok(&mut userns(
        state.path(),
        &[
            "--map-auto",
            "--",
            "sh",
            "-c",
            "sleep 30 </dev/null >/dev/null 2>&1 & echo $!; head -1 /proc/self/uid_map",
        ],
    ));
    let (pid, range) = out.split_once('\n').unwrap();
    let pid: i32 = pid.trim().parse().unwrap();
    let sleeper = KillOnDrop(pid);
    let first = map(range);
    assert_ne!(first, busy.range);
    let again = leased_range(state.path());
    assert!(
        again != first && again != busy.range,
        "the range of a running process was handed out again"
    );
    drop(sleeper);
    // Gone, or a zombie waiting for a reaper (it holds no ids any more).
    for _ in 0..200 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .next();
        if matches!(state, None | Some("Z")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_next_allocation_is_lowest(
        state.path(),
        &[first],
        "the range is not free once its last process is gone",
    );
}

/// The start time of this (test) process, as a lease records its holder's.
fn own_start_time() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = stat.rsplit(')').next().unwrap();
    after.split_whitespace().nth(19).unwrap().parse().unwrap()
}

#[test]
fn leases_are_judged_by_the_kernel_not_by_their_files() {
    if !need_root() {
        return;
    }
    let _pool = pool_lock();
    let state = scratch();
    let dir = state.path().join("run/userns");
    // Another chain holds the first free range; the next two free ones are learnt from the
    // allocator itself (two chains running at once), not assumed.
    let busy = Holder::start(state.path());
    let mut next: Vec<u64> = concurrent_map_auto(state.path(), 2, |c| {
        let mut cmd = Command::new(c.get_program());
        cmd.args(c.get_args());
        for (k, v) in c.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd
    })
    .iter()
    .map(|r| r.0)
    .collect();
    next.sort();
    let (held, unfinished) = (next[0], next[1]);
    let lease = |start: u64, pid: u32, userns: u64, started: u64| {
        let text = format!(
            r#"{{"pid":{pid},"userns":{userns},"uid":{start},"gid":{start},"count":65536,"start":{started}}}"#
        );
        std::fs::write(dir.join(format!("lease-{start}-{start}.json")), text).unwrap();
    };
    let me = std::process::id();
    // Held: this process, with its real user namespace and start time.
    lease(held, me, own_ns_inode("user"), own_start_time());
    // Not held: unfinished (its maker was killed while making the namespace), the wrong
    // namespace, a reused pid (other start time), a pid that does not exist, and garbage.
    // The last four name ranges at the top of the pool, where no chain of the machine runs.
    lease(unfinished, me, 0, own_start_time());
    let top = |k: u64| 0x6FFF_0000 - k * 65536;
    lease(top(1), me, 1, own_start_time());
    lease(top(2), me, own_ns_inode("user"), own_start_time() + 1);
    lease(top(3), u32::MAX - 1, own_ns_inode("user"), 1);
    std::fs::write(dir.join(format!("lease-{0}-{0}.json", top(4))), "not json").unwrap();
    assert_eq!(
        leased_range(state.path()),
        unfinished,
        "the held ranges are skipped, the first dead one reused"
    );
    let mut left: Vec<String> = leases(state.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|n| {
            !(1..=3).any(|k| n == &format!("lease-{0}-{0}.json", top(k)) && machine_runs_as(top(k)))
        })
        .collect();
    left.sort();
    let mut expected: Vec<String> = [busy.range, held, unfinished]
        .iter()
        .map(|r| format!("lease-{r}-{r}.json"))
        .collect();
    expected.sort();
    assert_eq!(left, expected, "dead leases are removed");
}

#[test]
fn the_host_state_paths_are_passed_down_to_later_links() {
    if !need_rootless() {
        return;
    }
    let state = scratch();
    // What the next link receives: a shell named like a link (COMMAND itself gets none of
    // the chain's variables, issue 19).
    std::fs::create_dir(state.path().join("links")).unwrap();
    let link = state.path().join("links/utsns");
    std::os::unix::fs::symlink("/bin/sh", &link).unwrap();
    let link = link.to_str().unwrap();
    let show = ["--", link, "-c", "echo $NSCHAIN_RUN_DIR $NSCHAIN_DATA_DIR"];
    // As root: the rootful paths (printing them creates nothing).
    let mut cmd = userns(state.path(), &show);
    cmd.env_remove("NSCHAIN_RUN_DIR")
        .env_remove("NSCHAIN_DATA_DIR");
    assert_eq!(ok(&mut cmd), "/run/nschain /var/lib/nschain");
    // Rootless: the caller's, although the next link is root inside.
    let mut cmd = userns(state.path(), &show);
    cmd.env_remove("NSCHAIN_RUN_DIR")
        .env_remove("NSCHAIN_DATA_DIR")
        .env("XDG_RUNTIME_DIR", state.path().join("xdg-run"))
        .env("XDG_DATA_HOME", state.path().join("xdg-data"));
    let expected = format!(
        "{}/xdg-run/nschain {}/xdg-data/nschain",
        state.path().display(),
        state.path().display()
    );
    assert_eq!(ok(&mut as_nobody(&cmd)), expected);
}

#[test]
fn ordering_userns_first_works_rootless_and_last_fails_with_a_hint() {
    if !need_rootless() {
        return;
    }
    let state = scratch();
    let first = userns(
        state.path(),
        &["--", "utsns", "--hostname", "x", "--", "hostname"],
    );
    assert_eq!(ok(&mut as_nobody(&first)), "x");

    let mut last = tool("utsns", state.path());
    last.args(["--hostname", "x", "--", "userns", "--", "hostname"]);
    let out = run(&mut as_nobody(&last));
    assert_fatal(&out, "utsns");
    assert!(
        stderr(&out).contains("utsns: hint:") && stderr(&out).contains("put userns before"),
        "the hint must name the order: {}",
        stderr(&out)
    );
}

#[test]
fn root_inside_cannot_read_a_file_only_host_root_can_read() {
    if !need_root() {
        return;
    }
    let _pool = pool_lock();
    let state = scratch();
    let secret = state.path().join("secret");
    std::fs::write(&secret, "host root only\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(owner(&secret), (0, 0));
    // Host root reads it (the control) ...
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        "host root only\n"
    );
    // ... root inside a mapped range does not.
    for args in [
        &["--map-auto", "--"][..],
        &[
            "--map-users",
            "0:330000:65536",
            "--map-groups",
            "0:330000:65536",
            "--",
        ][..],
    ] {
        let mut cmd = userns(state.path(), args);
        cmd.args(["sh", "-c", "id -u; cat \"$1\""])
            .arg("sh")
            .arg(&secret);
        let out = run(&mut cmd);
        assert_eq!(stdout(&out), "0", "root inside");
        assert!(!out.status.success(), "root inside read the host-root file");
        assert!(
            stderr(&out).contains("Permission denied"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn a_named_map_auto_chain_can_be_joined_by_later_links_and_tools() {
    if !need_root() {
        return;
    }
    let _pool = pool_lock();
    let state = scratch();
    let name = format!("userns-named-{}", std::process::id());
    let mut chain = userns(
        state.path(),
        &[
            "--map-auto",
            "--name",
            &name,
            "--",
            "utsns",
            "--hostname",
            "named-h",
            "--",
            "sleep",
            "30",
        ],
    )
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut hostname = String::new();
    for _ in 0..200 {
        let out = run(tool("utsns", state.path()).args(["--join", &name, "--", "hostname"]));
        if out.status.success() {
            hostname = stdout(&out);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        hostname, "named-h",
        "utsns registered in the chain and is joinable"
    );
    let probe = probe_json(&ok(&mut userns(
        state.path(),
        &["--join", &name, "--", "nsprobe"],
    )));
    assert_eq!(probe["uid"], "0 0 0 0");
    let map = lines(&probe["uid_map"]);
    assert_eq!(map.len(), 1);
    assert!(
        map[0].starts_with("0 ") && map[0].ends_with(" 65536"),
        "{map:?}"
    );
    chain.kill().unwrap();
    let out = chain.wait_with_output().unwrap();
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

#[test]
fn a_rootless_named_chain_is_joined_through_its_user_namespace() {
    if !need_rootless() {
        return;
    }
    let state = scratch();
    let name = format!("userns-rootless-{}", std::process::id());
    let chain = userns(
        state.path(),
        &[
            "--name",
            &name,
            "--",
            "utsns",
            "--hostname",
            "rl-h",
            "--",
            "sleep",
            "30",
        ],
    );
    let mut chain = as_nobody(&chain).spawn().unwrap();
    let _stop = KillOnDrop(chain.id() as i32);
    let join = userns(
        state.path(),
        &[
            "--join",
            &name,
            "--",
            "utsns",
            "--join",
            &name,
            "--",
            "sh",
            "-c",
            "id -u; hostname",
        ],
    );
    let mut seen = String::new();
    for _ in 0..200 {
        let out = run(&mut as_nobody(&join));
        if out.status.success() {
            seen = stdout(&out);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(seen, "0\nrl-h");
    // Without its user namespace first, the rootless caller may not join: a hint says so.
    let mut direct = tool("utsns", state.path());
    direct.args(["--join", &name, "--", "hostname"]);
    let out = run(&mut as_nobody(&direct));
    assert_fatal(&out, "utsns");
    assert!(stderr(&out).contains("userns --join"), "{}", stderr(&out));
    chain.kill().unwrap();
    chain.wait().unwrap();
}

#[test]
fn a_pinned_map_auto_namespace_keeps_its_lease_and_can_be_joined() {
    if !need_root() {
        return;
    }
    let _pool = pool_lock();
    let state = scratch();
    let pin = state.path().join("user.pin");
    let mut cmd = userns(state.path(), &["--map-auto", "--pin"]);
    cmd.arg(&pin).args(["--", "cat", "/proc/self/uid_map"]);
    let first = ok(&mut cmd);
    let joined =
        ok(userns(state.path(), &["--join"])
            .arg(&pin)
            .args(["--", "cat", "/proc/self/uid_map"]));
    assert_eq!(first, joined);
    // While pinned, its range is not handed out again.
    let other = ok(&mut userns(
        state.path(),
        &["--map-auto", "--", "cat", "/proc/self/uid_map"],
    ));
    assert_ne!(first, other);
    ok(Command::new("umount").arg(&pin));
}

#[test]
fn keep_caps_keeps_capabilities_for_a_non_root_inner_uid() {
    if !need_root() {
        return;
    }
    let state = scratch();
    let ranges = [
        "--map-users",
        "0:340000:65536",
        "--map-groups",
        "0:340000:65536",
    ];
    let with = |extra: &[&str]| {
        let mut cmd = userns(state.path(), &ranges);
        cmd.args(["--map-user", "1000"]).args(extra);
        cmd
    };
    let probe = probe_json(&ok(with(&["--keep-caps", "--"]).arg("nsprobe")));
    assert_eq!(probe["uid"], "1000 1000 1000 1000");
    assert_ne!(probe["caps"]["ambient"], "0000000000000000");
    assert_eq!(probe["caps"]["effective"], probe["caps"]["permitted"]);
    let probe = probe_json(&ok(with(&["--"]).arg("nsprobe")));
    assert_eq!(probe["caps"]["effective"], "0000000000000000");
    // The next link can still unshare with --keep-caps, and cannot without.
    let next = ["utsns", "--hostname", "kept", "--", "hostname"];
    assert_eq!(ok(with(&["--keep-caps", "--"]).args(next)), "kept");
    let out = run(with(&["--"]).args(next));
    assert_fatal(&out, "utsns");
}

#[test]
fn keep_caps_as_nobody() {
    if !need_rootless() {
        return;
    }
    let state = scratch();
    let cmd = userns(
        state.path(),
        &[
            "--map-user",
            "1000",
            "--keep-caps",
            "--",
            "utsns",
            "--hostname",
            "k",
            "--",
            "sh",
            "-c",
            "id -u; hostname",
        ],
    );
    assert_eq!(ok(&mut as_nobody(&cmd)), "1000\nk");
}

#[test]
fn info_fd_and_registration_describe_the_maps() {
    if !need_root() {
        return;
    }
    let state = scratch();
    let mut cmd = Command::new("sh");
    with_env(&mut cmd, state.path());
    cmd.args([
        "-c",
        "userns --map-users 0:350000:100 --map-groups 0:350000:100 --info-fd 3 -- true 3>&1",
    ]);
    let info: Value = serde_json::from_str(&ok(&mut cmd)).unwrap();
    assert_eq!(info["tool"], "userns");
    assert_eq!(info["ns"]["type"], "user");
    assert_eq!(info["created"], true);
    assert_eq!(lines(&info["uid_map"]), ["0 350000 100"]);
    assert_eq!(lines(&info["gid_map"]), ["0 350000 100"]);
    assert_eq!(info["inner_uid"], 0);
}

/// Every bad value: 125, `userns: fatal:`, and nothing left behind (no lease, no helper
/// process, no registration).
fn assert_refused(state: &Path, cmd: &mut Command, why: &str) -> Output {
    let before = snapshot(state, None);
    let out = run(cmd);
    assert_fatal(&out, "userns");
    assert!(
        stderr(&out).contains(why),
        "{}: expected '{why}' in: {}",
        shown(cmd),
        stderr(&out)
    );
    assert_nothing_left(&before, state, None, &[]);
    assert!(leases(state).is_empty(), "a lease was left behind");
    out
}

#[test]
fn bad_values_are_refused_with_nothing_left_behind() {
    let state = scratch();
    let cases: &[(&[&str], &str)] = &[
        (&["--map-users", "0:100000:0"], "COUNT must be at least 1"),
        (&["--map-groups", "0:100000:0"], "COUNT must be at least 1"),
        (&["--map-users", "x:100000:1"], "INNER 'x' is not a number"),
        (&["--map-users", "0:y:1"], "OUTER 'y' is not a number"),
        (
            &["--map-groups", "0:1:many"],
            "COUNT 'many' is not a number",
        ),
        (&["--map-users", "-1:1:1"], "is not a number"),
        (&["--map-users", "0:100000"], "INNER:OUTER:COUNT"),
        (&["--map-users", "4294967295:0:1"], "too large"),
        (&["--map-users", "0:4294967295:1"], "too large"),
        (&["--map-users", "0:4294967290:10"], "past the largest id"),
        (&["--map-groups", "4294967290:0:10"], "past the largest id"),
        (&["--map-user", "4294967295"], "too large"),
        // Names are read from /etc/passwd and /etc/group: one that is not there, or not a name.
        (&["--map-user", "no-such-user-here"], "unable to find user"),
        (
            &["--map-group", "1.5"],
            "is not a group name or a numeric id",
        ),
        (&["--setgroups", "maybe"], "maybe"),
        (
            &["--map-auto", "--map-users", "0:1:1"],
            "cannot be used with",
        ),
        (&["--map-root", "--map-user", "1"], "cannot be used with"),
        (&["--join", "/proc/self/ns/uts"], "not user"),
        (&["--join", "no-such-chain"], "no chain named no-such-chain"),
    ];
    for (args, why) in cases {
        let mut cmd = userns(state.path(), args);
        cmd.arg("true");
        assert_refused(state.path(), &mut cmd, why);
    }
    if !need_root() {
        return;
    }
    // Checked before anything is made (as root, the maps are written directly).
    let cases: &[(&[&str], &str)] = &[
        (
            &["--map-users", "0:300000:10", "--map-users", "5:400000:10"],
            "overlap inside",
        ),
        (
            &["--map-users", "0:300000:10", "--map-users", "10:300005:10"],
            "overlap outside",
        ),
        (&["--map-users", "1:300000:10"], "inner uid 0 is not mapped"),
        (
            &["--map-groups", "0:300000:10", "--map-group", "10"],
            "inner gid 10 is not mapped",
        ),
    ];
    for (args, why) in cases {
        let mut cmd = userns(state.path(), args);
        cmd.arg("true");
        assert_refused(state.path(), &mut cmd, why);
    }
}

#[test]
fn user_namespaces_disabled_by_sysctl_is_said_plainly() {
    if !need_root() {
        return;
    }
    let state = scratch();
    // A throwaway user namespace plays the host, with user.max_user_namespaces = 0 in it.
    let mut cmd = Command::new("unshare");
    with_env(&mut cmd, state.path());
    cmd.args([
        "--user",
        "--map-root-user",
        "sh",
        "-c",
        "echo 0 > /proc/sys/user/max_user_namespaces && exec userns -- true",
    ]);
    let out = assert_refused(state.path(), &mut cmd, "user namespaces are disabled here");
    assert!(
        stderr(&out).contains("user.max_user_namespaces"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn rootless_bad_subids_say_what_to_add_and_leave_nothing() {
    if !need_rootless() {
        return;
    }
    let state = scratch();
    let refuse = |args: &[&str], subuid: &str, subgid: &str, why: &str| {
        let mut cmd = userns(state.path(), args);
        cmd.arg("true");
        let mut wrapped = nobody_with_subids(&cmd, state.path(), subuid, subgid);
        assert_refused(state.path(), &mut wrapped, why)
    };
    // No entry at all: the exact line to add.
    let out = refuse(
        &["--map-users", "0:100000:65536"],
        "alice:100000:65536\n",
        "",
        "no ids are delegated to user nobody in /etc/subuid",
    );
    assert!(
        stderr(&out)
            .contains("userns: hint: as root, add this line to /etc/subuid: nobody:196608:65536"),
        "{}",
        stderr(&out)
    );
    let out = refuse(
        &["--map-auto"],
        "",
        "",
        "--map-auto needs ids delegated to user nobody",
    );
    assert!(
        stderr(&out).contains(
            "add this line to /etc/subuid: nobody:100000:65536, and this line to /etc/subgid: nobody:100000:65536"
        ),
        "{}",
        stderr(&out)
    );
    // A range that exceeds or misses the entry.
    refuse(
        &["--map-users", "0:200000:65537"],
        "nobody:200000:65536\n",
        "nobody:300000:65536\n",
        "host ids 200000..265536 are not within the ids delegated to user nobody",
    );
    refuse(
        &["--map-groups", "0:290000:65536"],
        "nobody:200000:65536\n",
        "nobody:300000:65536\n",
        "--map-groups 0:290000:65536: host ids 290000..355535 are not within",
    );
    // An entry too small for --map-auto.
    refuse(
        &["--map-auto"],
        "nobody:200000:1000\n",
        "nobody:300000:65536\n",
        "needs 65536 ids delegated to user nobody in /etc/subuid",
    );
    // setgroups allow cannot hold when the gid map holds the caller's own gid.
    refuse(
        &["--setgroups", "allow"],
        "nobody:200000:65536\n",
        "nobody:300000:65536\n",
        "--setgroups allow",
    );
    // A failure after the lease and the helper exist (a rootless pin cannot bind-mount):
    // the lease is removed, the helpers are gone.
    let pin = state.path().join("user.pin");
    refuse(
        &["--map-auto", "--pin", pin.to_str().unwrap()],
        "nobody:200000:65536\n",
        "nobody:300000:65536\n",
        "unable to pin",
    );
}

/// `--map-user NAME` and `--map-group NAME` are read from /etc/passwd and /etc/group as files
/// (the binaries are static: no NSS), as ids would be given.
#[test]
fn map_user_and_group_take_names() {
    if !need::root() {
        return;
    }
    let state = scratch();
    let out = ok(tool("userns", state.path()).args([
        "--map-user",
        "nobody",
        "--map-group",
        "nogroup",
        "--",
        "id",
        "-u",
    ]));
    assert_eq!(out, "65534");
    let out = ok(tool("userns", state.path()).args(["--map-group", "nogroup", "--", "id", "-g"]));
    assert_eq!(out, "65534");
}
