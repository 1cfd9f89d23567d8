//! The contract shared by every nschain tool (DESIGN.md §1).
//!
//! Each tool unshares or joins one namespace, sets it up and execs the rest of its argv. This
//! crate holds only what every link must do the same way: the command-line recipe
//! ([`cli`]), exit statuses ([`exit`]), error reporting ([`report`]), the hand-off to the next link
//! ([`handoff`], [`exec`]),
//! namespace handles and the shared `--join`/`--pin`/`--name`/`--info-fd` options ([`ns`],
//! [`link`], [`pin`], [`chain`], [`info`]), the state directories ([`state`]) and the
//! `NSCHAIN_DEBUG` step trace ([`debug`]), and what mntns and `nsps exec` both give a
//! container or a process joined to it: the seccomp filters ([`seccomp`], [`setuid_guard`])
//! and, when joining, the credentials of the container's payload ([`creds`]). Every raw system
//! call of the project is in [`sys`].
//! Namespace-specific logic stays in its tool.

#![warn(missing_docs)]

// Modules moved in from a tool (seccomp.rs, setuid_guard.rs from mntns) keep naming this
// crate `common`.
extern crate self as common;

pub mod accounts;
pub mod after;
pub mod cgroupfs;
pub mod chain;
pub mod channel;
pub mod cli;
pub mod console_socket;
pub mod creds;
pub mod debug;
pub mod detached;
pub mod exec;
pub mod exit;
pub mod generate;
pub mod handdown;
pub mod handed_fd;
pub mod handoff;
pub mod image;
pub mod info;
pub mod inprocess;
pub mod keyring;
pub mod link;
pub mod link_trace;
pub mod logfile;
pub mod ns;
pub mod pin;
pub mod procfs;
pub mod pty;
pub mod report;
pub mod resident;
pub mod seccomp;
pub mod seccomp_policy;
pub mod setuid_guard;
pub mod signals;
pub mod state;
pub mod sup;
pub mod supervisor;
pub mod sys;
pub mod sysctl;
pub mod sysfs;
pub mod terminal;
pub mod tty_guard;

pub use cli::main;
pub use handoff::{Context, Next};
pub use report::{Fatal, Hint};
