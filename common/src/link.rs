//! The shared options of every namespace tool (`--join`, `--pin`, `--name`, `--info-fd`) and
//! the steps they add around a tool's own setup:
//!
//! ```text
//! Link::prepare   check the options; nothing is changed yet
//! Link::enter     join the target, or unshare (pinning through a helper forked before)
//! ... the tool's own setup ...
//! Link::finish    register under the chain's name, write the --info-fd line
//! ```

use std::os::fd::RawFd;
use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::chain::{self, Naming};
use crate::info::{self, NsId, Record};
use crate::ns::{self, JoinTarget, Namespace, NsFile};
use crate::pin::PinHelper;
use crate::{Context, Fatal};

/// `--join`, `--pin`, `--name`, `--info-fd` and `--detach`, flattened into every tool's arguments.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct NsOptions {
    /// Enter an existing namespace instead of creating one: a namespace file
    /// (/proc/PID/ns/TYPE, a pinned file), a PID, or the name of a running chain
    #[arg(long, value_name = "TARGET", conflicts_with = "pin")]
    pub join: Option<JoinTarget>,

    /// Keep the new namespace alive by bind-mounting it at PATH, to be joined later
    #[arg(long, value_name = "PATH")]
    pub pin: Option<PathBuf>,

    /// Name the whole chain, so that nsps lists it and --join NAME enters it
    #[arg(long, value_name = "NAME", value_parser = chain::parse_name)]
    pub name: Option<String>,

    /// Write one JSON line describing what this link made to file descriptor FD
    #[arg(long, value_name = "FD", allow_hyphen_values = true, value_parser = info::parse_fd)]
    pub info_fd: Option<RawFd>,

    /// Run the chain in the background: print its name once COMMAND has started, keep its
    /// output in a log (nsps logs NAME). Only the first link of a chain acts on it
    #[arg(short = 'd', long)]
    pub detach: bool,
}

/// One link of a chain, for one namespace kind.
#[derive(Debug)]
pub struct Link {
    tool: &'static str,
    kind: Namespace,
    options: NsOptions,
    naming: Option<Naming>,
    joined: Option<NsFile>,
    /// Where the record goes when the chain registers once ([`Context::deferred_registrations`]).
    deferred: Option<chain::Pending>,
}

impl Link {
    /// Checks the shared options before anything is changed: the name is free, the join
    /// target exists and is a namespace of the right type.
    pub fn prepare(cx: &Context, kind: Namespace, options: &NsOptions) -> Result<Link, Fatal> {
        let tool = cx.tool();
        let naming = chain::naming_for(options.name.as_deref(), tool, options.join.is_none())?;
        let joined = match &options.join {
            Some(target) => Some(NsFile::open(kind, target)?),
            None => None,
        };
        Ok(Link {
            tool,
            kind,
            options: options.clone(),
            naming,
            joined,
            deferred: cx.deferred_registrations(),
        })
    }

    /// The name this link registers under (given, inherited or generated).
    pub fn naming(&self) -> Option<&Naming> {
        self.naming.as_ref()
    }

    /// The link's name (its tool): what its registration records.
    pub fn tool(&self) -> &'static str {
        self.tool
    }

    /// The namespace type of this link.
    pub fn kind(&self) -> Namespace {
        self.kind
    }

    /// Whether this link joins an existing namespace rather than creating one.
    pub fn is_join(&self) -> bool {
        self.joined.is_some()
    }

    /// The join target, when joining.
    pub fn join_target(&self) -> Option<&JoinTarget> {
        self.options.join.as_ref()
    }

    /// The namespace file being joined, when joining.
    pub fn joined(&self) -> Option<&NsFile> {
        self.joined.as_ref()
    }

    /// Joins the target, or creates the namespace (and pins it when asked).
    pub fn enter(&self) -> Result<(), Fatal> {
        if let Some(ns) = &self.joined {
            return ns.enter();
        }
        let helper = match &self.options.pin {
            Some(path) => Some(PinHelper::spawn(path, self.kind)?),
            None => None,
        };
        ns::unshare(self.kind)?;
        match helper {
            Some(helper) => helper.pin(),
            None => Ok(()),
        }
    }

    /// Spawns the pin helper without unsharing, for tools that unshare themselves (`pidns`,
    /// `userns`): call [`PinHelper::pin`] once the namespace exists.
    pub fn pin_helper(&self) -> Result<Option<PinHelper>, Fatal> {
        match (&self.options.pin, &self.joined) {
            (Some(path), None) => Ok(Some(PinHelper::spawn(path, self.kind)?)),
            _ => Ok(None),
        }
    }

    /// The record of what this link made, held by process `pid` (its namespace read through
    /// /proc/self when that is this process).
    fn record(
        &self,
        pid: u32,
        this_process: bool,
        extra: Map<String, Value>,
    ) -> Result<Record, Fatal> {
        let path = self.kind.proc_path((!this_process).then_some(pid));
        let inode = ns::inode_of(&path)?;
        Ok(Record {
            tool: self.tool.to_owned(),
            pid,
            ns: NsId {
                kind: self.kind.proc_name().to_owned(),
                inode,
            },
            created: self.joined.is_none(),
            extra,
        })
    }

    /// Registers the link under the chain's name and writes the `--info-fd` line, for the
    /// namespace this process holds. `host_pid` is this process as the host's /proc numbers
    /// it ([`crate::procfs::own_pid`], read before a new /proc is mounted).
    pub fn finish(&self, host_pid: u32, extra: Map<String, Value>) -> Result<Record, Fatal> {
        let record = self.record(host_pid, true, extra)?;
        self.publish(record, self.deferred.as_ref())
    }

    /// [`Link::finish`] for a namespace held by another process, `pid` on the host (`pidns`:
    /// its child).
    pub fn finish_for(&self, pid: u32, extra: Map<String, Value>) -> Result<Record, Fatal> {
        let record = self.record(pid, false, extra)?;
        // Written now: this process stays (pidns's monitor) and execs no further link.
        self.publish(record, None)
    }

    fn publish(&self, record: Record, deferred: Option<&chain::Pending>) -> Result<Record, Fatal> {
        if let Some(naming) = &self.naming {
            // A first link registering now writes its record with the claim (a new
            // directory cannot hold a live record of the kind it joins).
            let with_claim = deferred.is_none().then_some(&record);
            let registered = chain::claim_with(naming, with_claim).and_then(|done| {
                if let (Some(pending), Some(old)) = (deferred, &naming.replaces) {
                    // The registration was renamed: what earlier links queued moves with it.
                    for (name, _) in pending.borrow_mut().iter_mut().filter(|(n, _)| n == old) {
                        name.clone_from(&naming.name);
                    }
                }
                // Joining a namespace the chain already registered (docker exec) must not
                // replace the record of the process that holds it.
                if done || (self.is_join() && chain::has_live_record(&naming.name, self.kind)) {
                    return Ok(());
                }
                if let Some(pending) = deferred {
                    pending
                        .borrow_mut()
                        .push((naming.name.clone(), record.clone()));
                    return Ok(());
                }
                chain::register(&naming.name, &record)
            });
            match registered {
                // Nobody asked for a generated name: where it cannot be registered (root
                // inside a user namespace, a read-only run directory) the chain runs unlisted.
                Err(fatal) if naming.generated => crate::debug::note(format_args!(
                    "chain {} not registered: {:#}",
                    naming.name, fatal.error
                )),
                other => other?,
            }
        }
        if let Some(fd) = self.options.info_fd {
            info::write_line(fd, &record)?;
        }
        Ok(record)
    }
}
