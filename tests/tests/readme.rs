//! Every example of README.md and README.zh-CN.md runs as written, so a README cannot drift
//! (issue 19, item 15).
//!
//! The examples are read from the READMEs at test time: each command line of a ```sh block
//! (`\` continuations joined), each `$ ` line of a ```console block, and each ```make block as
//! a Makefile. An untagged block must be a chain diagram (every line an `A → B` chain), so a
//! command cannot hide in one; a ```toml or ```yaml block is configuration for another program
//! (containers.conf, a RuntimeClass), checked to hold only configuration lines. [`plan`] says how each example runs; an example it does not
//! name (neither run nor in [`SKIPPED`]) fails the test, and so does a plan entry that no
//! README holds any more. The same command in both READMEs (comments aside) runs once.
//!
//! Each group of examples runs in a throwaway host: a network namespace from `ip netns add`
//! and a mount, UTS and IPC namespace of its own (a tmpfs on /run, a usable /dev/net/tun),
//! held by a sleeping process that every example enters with `nsenter`. The tools come first
//! on PATH, the state directories are the group's, the working directory is a scratch copy of
//! what the examples name (Makefiles, `./server`, `./sidecar`, `./flaky-test`, `./data`, a
//! busybox `./rootfs`). An example passes when it exits 0 (and prints what its README comment
//! says it prints); a server or shell passes when its program is running after the settle
//! time with no `fatal:` on stderr, and answers where it publishes a port. Then it is
//! stopped and the leak audit (tests/src/audit.rs) must find nothing left in the group's
//! host, state and scratch directory.

mod escape_common;

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use escape_common::{need_root, need_rootless, HostNs};
use nschain_tests::audit::{assert_nothing_left_watching, snapshot_watching};
use nschain_tests::{copy_exe, require, scratch, with_env, write_exe};

/// The READMEs, read when the test runs (so the examples are today's).
const READMES: [&str; 2] = ["README.md", "README.zh-CN.md"];

/// Examples that cannot run here, each with its reason (reviewed: keep this list short).
const SKIPPED: &[(&str, &str)] = &[
    (
        "userns --map-auto --idmap /var/lib/nschain/image -- pidns -- mntns --image localhost/bb:1 --rm",
        "names the host's default store, which a test may not fill; tests/tests/nsimage_run.rs \
         runs the same chain on its own store",
    ),
    (
        "make demo",
        "builds the release workspace first (minutes of compilation on a 2-core machine); \
         demo/demo.sh itself runs in its own throwaway host",
    ),
    (
        "make test",
        "is the whole suite, this test included (it would run itself)",
    ),
];

/// How many groups run at once (the machine has 2 cores; most of the time is waiting).
const PARALLEL: usize = 3;

/// One command of a README, where it is.
#[derive(Debug, Clone)]
struct Example {
    readme: &'static str,
    line: usize,
    /// The text as written (a Makefile for a make block).
    text: String,
    make: bool,
}

impl Example {
    fn at(&self) -> String {
        format!("{}:{}", self.readme, self.line)
    }
}

/// Every example of one README.
fn extract(readme: &'static str, body: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut open: Option<(usize, String)> = None;
    let mut block: Vec<(usize, &str)> = Vec::new();
    for (i, line) in body.lines().enumerate() {
        if let Some(tag) = line.strip_prefix("```") {
            match open.take() {
                None => {
                    open = Some((i + 1, tag.trim().to_owned()));
                    block.clear();
                }
                Some((start, lang)) => out.extend(commands(readme, start, &lang, &block)),
            }
        } else if open.is_some() {
            block.push((i + 1, line));
        }
    }
    assert!(open.is_none(), "{readme}: a code block is never closed");
    out
}

/// The commands of one fenced block.
fn commands(
    readme: &'static str,
    start: usize,
    lang: &str,
    block: &[(usize, &str)],
) -> Vec<Example> {
    let example = |line, text: String, make| Example {
        readme,
        line,
        text,
        make,
    };
    match lang {
        "sh" => {
            let mut out: Vec<Example> = Vec::new();
            let mut continued = false;
            for &(n, line) in block {
                if continued {
                    let last = out.last_mut().unwrap();
                    last.text.push('\n');
                    last.text.push_str(line);
                } else if !line.trim().is_empty() && !line.trim_start().starts_with('#') {
                    out.push(example(n, line.to_owned(), false));
                }
                continued = line.ends_with('\\');
            }
            out
        }
        "console" => block
            .iter()
            .filter_map(|&(n, l)| Some(example(n, l.strip_prefix("$ ")?.to_owned(), false)))
            .collect(),
        "make" => {
            let text: Vec<&str> = block.iter().map(|(_, l)| *l).collect();
            vec![example(start + 1, text.join("\n") + "\n", true)]
        }
        // Configuration files for other programs (containers.conf, a RuntimeClass): not run,
        // but every line must look like configuration, so that no command hides in one.
        "toml" | "yaml" => {
            for &(n, line) in block {
                let l = line.trim();
                let config = l.is_empty()
                    || l.starts_with('#')
                    || if lang == "toml" {
                        l.starts_with('[') || l.contains(" = ")
                    } else {
                        l.contains(": ") || l.ends_with(':')
                    };
                assert!(
                    config,
                    "{readme}:{n}: a ```{lang} block holds a line that is not configuration: {line:?}"
                );
            }
            Vec::new()
        }
        // The canonical chains: diagrams, not commands.
        "" => {
            for &(n, line) in block {
                assert!(
                    line.trim().is_empty() || line.contains('→'),
                    "{readme}:{n}: an untagged code block holds something that is not a chain \
                     diagram: {line:?} (tag commands ```sh so that tests/tests/readme.rs runs them)"
                );
            }
            Vec::new()
        }
        other => panic!(
            "{readme}:{start}: code block of unknown kind {other:?}: use sh, console or make \
             (or teach tests/tests/readme.rs to run it)"
        ),
    }
}

/// The text without its trailing comment, whitespace collapsed: what the shell runs, so that
/// the same command with another comment (the Chinese README) is the same example.
fn key(text: &str) -> String {
    let mut out = String::new();
    let (mut single, mut double, mut prev_space) = (false, false, true);
    for c in text.replace("\\\n", " ").chars() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev_space => break,
            _ => {}
        }
        prev_space = c.is_whitespace();
        out.push(c);
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What a group does, in order.
#[derive(Debug, Clone)]
enum Step {
    /// A README example that must exit 0; its stdout must contain `expect`.
    Run {
        key: &'static str,
        expect: &'static str,
    },
    /// A README server or shell: `comm` must be running after the settle time (a trailing `&`
    /// is the README's way of saying "in the background": the test backgrounds it).
    Serve {
        key: &'static str,
        comm: &'static str,
    },
    /// Not a README line: a check of what an example did, run in the host as root.
    Check {
        cmd: &'static str,
        expect: &'static str,
    },
    /// Stop the group's servers (for examples that need a stopped chain).
    Stop,
}

fn run(key: &'static str) -> Step {
    Step::Run { key, expect: "" }
}

fn prints(key: &'static str, expect: &'static str) -> Step {
    Step::Run { key, expect }
}

fn serve(key: &'static str, comm: &'static str) -> Step {
    Step::Serve { key, comm }
}

fn check(cmd: &'static str, expect: &'static str) -> Step {
    Step::Check { cmd, expect }
}

/// A published port answers over HTTP (retrying while the server starts).
fn answers(port: u16) -> Step {
    let cmd = match port {
        80 => "curl -sS -o /dev/null -w '%{http_code}' -m 5 --retry 20 --retry-delay 1 --retry-connrefused http://127.0.0.1:80/",
        8080 => "curl -sS -o /dev/null -w '%{http_code}' -m 5 --retry 20 --retry-delay 1 --retry-connrefused http://127.0.0.1:8080/",
        _ => panic!("no probe for port {port}"),
    };
    check(cmd, "200")
}

/// A group of examples sharing one throwaway host, state and working directory.
#[derive(Debug, Clone)]
struct Group {
    name: &'static str,
    /// Run its examples as uid 65534 (the README says rootless).
    rootless: bool,
    /// The overlay layers its examples keep by design (no `--rm`) may stay in the data dir.
    keeps_layers: bool,
    steps: Vec<Step>,
}

fn group(name: &'static str, steps: Vec<Step>) -> Group {
    Group {
        name,
        rootless: false,
        keeps_layers: false,
        steps,
    }
}

fn rootless(name: &'static str, steps: Vec<Step>) -> Group {
    Group {
        rootless: true,
        ..group(name, steps)
    }
}

fn keeping_layers(name: &'static str, steps: Vec<Step>) -> Group {
    Group {
        keeps_layers: true,
        ..group(name, steps)
    }
}

/// How each README example runs. Keys are the commands without their comments.
fn plan() -> Vec<Group> {
    let gc = check("netns gc --prune", "");
    vec![
        keeping_layers(
            "the first chain",
            vec![
                serve(
                    "netns --bridge --publish 8080:80 -- userns --map-auto --idmap / -- ipcns -- utsns --hostname web1 -- pidns -- mntns --overlay / -- nginx -g 'daemon off;'",
                    "nginx",
                ),
                answers(8080),
                Step::Stop,
                gc.clone(),
            ],
        ),
        group(
            "cgroupns",
            vec![
                prints(
                    "cgroupns --memory 64m -- sh -c 'python3 -c \"bytearray(200 << 20)\" || echo killed: $?'",
                    "killed: 137",
                ),
                run("cgroupns --pids-limit 64 --cpus 0.5 -- make -j8"),
                prints("cgroupns -- cat /proc/self/cgroup", "0::/"),
                run("cgroupns gc"),
            ],
        ),
        keeping_layers(
            "the bounded chain",
            vec![
                serve(
                    "netns --bridge -p 8080:80 -- cgroupns --memory 128m --pids-limit 64 -- userns --map-auto --idmap / -- cgroupns -- ipcns -- utsns --hostname web1 -- pidns -- mntns --overlay / -- nginx -g 'daemon off;'",
                    "nginx",
                ),
                answers(8080),
                Step::Stop,
                gc.clone(),
            ],
        ),
        group(
            "debug trace",
            vec![run("NSCHAIN_DEBUG=1 utsns --hostname a -- ipcns -- true")],
        ),
        group(
            "utsns",
            vec![
                prints("utsns --hostname build -- make", "make ran on build in"),
                prints(
                    "utsns --hostname web1 --domainname example.org -- hostname",
                    "web1",
                ),
                run("utsns --pin /run/web1.uts --hostname web1 true"),
                prints("utsns --join /run/web1.uts -- hostname", "web1"),
                check("umount /run/web1.uts", ""),
            ],
        ),
        group(
            "ipcns",
            vec![
                prints("ipcns -- ipcs", "Shared Memory Segments"),
                prints(
                    "ipcns --sysctl kernel.shmmax=67108864 --sysctl fs.mqueue.msg_max=64 -- ./server",
                    "server ran",
                ),
            ],
        ),
        group(
            "timens",
            vec![
                run("timens --boottime 1000 -- cat /proc/uptime"),
                prints("timens --uptime 1000 -- cat /proc/uptime", "100"),
                prints("timens --monotonic 86400 -- ./server", "server ran"),
                run("timens --pin /run/clock.time --uptime 1000 true"),
                prints("timens --join /run/clock.time -- cat /proc/uptime", "100"),
                check("umount /run/clock.time", ""),
            ],
        ),
        rootless(
            "timens, rootless",
            vec![prints(
                "userns -- timens --uptime 1000 -- pidns -- cat /proc/uptime",
                "100",
            )],
        ),
        rootless(
            "userns, rootless",
            vec![
                prints("userns -- id -u", "0"),
                prints("userns -- utsns --hostname web1 -- hostname", "web1"),
            ],
        ),
        group(
            "userns ranges",
            vec![
                prints(
                    "userns --map-users 0:100000:65536 --map-groups 0:100000:65536 -- id",
                    "uid=0(root)",
                ),
                serve(
                    "userns --map-root --map-users 1:100000:65535 --map-groups 1:100000:65535 -- sh",
                    "sh",
                ),
                serve("userns --map-user 1000 --keep-caps -- utsns -- sh", "sh"),
            ],
        ),
        group(
            "userns --map-auto --name web1",
            vec![
                serve("userns --map-auto --name web1 -- pidns -- sh", "sh"),
                serve("userns --join web1 -- sh", "sh"),
            ],
        ),
        group(
            "web1 with --idmap, nsps",
            vec![
                serve(
                    "netns --bridge -p 80:80 --name web1 -- userns --map-auto --idmap / -- ipcns -- utsns --hostname web1 -- pidns -- mntns --overlay / -- nginx -g 'daemon off;'",
                    "nginx",
                ),
                answers(80),
                prints("nsps", "web1"),
                prints("nsps web1", "nginx: worker process"),
                prints("nsps --json", "\"name\": \"web1\""),
                prints("nsps --all", "running"),
                prints("nsps exec web1 -- ps", "nginx"),
                serve("nsps exec -it web1 -- sh", "sh"),
                serve(
                    "userns --join web1 -- ipcns --join web1 -- utsns --join web1 -- pidns --join web1 -- mntns --join web1 -- sh",
                    "sh",
                ),
                Step::Stop,
                run("nsps rm web1"),
                gc.clone(),
            ],
        ),
        group(
            "pidns",
            vec![
                prints("pidns -- sh -c 'echo $$'", "2"),
                run("pidns --status-fd 3 -- ./server 3>status.jsonl"),
                check("cat status.jsonl", "{\"exit-code\":0}"),
                serve("pidns --no-init -- nginx -g 'daemon off;'", "nginx"),
                answers(80),
            ],
        ),
        group(
            "pidns --name web1, docker exec",
            vec![
                serve("pidns --name web1 -- mntns --proc -- sleep 1000 &", "sleep"),
                prints(
                    "pidns --join web1 -- mntns --join web1 -- ps -ef",
                    "sleep 1000",
                ),
            ],
        ),
        group("netns alone", vec![run("netns -- ./flaky-test")]),
        group(
            "netns --bridge",
            vec![
                serve("netns --bridge -p 8080:80 -- nginx -g 'daemon off;'", "nginx"),
                answers(8080),
                Step::Stop,
                gc.clone(),
            ],
        ),
        group(
            "netns --bridge=br1, gc",
            vec![
                serve(
                    "netns --bridge=br1 --subnet 10.210.0.0/16 --ip 10.210.0.9 -- sh",
                    "sh",
                ),
                check("ip -br addr show br1", "10.210.0.1/16"),
                Step::Stop,
                run("netns gc --prune"),
            ],
        ),
        rootless(
            "netns --slirp4netns",
            vec![
                serve(
                    "userns -- netns --slirp4netns -p 8080:80 -- busybox httpd -f -p 80",
                    "busybox",
                ),
                answers(8080),
            ],
        ),
        keeping_layers(
            "mntns --overlay /",
            vec![
                run("mntns --overlay / -- sh -c 'echo hi > /opt/test1'"),
                check(
                    "cat \"$NSCHAIN_DATA_DIR\"/overlay/*/diff/opt/test1 && ! test -e /opt/test1",
                    "hi",
                ),
            ],
        ),
        group(
            "mntns --rootfs",
            vec![serve(
                "mntns --rootfs ./rootfs -v ./data:/data:ro --read-only -- /bin/sh",
                "sh",
            )],
        ),
        group(
            "mntns without a new root",
            vec![
                prints("pidns -- mntns --proc -- ps", "ps"),
                prints("mntns --tmpfs /tmp:size=64m -- make", "make ran on"),
            ],
        ),
        group(
            "build recipe",
            vec![prints(
                "build: netns -- utsns --hostname build -- mntns --overlay / --rm -- make -C src all",
                "make ran on build in /",
            )],
        ),
        group(
            "pod",
            vec![
                serve(
                    "netns --bridge --name pod1 --publish 8080:80 -- pidns -- nginx -g 'daemon off;' &",
                    "nginx",
                ),
                run("netns --join pod1 -- pidns -- ./sidecar"),
                Step::Stop,
                gc,
            ],
        ),
        keeping_layers(
            "nsimage",
            vec![
                prints(
                    "tar -C rootfs -c . | nsimage import - localhost/bb:1 --change 'CMD [\"/bin/sh\",\"-c\",\"echo hello from $(pwd)\"]' --change 'WORKDIR /tmp'",
                    "Imported image: localhost/bb:1",
                ),
                prints("pidns -- mntns --image localhost/bb:1 --rm", "hello from /tmp"),
                prints("nsimage images", "localhost/bb"),
                prints("nsimage rmi localhost/bb:1", "Untagged: localhost/bb:1"),
            ],
        ),
        group(
            "detached web",
            vec![
                prints(
                    "netns --bridge -p 8080:80 --name web -d -- pidns -- nginx -g 'daemon off;'",
                    "web",
                ),
                answers(8080),
                run("nsps logs web"),
                prints("nsps stop web", "web"),
                run("nsps rm web"),
                check("nsps --all", ""),
                check("netns gc --prune", ""),
            ],
        ),
        group(
            "service test recipe",
            vec![run(
                "web-test: netns --bridge -p 8080:80 --name web -d -- pidns -- nginx -g 'daemon off;' for i in $$(seq 100); do curl -s 127.0.0.1:8080 >/dev/null && break; sleep 0.1; done curl -sf 127.0.0.1:8080 | grep -q 'Welcome to nginx'; rc=$$?; nsps stop web; nsps rm web; exit $$rc",
            ), check("netns gc --prune", "")],
        ),
        group(
            "--info-fd",
            vec![
                run("exec 3>info.json; utsns --hostname a --info-fd 3 -- true"),
                check(
                    "grep -q '\"tool\":\"utsns\"' info.json && cat info.json",
                    "\"hostname\":\"a\"",
                ),
            ],
        ),
    ]
}

/// The examples of both READMEs by key, the first place each is written.
fn readme_examples() -> BTreeMap<String, Vec<Example>> {
    let mut all: BTreeMap<String, Vec<Example>> = BTreeMap::new();
    for name in READMES {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name);
        let body = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("unable to read {}: {e}", path.display()));
        for ex in extract(name, &body) {
            all.entry(key(&ex.text)).or_default().push(ex);
        }
    }
    all
}

/// Every example is planned or skipped, and every plan entry is still in a README.
fn coverage(plan: &[Group]) -> Vec<String> {
    let examples = readme_examples();
    let mut planned: Vec<&str> = plan
        .iter()
        .flat_map(|g| &g.steps)
        .filter_map(|s| match s {
            Step::Run { key, .. } | Step::Serve { key, .. } => Some(*key),
            _ => None,
        })
        .collect();
    planned.extend(SKIPPED.iter().map(|(k, _)| *k));
    let mut problems = Vec::new();
    for (k, places) in &examples {
        if !planned.contains(&k.as_str()) {
            problems.push(format!(
                "{}: the example {k:?} is not run by tests/tests/readme.rs: add it to plan() \
                 (or, if it truly cannot run here, to SKIPPED with the reason)",
                places[0].at()
            ));
        }
    }
    for k in &planned {
        if !examples.contains_key(*k) {
            problems.push(format!(
                "tests/tests/readme.rs plans {k:?}, which no README holds any more"
            ));
        }
    }
    problems
}

#[test]
fn every_readme_example_is_run_or_skipped_with_a_reason() {
    let examples = readme_examples();
    assert!(examples.len() > 30, "too few examples found: {examples:#?}");
    let problems = coverage(&plan());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for (k, why) in SKIPPED {
        assert!(why.len() > 20, "skip of {k:?} needs its reason");
    }
}

#[test]
fn readme_examples_run_as_written() {
    if !need_root() || !need_rootless() || !require(nschain_tests::have("curl"), "curl") {
        return;
    }
    let plan = plan();
    let problems = coverage(&plan);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let examples = Arc::new(readme_examples());
    // README_GROUPS=word,word runs only the groups whose name holds one of the words (by hand).
    let only = std::env::var("README_GROUPS").unwrap_or_default();
    let queue: VecDeque<Group> = plan
        .into_iter()
        .filter(|g| only.is_empty() || only.split(',').any(|w| g.name.contains(w)))
        .collect();
    let queue = Arc::new(Mutex::new(queue));
    let results = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let workers: Vec<_> = (0..PARALLEL)
        .map(|_| {
            let (queue, results, examples) = (queue.clone(), results.clone(), examples.clone());
            std::thread::spawn(move || loop {
                let Some(g) = queue.lock().unwrap().pop_front() else {
                    return;
                };
                let name = g.name;
                let ex = examples.clone();
                let log = Arc::new(Mutex::new(Vec::new()));
                let report = log.clone();
                let outcome = std::thread::spawn(move || run_group(&g, &ex, &report)).join();
                let lines = log.lock().unwrap().clone();
                let failure = outcome.err().map(|e| {
                    e.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default()
                });
                results.lock().unwrap().push((name, lines, failure));
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let results = results.lock().unwrap();
    let mut failures = Vec::new();
    eprintln!(
        "README examples ({:.1} s):",
        started.elapsed().as_secs_f64()
    );
    for (name, lines, failure) in results.iter() {
        eprintln!("[{name}]");
        for l in lines {
            eprintln!("  {l}");
        }
        if let Some(f) = failure {
            eprintln!("  FAILED: {f}");
            failures.push(format!("[{name}] {f}"));
        }
    }
    for (k, why) in SKIPPED {
        eprintln!("skipped: {k} — {why}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// One group's throwaway host: `ip netns add`, then a process holding new mount, UTS and IPC
/// namespaces (/run a tmpfs, /dev/net/tun usable by everyone as on a stock system).
struct Host {
    net: HostNs,
    holder: Child,
}

impl Host {
    fn new() -> Host {
        let net = HostNs::new("rdm");
        let mut holder = Command::new("ip")
            .args(["netns", "exec", &net.name])
            .args([
                "unshare",
                "--mount",
                "--uts",
                "--ipc",
                "--propagation",
                "private",
            ])
            .args(["--", "sh", "-c"])
            .arg(format!(
                "set -e; mount -t tmpfs -o mode=755 tmpfs /run; \
                 mknod -m 666 /run/.tun c 10 200; mount --bind /run/.tun /dev/net/tun; \
                 {} hostname nsc-host; echo ready; exec sleep 100000",
                cgroup_mounts()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the throwaway host did not start");
        Host { net, holder }
    }

    /// `nsenter` into this host, in `dir`, as root or uid 65534, running `bash -c script`.
    fn command(&self, dir: &Path, state: &Path, nobody: bool, script: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t")
            .arg(self.holder.id().to_string())
            .args(["--net", "--mount", "--uts", "--ipc", "--", "env", "-C"])
            // Not nsenter --wd: it opens DIR in the caller's mount namespace, and a working
            // directory on a mount of another namespace is one nothing can bind from.
            .arg(dir);
        if nobody {
            cmd.args(nschain_tests::setpriv_as(nschain_tests::NOBODY));
        }
        cmd.args(["bash", "-c", script]);
        with_env(&mut cmd, state);
        cmd.current_dir(dir);
        cmd
    }

    /// The mounts of the host that mention `path`.
    fn mounts(&self, path: &Path) -> Vec<String> {
        let marker = path.display().to_string();
        std::fs::read_to_string(format!("/proc/{}/mountinfo", self.holder.id()))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&marker))
            .map(|l| l.split_whitespace().nth(4).unwrap_or_default().to_owned())
            .collect()
    }
}

/// The script that mounts this machine's cgroup hierarchies again in the throwaway host:
/// `ip netns exec` gives it a fresh sysfs, whose /sys/fs/cgroup is empty, and the cgroupns
/// examples need them. As host root in the initial cgroup namespace, a mount of an existing
/// hierarchy is that hierarchy, with the same cgroups.
fn cgroup_mounts() -> String {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut script = String::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mount = left.split(' ').nth(4).unwrap_or_default();
        let mut right = right.split(' ');
        let (fstype, options) = (
            right.next().unwrap_or_default(),
            right.nth(1).unwrap_or_default(),
        );
        match fstype {
            "tmpfs" if mount == "/sys/fs/cgroup" => {
                script.push_str("mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup; ");
            }
            "cgroup" | "cgroup2" if mount.starts_with("/sys/fs/cgroup") => {
                let keep: Vec<&str> = options.split(',').filter(|o| *o != "rw").collect();
                let options = if keep.is_empty() {
                    "rw".to_owned()
                } else {
                    keep.join(",")
                };
                script.push_str(&format!(
                    "mkdir -p {mount}; mount -t {fstype} -o {options} {fstype} {mount}; "
                ));
            }
            _ => {}
        }
    }
    script
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// The scratch working directory: what the examples name.
fn fixtures(dir: &Path) {
    let write = |path: &str, text: &str, mode: u32| {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        write_exe(&p, text, mode);
    };
    let makefile = "all:\n\t@echo \"make ran on $$(hostname) in $$(pwd)\"\n";
    write("Makefile", makefile, 0o644);
    write("src/Makefile", makefile, 0o644);
    write(
        "server",
        "#!/bin/sh\necho \"server ran as $(id -u)\"\n",
        0o755,
    );
    // A test that must see no network: only lo.
    write(
        "flaky-test",
        "#!/bin/sh\n[ \"$(ip -o link show | wc -l)\" = 1 ]\n",
        0o755,
    );
    // The pod's sidecar talks to nginx on 127.0.0.1:80.
    write(
        "sidecar",
        "#!/bin/sh\ncurl -sSf -o /dev/null -m 5 --retry 10 --retry-delay 1 --retry-connrefused http://127.0.0.1:80/\n",
        0o755,
    );
    write("index.html", "hello from the README\n", 0o644);
    write("data/file", "data\n", 0o644);
    std::fs::create_dir_all(dir.join("rootfs/bin")).unwrap();
    copy_exe(Path::new("/bin/busybox"), &dir.join("rootfs/bin/busybox"));
    for applet in ["sh", "ls", "cat", "echo", "id", "ps"] {
        std::os::unix::fs::symlink("busybox", dir.join("rootfs/bin").join(applet)).unwrap();
    }
    for d in [dir.to_path_buf(), dir.join("data"), dir.join("src")] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
}

/// A started example: its process, its stdin (held open, as a terminal would be), its logs.
struct Running {
    what: String,
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    err: PathBuf,
}

fn run_group(g: &Group, examples: &BTreeMap<String, Vec<Example>>, log: &Mutex<Vec<String>>) {
    // Each group has its own run directory, so two `--map-auto` groups at once would lease the
    // same first host range, and the audit would take one's container for the other's lease
    // holder: they take turns.
    static MAP_AUTO: Mutex<()> = Mutex::new(());
    let map_auto = g.steps.iter().any(|s| match s {
        Step::Run { key, .. } | Step::Serve { key, .. } => key.contains("--map-auto"),
        _ => false,
    });
    let _turn = map_auto.then(|| MAP_AUTO.lock().unwrap_or_else(|e| e.into_inner()));
    let note = |s: String| log.lock().unwrap().push(s);
    let tmp = scratch();
    let state = tmp.path().join("state");
    let dir = tmp.path().join("work");
    let logs = tmp.path().join("logs");
    for d in [&state, &dir, &logs] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    fixtures(&dir);
    let host = Host::new();
    let before = snapshot_watching(&state, Some(&host.net.name), &[tmp.path()]);
    let mounts_before = host.mounts(tmp.path());
    let mut servers: Vec<Running> = Vec::new();
    let mut n = 0;
    for step in &g.steps {
        n += 1;
        let out = logs.join(format!("{n}.out"));
        let err = logs.join(format!("{n}.err"));
        let spawn = |script: &str, nobody: bool| {
            host.command(&dir, &state, nobody, script)
                .stdin(Stdio::piped())
                .stdout(std::fs::File::create(&out).unwrap())
                .stderr(std::fs::File::create(&err).unwrap())
                .spawn()
                .unwrap()
        };
        match step {
            Step::Run { key, expect } => {
                let ex = &examples[*key][0];
                let script = if ex.make {
                    // The block is a Makefile: it runs as `make TARGET` where it is.
                    std::fs::write(dir.join("Makefile"), &ex.text).unwrap();
                    format!("make {}", ex.text.split(':').next().unwrap())
                } else {
                    ex.text.clone()
                };
                let mut child = spawn(&script, g.rootless);
                drop(child.stdin.take());
                let status = wait(&mut child, Duration::from_secs(90))
                    .unwrap_or_else(|| panic!("{} did not finish in 90 s: {}", ex.at(), ex.text));
                let (o, e) = (read(&out), read(&err));
                assert!(
                    status.success(),
                    "{} failed with {status}: {}\nstdout: {o}\nstderr: {e}",
                    ex.at(),
                    ex.text
                );
                assert!(
                    o.contains(expect),
                    "{}: {} printed {o:?}, not {expect:?}\nstderr: {e}",
                    ex.at(),
                    ex.text
                );
                note(format!("ran            {}  {}", places(examples, key), key));
            }
            Step::Serve { key, comm } => {
                let ex = &examples[*key][0];
                let script = ex.text.trim_end().trim_end_matches('&').trim_end();
                let mut child = spawn(script, g.rootless);
                let stdin = child.stdin.take();
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    if let Some(status) = child.try_wait().unwrap() {
                        panic!(
                            "{}: {} exited ({status}) instead of running {comm}\nstdout: {}\nstderr: {}",
                            ex.at(),
                            ex.text,
                            read(&out),
                            read(&err)
                        );
                    }
                    let mut tree = descendants(child.id());
                    tree.push(child.id());
                    if tree.iter().any(|p| comm_of(*p) == *comm) {
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "{}: {comm} not running after 60 s: {}\nstderr: {}",
                        ex.at(),
                        ex.text,
                        read(&err)
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
                // The settle time: a server that fails at start has failed by now.
                std::thread::sleep(Duration::from_millis(700));
                let e = read(&err);
                assert!(
                    child.try_wait().unwrap().is_none() && !e.contains("fatal:"),
                    "{}: {} did not keep running: stderr: {e}",
                    ex.at(),
                    ex.text
                );
                note(format!("server-checked {}  {}", places(examples, key), key));
                servers.push(Running {
                    what: format!("{}: {}", ex.at(), ex.text),
                    child,
                    stdin,
                    err,
                });
            }
            Step::Check { cmd, expect } => {
                let mut child = spawn(cmd, false);
                drop(child.stdin.take());
                let status = wait(&mut child, Duration::from_secs(90))
                    .unwrap_or_else(|| panic!("check {cmd} did not finish in 90 s"));
                let (o, e) = (read(&out), read(&err));
                assert!(
                    status.success() && o.contains(expect),
                    "check `{cmd}` failed ({status}), expected {expect:?}:\nstdout: {o}\nstderr: {e}"
                );
                note(format!("  checked      {cmd}"));
            }
            Step::Stop => stop_all(&mut servers, &note),
        }
    }
    stop_all(&mut servers, &note);
    // netns's lock and allocation cursor are its state layout, as the empty directories are.
    let mut kept = vec![state.join("run/netns/lock"), state.join("run/netns/last")];
    if g.keeps_layers {
        kept.push(state.join("data"));
    }
    kept.extend(released_leases(&state));
    let kept: Vec<&Path> = kept.iter().map(PathBuf::as_path).collect();
    assert_nothing_left_watching(&before, &state, Some(&host.net.name), &kept, &[tmp.path()]);
    assert_eq!(
        host.mounts(tmp.path()),
        mounts_before,
        "mounts left in the host"
    );
}

/// The `--map-auto` leases of this group whose user namespace is gone. userns execs, so it
/// cannot delete its lease; the audit also asks that no process run with the range's uids,
/// but other suites on this machine lease the same first range in their own run directories,
/// so that part cannot tell whose process it sees. Every process of this group's examples is
/// known gone (stop_all waits for each tree), which is what that check stands for here.
fn released_leases(state: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let Ok(dir) = std::fs::read_dir(state.join("run/userns")) else {
        return Vec::new();
    };
    dir.flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.starts_with("lease-") && name.ends_with(".json")
        })
        .filter(|p| {
            let Ok(record) =
                serde_json::from_slice::<serde_json::Value>(&std::fs::read(p).unwrap_or_default())
            else {
                return false;
            };
            let inode = record["userns"].as_u64().unwrap_or(0);
            let held = |f: String| std::fs::metadata(f).is_ok_and(|m| m.ino() == inode);
            let pid = record["pid"].as_u64().unwrap_or(0);
            inode != 0
                && !held(format!("/proc/{pid}/ns/user"))
                && !record["pin"]
                    .as_str()
                    .is_some_and(|pin| held(pin.to_owned()))
        })
        .collect()
}

/// Where an example is written (both READMEs when they share it).
fn places(examples: &BTreeMap<String, Vec<Example>>, key: &str) -> String {
    let at: Vec<String> = examples[key].iter().map(Example::at).collect();
    at.join(", ")
}

/// Stops servers as a user would: end of input first (a shell exits 0), then SIGTERM (the
/// way a server is asked to stop); SIGKILL only for what is left after 5 s, and said so.
/// A server is stopped when none of its processes is left, as `docker stop` returns.
fn stop_all(servers: &mut Vec<Running>, note: &dyn Fn(String)) {
    while let Some(mut s) = servers.pop() {
        let mut tree = descendants(s.child.id());
        tree.push(s.child.id());
        drop(s.stdin.take());
        let how = if let Some(status) = wait(&mut s.child, Duration::from_millis(500)) {
            assert!(
                status.success(),
                "{} exited with {status} at the end of its input: {}",
                s.what,
                read(&s.err)
            );
            "exited 0 at the end of its input"
        } else {
            tree.extend(descendants(s.child.id()));
            signal(s.child.id(), libc::SIGTERM);
            if wait(&mut s.child, Duration::from_secs(5)).is_some() {
                "stopped by SIGTERM"
            } else {
                "KILLED: still running 5 s after SIGTERM"
            }
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while tree
            .iter()
            .any(|p| Path::new(&format!("/proc/{p}")).exists())
        {
            if Instant::now() > deadline {
                for p in &tree {
                    signal(*p, libc::SIGKILL);
                }
                assert!(
                    Instant::now() < deadline + Duration::from_secs(5),
                    "processes of {} do not go away: {tree:?}",
                    s.what
                );
            }
            let _ = s.child.try_wait();
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = s.child.wait();
        note(format!("  stopped      {how}: {}", s.what));
    }
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a process this test started (or one of its descendants).
    unsafe { libc::kill(pid as i32, sig) };
}

fn wait(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Every process below `pid`, from /proc's parent links.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parent: Vec<(u32, u32)> = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        if let Some(pp) = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
            parent.push((p, pp));
        }
    }
    let mut out = vec![];
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for (c, _) in parent.iter().filter(|(_, pp)| *pp == p) {
            out.push(*c);
            todo.push(*c);
        }
    }
    out
}

fn comm_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[test]
fn keys_drop_comments_and_join_continuations() {
    assert_eq!(key("nsps web1   # 完整信息"), "nsps web1");
    assert_eq!(
        key("pidns -- sh -c 'echo $$'  # 2"),
        "pidns -- sh -c 'echo $$'"
    );
    assert_eq!(key("a 'x # y' b"), "a 'x # y' b");
    assert_eq!(
        key("netns -- \\\nuserns -- true"),
        "netns -- userns -- true"
    );
}
