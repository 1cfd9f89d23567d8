//! Issue 13, item 2: a container cannot act on its caller's terminal. The test makes a pty
//! and runs the chain as a user at a terminal would: a session of the caller's whose
//! controlling terminal is the pty, which is also the container's stdin, stdout and stderr.
//! Inside, `nsattack tty MARKER` pushes `MARKER...` into the terminal with TIOCSTI (native,
//! and through the i386 table with `int 0x80`), tries TIOCLINUX, sets the window size and
//! the N_NULL line discipline. The test then looks at the pty itself: no MARKER in what the
//! terminal echoed or holds as input, window size and line discipline unchanged.
//!
//! Each attack is first run without the defence, on the host side on the same kind of pty,
//! where it must work (TIOCLINUX excepted: on a pty the kernel's tty layer answers ENOTTY,
//! so the proof is that it reached the tty layer, and the defended run must answer EPERM).

mod escape_common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use escape_common::*;

const CLAIM: &str = "CVE-2017-5226 / CVE-2023-1523 / claim: a container cannot type into, kill or reshape its caller's terminal";
const ROWS: u16 = 24;
const COLS: u16 = 80;
const N_TTY: i32 = 0;

fn configs() -> Vec<Config> {
    if need_rootless() {
        Config::ALL.to_vec()
    } else {
        vec![Config::Rootful, Config::RootfulUserns]
    }
}

/// A pty made by the test: the master stays here, the slave is the caller's terminal.
struct Pty {
    master: OwnedFd,
    slave: OwnedFd,
}

impl Pty {
    fn new() -> Pty {
        let (master, slave) = nschain_tests::term::openpty(ROWS, COLS);
        Pty { master, slave }
    }

    fn window_size(&self) -> (u16, u16) {
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ fills the local winsize.
        let rc = unsafe { libc::ioctl(self.slave.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
        assert_eq!(rc, 0);
        (ws.ws_row, ws.ws_col)
    }

    fn line_discipline(&self) -> i32 {
        let mut ldisc = -1;
        // SAFETY: TIOCGETD fills the local int.
        let rc = unsafe { libc::ioctl(self.slave.as_raw_fd(), libc::TIOCGETD, &mut ldisc) };
        assert_eq!(rc, 0);
        ldisc
    }

    /// Everything the terminal shows now (what was written and echoed), without CRs.
    fn drain(&self, into: &mut String) {
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reads into a local buffer from our non-blocking master.
            let n =
                unsafe { libc::read(self.master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            into.push_str(&String::from_utf8_lossy(&buf[..n as usize]).replace('\r', ""));
        }
    }

    /// What the terminal holds as input for the caller (the next thing its shell would read).
    fn pending_input(&self) -> String {
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD fills the local int.
        unsafe { libc::ioctl(self.slave.as_raw_fd(), libc::FIONREAD, &mut queued) };
        if queued <= 0 {
            return String::new();
        }
        let mut buf = vec![0u8; queued as usize];
        // SAFETY: reads at most `queued` bytes (one complete line is queued) into `buf`.
        let n = unsafe { libc::read(self.slave.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        String::from_utf8_lossy(&buf[..n.max(0) as usize]).into_owned()
    }

    fn write(&self, text: &str) {
        // SAFETY: writes from a local buffer to our master.
        let n = unsafe { libc::write(self.master.as_raw_fd(), text.as_ptr().cast(), text.len()) };
        assert_eq!(n, text.len() as isize);
    }

    /// `cmd` on this pty's slave, as a login shell's session (term::spawn_on).
    fn spawn(&self, cmd: &mut Command) -> std::process::Child {
        nschain_tests::term::spawn_on(&self.slave, cmd)
    }

    /// Runs `cmd` on this terminal to its end (30 s at most); its status and what it showed.
    fn run(&self, cmd: &mut Command) -> (ExitStatus, String) {
        let mut child = self.spawn(cmd);
        let mut shown = String::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            self.drain(&mut shown);
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{cmd:?} did not end; it showed:\n{shown}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        std::thread::sleep(Duration::from_millis(50));
        self.drain(&mut shown);
        (status, shown)
    }
}

/// What one run of `nsattack tty MARKER` did to the terminal.
#[derive(Debug)]
struct Effects {
    /// The attacker's report and everything else the terminal showed.
    shown: String,
    /// The marker was echoed by the terminal or is waiting as input: keystrokes got in.
    injected: Vec<&'static str>,
    window_size_changed: bool,
    line_discipline_changed: bool,
    /// TIOCLINUX was refused before the tty layer (EPERM; a pty answers ENOTTY).
    tioclinux_refused: bool,
    /// TIOCLINUX reached the tty layer.
    tioclinux_reached: bool,
}

fn attack(pty: &Pty, marker: &str, cmd: &mut Command) -> Effects {
    let (status, shown) = pty.run(cmd);
    let input = pty.pending_input();
    let mut injected = Vec::new();
    for (suffix, how) in [("N", "TIOCSTI"), ("I", "TIOCSTI through int 0x80")] {
        let text = format!("{marker}{suffix}");
        if shown.contains(&text) || input.contains(&text) {
            injected.push(how);
        }
    }
    let effects = Effects {
        injected,
        window_size_changed: pty.window_size() != (ROWS, COLS),
        line_discipline_changed: pty.line_discipline() != N_TTY,
        tioclinux_refused: shown
            .contains("BLOCKED TIOCLINUX (CVE-2023-1523): Operation not permitted"),
        tioclinux_reached: shown.contains("INFO TIOCLINUX reached the tty layer"),
        shown,
    };
    assert!(
        effects.shown.contains("INFO trying TIOCSETD"),
        "the attack did not run to its end ({status}):\n{}",
        effects.shown
    );
    effects
}

/// What of the attack got through to the caller's terminal (empty: everything was blocked).
fn holes(effects: &Effects) -> Vec<String> {
    [
        (
            !effects.injected.is_empty(),
            format!("keystrokes got in: {:?}", effects.injected),
        ),
        (
            effects.window_size_changed,
            "the window size changed".to_owned(),
        ),
        (
            effects.line_discipline_changed,
            "the line discipline changed".to_owned(),
        ),
        (
            !effects.tioclinux_refused,
            "TIOCLINUX was not refused (EPERM)".to_owned(),
        ),
        (
            !effects
                .shown
                .contains("BLOCKED TIOCSTI through int 0x80 (i386 table): killed by signal 31"),
            "the i386 system call was not killed (SIGSYS)".to_owned(),
        ),
        (
            !effects
                .shown
                .contains("INFO /dev/tty: No such device or address"),
            "the container has a controlling terminal".to_owned(),
        ),
        (
            effects.shown.contains("ESCAPED"),
            "the attacker reports ESCAPED".to_owned(),
        ),
    ]
    .into_iter()
    .filter_map(|(hole, what)| hole.then_some(what))
    .collect()
}

fn marker() -> String {
    format!("nscinj{}x", std::process::id())
}

#[test]
fn the_terminal_attacks_work_without_the_defence() {
    if !need_root() {
        return;
    }
    let lab = Lab::new("ttyhost");
    let nsattack = lab.root.join("nsattack").display().to_string();
    let marker = marker();
    // Host side, as root and as an unprivileged user: the attacker's terminal is its
    // controlling terminal, as the caller's is for a container that keeps it.
    for nobody in [false, true] {
        let pty = Pty::new();
        let argv = vec![nsattack.clone(), "tty".to_owned(), marker.clone()];
        let effects = attack(&pty, &marker, &mut lab.in_host("", nobody, &argv));
        let who = if nobody { "uid 65534" } else { "root" };
        assert_eq!(
            effects.injected,
            ["TIOCSTI", "TIOCSTI through int 0x80"],
            "[{CLAIM}] TIOCSTI does not work on the host side ({who}), the test proves nothing: {effects:#?}"
        );
        assert!(
            effects.window_size_changed
                && effects.line_discipline_changed
                && effects.tioclinux_reached,
            "[{CLAIM}] an attack does not work on the host side ({who}): {effects:#?}"
        );
    }
    lab.assert_clean();
}

#[test]
fn a_container_cannot_type_into_kill_or_reshape_the_callers_terminal() {
    if !need_root() {
        return;
    }
    let marker = marker();
    let mut results = Vec::new();
    let mut runs: Vec<(Config, &[&str])> = configs().into_iter().map(|c| (c, &[][..])).collect();
    // With CAP_SYS_ADMIN the kernel lets TIOCSTI through to a terminal that is not the
    // controlling one: only the filter stops it.
    runs.push((Config::Rootful, &["--cap-add", "SYS_ADMIN"]));
    for (config, mntns_args) in runs {
        // One lab per chain: a rootless chain refuses a state directory that root made.
        let lab = Lab::new("tty");
        let pty = Pty::new();
        let argv = lab.chain_argv(config, None, mntns_args, &["/nsattack", "tty", &marker]);
        let effects = attack(
            &pty,
            &marker,
            &mut lab.in_host("", config == Config::Rootless, &argv),
        );
        let holes = holes(&effects);
        if !holes.is_empty() {
            results.push(Err(format!(
                "HOLE [{CLAIM}] in the {} chain {mntns_args:?}: {}\n--- the terminal showed:\n{}",
                config.name(),
                holes.join("; "),
                effects.shown
            )));
        } else {
            results.push(Ok(()));
        }
        lab.assert_clean();
    }
    assert_all(results);
}

/// Waits until the terminal has shown `text` (10 s at most).
fn wait_for(pty: &Pty, shown: &mut String, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !shown.contains(text) {
        assert!(
            Instant::now() < deadline,
            "the terminal never showed {text:?}; it showed:\n{shown}"
        );
        std::thread::sleep(Duration::from_millis(20));
        pty.drain(shown);
    }
}

#[test]
fn an_interactive_shell_in_a_container_still_reads_writes_and_gets_ctrl_c() {
    if !need_root() {
        return;
    }
    for config in configs() {
        let lab = Lab::new("ttysh");
        let pty = Pty::new();
        let argv = lab.chain_argv(config, None, &[], &["/bin/sh"]);
        // The caller's shell survives Ctrl-C, as an interactive one does (a handler, not an
        // ignored signal, which the container would inherit).
        let mut caller = lab.in_host("trap : INT", config == Config::Rootless, &argv);
        let mut child = pty.spawn(&mut caller);
        let mut shown = String::new();
        // (Quotes split the words: what comes back is the output, not the echo.)
        pty.write("echo in$((6*7))si''de\n");
        wait_for(&pty, &mut shown, "in42side");
        // Ctrl-C reaches a command of the container: the terminal's foreground group is
        // still the container's.
        pty.write("echo sle''eping; sleep 30\n");
        wait_for(&pty, &mut shown, "sleeping");
        // Ctrl-C until sleep is gone: on a loaded machine sleep may not have started when the
        // first one arrives (the shell's prompt ignores it). Without delivery, sleep 30 would
        // hold "after" back for 30 s.
        let typed = Instant::now();
        pty.write("\x03");
        pty.write("echo af''ter\n");
        while !shown.contains("after") && typed.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(300));
            pty.drain(&mut shown);
            if !shown.contains("after") {
                // A Ctrl-C flushes what was typed after it: type the line again.
                pty.write("\x03");
                pty.write("echo af''ter\n");
            }
        }
        assert!(
            shown.contains("after"),
            "Ctrl-C never stopped sleep in the {} chain:\n{shown}",
            config.name()
        );
        assert!(
            typed.elapsed() < Duration::from_secs(10),
            "Ctrl-C did not stop sleep in the {} chain:\n{shown}",
            config.name()
        );
        pty.write("exit 3\n");
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the shell did not exit:\n{shown}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(3), "{}:\n{shown}", config.name());
        assert_eq!(pty.window_size(), (ROWS, COLS));
        lab.assert_clean();
    }
}

#[test]
fn a_process_joined_with_nsps_exec_cannot_act_on_the_callers_terminal() {
    if !need_root() {
        return;
    }
    let marker = marker();
    let mut results = Vec::new();
    for config in configs() {
        let lab = Lab::new("ttyjoin");
        let name = format!("tty{}{}", std::process::id(), config as u8);
        let argv = lab.chain_argv(config, Some(&name), &[], &["/bin/sleep", "30"]);
        let mut container = lab
            .in_host("", config == Config::Rootless, &argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        lab.wait_registered(&name);
        let pty = Pty::new();
        // -i: the joined process keeps the caller's terminal as stdin (without -i, /dev/null).
        let argv = [
            "nsps",
            "exec",
            "-i",
            &name,
            "--",
            "/nsattack",
            "tty",
            &marker,
        ]
        .map(str::to_owned);
        let effects = attack(
            &pty,
            &marker,
            &mut lab.in_host("", config == Config::Rootless, &argv),
        );
        let holes = holes(&effects);
        if holes.is_empty() {
            results.push(Ok(()));
        } else {
            results.push(Err(format!(
                "HOLE [{CLAIM}] through nsps exec in the {} chain: {}\n--- the terminal showed:\n{}",
                config.name(),
                holes.join("; "),
                effects.shown
            )));
        }
        lab.kill_all_and_wait();
        let _ = container.wait();
        lab.assert_clean();
    }
    assert_all(results);
}
