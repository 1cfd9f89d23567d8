//! Load: N short containers (default 1000, `NSCHAIN_LOAD_N` overrides; CI must run >= 300)
//! through the full rootful chain with a busybox root, two at a time. At the end the leak
//! audit is clean and nothing grew: the test process's open fds, the kernel's allocated file
//! handles (/proc/sys/fs/file-nr), the mounts, the test's memory, the state files.

mod escape_common;

use std::process::Command;
use std::time::Instant;

use escape_common::*;
use nschain_tests::*;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn file_nr() -> i64 {
    let text = std::fs::read_to_string("/proc/sys/fs/file-nr").unwrap();
    text.split_whitespace().next().unwrap().parse().unwrap()
}

fn rss_kb() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap()
}

/// The mount points of this mount namespace, except the `ip netns` files that other tests
/// running on the machine add and remove (/run/netns/NAME).
fn mounts() -> std::collections::BTreeSet<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(str::to_owned))
        .filter(|p| !p.starts_with("/run/netns/"))
        .collect()
}

fn state_files(lab: &Lab) -> usize {
    fn walk(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| {
                        if e.file_type().is_ok_and(|t| t.is_dir()) {
                            1 + walk(&e.path())
                        } else {
                            1
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(&lab.state)
}

fn containers(lab: &Lab, config: Config, n: usize) {
    let argv = lab.chain_argv(config, None, &[], &["/bin/true"]);
    for i in 0..n {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        lab.env(&mut cmd);
        let out = run(&mut cmd);
        assert!(
            out.status.success(),
            "container {i} failed with {}: {}",
            out.status,
            stderr(&out)
        );
    }
}

#[test]
fn a_thousand_short_containers_two_at_a_time_leave_nothing_and_grow_nothing() {
    if !need_root() {
        return;
    }
    let n: usize = std::env::var("NSCHAIN_LOAD_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    if in_ci() {
        assert!(
            n >= 300,
            "CI runs at least 300 containers (NSCHAIN_LOAD_N={n})"
        );
    }
    let lab = Lab::new("load");
    // The netns link runs in its default mode (lo only): the machine's network is untouched.
    // Warm up (first runs create the state layout), then measure.
    containers(&lab, Config::Rootful, 10);
    let (fds0, nr0, rss0, mounts0, files0) =
        (open_fds(), file_nr(), rss_kb(), mounts(), state_files(&lab));
    let start = Instant::now();
    let lab_ref = &lab;
    let half = n / 2;
    std::thread::scope(|s| {
        s.spawn(move || containers(lab_ref, Config::Rootful, half));
        s.spawn(move || containers(lab_ref, Config::Rootful, n - half));
    });
    let took = start.elapsed();
    eprintln!(
        "{n} containers in {:.1} s ({:.1} ms each, 2 at a time)",
        took.as_secs_f64(),
        took.as_secs_f64() * 1000.0 / n as f64
    );
    lab.assert_clean();
    // Namespace teardown is asynchronous (RCU, the netns cleanup workqueue): let it settle.
    let settle = Instant::now();
    while file_nr() - nr0 > 64 && settle.elapsed().as_secs() < 5 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (fds1, nr1, rss1, mounts1, files1) =
        (open_fds(), file_nr(), rss_kb(), mounts(), state_files(&lab));
    eprintln!(
        "fds {fds0}->{fds1}, file-nr {nr0}->{nr1}, rss {rss0}->{rss1} kB, mounts {}->{}, state files {files0}->{files1}",
        mounts0.len(),
        mounts1.len()
    );
    assert_eq!(fds1, fds0, "the test process's open fds grew");
    let grown: Vec<&String> = mounts1.difference(&mounts0).collect();
    assert!(grown.is_empty(), "the mount table grew: {grown:?}");
    assert!(files1 <= files0, "state files grew: {files0} -> {files1}");
    // Global and allocator figures move with the rest of the machine: growth must stay far
    // below one per container.
    assert!(
        nr1 - nr0 < (n as i64) / 4,
        "allocated file handles grew by {} over {n} containers",
        nr1 - nr0
    );
    assert!(
        rss1 - rss0 < 16 * 1024,
        "the test's memory grew by {} kB",
        rss1 - rss0
    );
}
