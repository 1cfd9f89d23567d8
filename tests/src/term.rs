//! The user's terminal for tests that drive a tool as from an interactive shell: a real pty
//! made here (the harness plays the terminal emulator: it holds the master, sets the window
//! size, types, and reads what is shown), with the tool as the session leader's child on it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// `cmd` with `slave` as stdin/stdout/stderr and as the controlling terminal of a new session
/// it leads (as a login shell would), spawned.
pub fn spawn_on(slave: &OwnedFd, cmd: &mut Command) -> Child {
    cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()));
    // SAFETY: setsid, TIOCSCTTY and signal dispositions in the forked child before exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // A user's terminal session starts with the terminal's signals at their
            // default, whatever the test runner inherited (`cmd &` in a script ignores
            // SIGINT and SIGQUIT, and an ignored signal survives exec).
            for signal in [libc::SIGINT, libc::SIGQUIT, libc::SIGHUP] {
                libc::signal(signal, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    cmd.spawn().unwrap()
}

/// The rows of a new terminal.
pub const ROWS: u16 = 33;
/// The columns of a new terminal.
pub const COLS: u16 = 111;

/// The user's terminal: the master stays here, the slave is the tool's controlling terminal.
pub struct Term {
    master: OwnedFd,
    pub slave: OwnedFd,
    pub shown: String,
}

impl Default for Term {
    fn default() -> Term {
        Term::new()
    }
}

impl Term {
    /// A new pty of [`ROWS`] × [`COLS`].
    pub fn new() -> Term {
        Term::sized(ROWS, COLS)
    }

    /// A new pty of `rows` × `cols`.
    pub fn sized(rows: u16, cols: u16) -> Term {
        let (master, slave) = openpty(rows, cols);
        Term {
            master,
            slave,
            shown: String::new(),
        }
    }

    /// `cmd` on this terminal: stdio, and the controlling terminal of a session led by it.
    pub fn spawn(&self, cmd: &mut Command) -> Child {
        spawn_on(&self.slave, cmd)
    }

    /// Reads what the terminal shows now (CRs dropped).
    pub fn drain(&mut self) {
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reads into a local buffer from our non-blocking master.
            let n =
                unsafe { libc::read(self.master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            let text = String::from_utf8_lossy(&buf[..n as usize]).replace('\r', "");
            self.shown.push_str(&text);
        }
    }

    /// Types `text`.
    pub fn write(&self, text: &str) {
        // SAFETY: writes from a local buffer to our master.
        let n = unsafe { libc::write(self.master.as_raw_fd(), text.as_ptr().cast(), text.len()) };
        assert_eq!(n, text.len() as isize);
    }

    /// The user resizes the window: the kernel tells the terminal's foreground group.
    pub fn resize(&self, rows: u16, cols: u16) {
        let ws = winsize(rows, cols);
        // SAFETY: TIOCSWINSZ reads the local winsize.
        let rc = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        assert_eq!(rc, 0);
    }

    /// Canonical mode and echo on: the terminal is as a shell's prompt expects it.
    pub fn cooked(&self) -> bool {
        // SAFETY: termios is plain data, filled by tcgetattr.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: tcgetattr writes the local termios.
        let rc = unsafe { libc::tcgetattr(self.slave.as_raw_fd(), &mut t) };
        assert_eq!(rc, 0);
        t.c_lflag & libc::ICANON != 0 && t.c_lflag & libc::ECHO != 0
    }

    /// What the terminal holds as input for its session (what the user's shell reads next).
    pub fn pending_input(&self) -> String {
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD fills the local int.
        unsafe { libc::ioctl(self.slave.as_raw_fd(), libc::FIONREAD, &mut queued) };
        if queued <= 0 {
            return String::new();
        }
        let mut buf = vec![0u8; queued as usize];
        // SAFETY: F_SETFL on our slave, then a read of at most `queued` bytes into `buf`.
        let n = unsafe {
            libc::fcntl(self.slave.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK);
            libc::read(self.slave.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())
        };
        String::from_utf8_lossy(&buf[..n.max(0) as usize]).into_owned()
    }

    /// Waits until the terminal has shown `text` (20 s at most).
    pub fn wait_for(&mut self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.shown.contains(text) {
            assert!(
                Instant::now() < deadline,
                "the terminal never showed {text:?}; it showed:\n{}",
                self.shown
            );
            std::thread::sleep(Duration::from_millis(20));
            self.drain();
        }
    }

    /// Waits for `child` to end (30 s at most), reading the terminal meanwhile.
    pub fn wait_exit(&mut self, child: &mut Child) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            self.drain();
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("it did not end; the terminal showed:\n{}", self.shown);
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        std::thread::sleep(Duration::from_millis(50));
        self.drain();
        status
    }

    /// Runs `cmd` on this terminal to its end.
    pub fn run(&mut self, cmd: &mut Command) -> ExitStatus {
        let mut child = self.spawn(cmd);
        self.wait_exit(&mut child)
    }
}

/// A new pty pair of `rows` x `cols`: (master, slave), both close-on-exec, the master
/// non-blocking (the slave's file description stays blocking).
pub fn openpty(rows: u16, cols: u16) -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    let ws = winsize(rows, cols);
    // SAFETY: openpty fills two fds; termios may be null, the winsize is a local.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &ws,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both fds were just returned by openpty and are owned by nobody else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    for fd in [&master, &slave] {
        // SAFETY: F_SETFD on our own fd.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // SAFETY: O_NONBLOCK on the master's own file description.
    unsafe { libc::fcntl(master.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    (master, slave)
}

/// A window size of `rows` × `cols`.
pub fn winsize(rows: u16, cols: u16) -> libc::winsize {
    libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}
