//! `--overlay LOWER[:LOWER...]`: overlayfs with read-only lower layers and a per-container
//! writable layer at `$NSCHAIN_DATA_DIR/overlay/<id>/{diff,work,merged}` (or `--upper DIR`).
//!
//! The layer outlives the chain unless `--rm` is given. A `--rm` layer is deleted before the
//! caller's wait returns: by pidns's monitor when a pidns is before mntns (common::after; it
//! is handed the removal and the lock below before the setup, so nothing of ours stays in the
//! container), else by the process the caller waits on (waiter.rs, which then also holds the
//! lock).
//!
//! Otherwise a tiny cleaner process is forked before the mount namespace is unshared (so it
//! still sees the layer's directory): it undoes a failed setup of a fresh layer (and deletes
//! a `--rm` layer of a user's `--upper DIR` once the exec'd process exits). The cleaner is
//! non-dumpable (a container process cannot read its root or fds through /proc without
//! CAP_SYS_PTRACE, which the default capability set lacks), in its own session, with stdin and
//! stdout on /dev/null.
//!
//! A SIGKILLed cleaner, or one killed with its pid namespace when that namespace's init exits
//! first, must not leak the layer for good: a `--rm` layer holds a `.rm` lock file, locked by
//! its cleaner for as long as it lives; every later `mntns --overlay` deletes `--rm` layers
//! whose lock is free and any half-deleted `.trash-*` directory.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use common::channel::{self, Channel};
use common::{debug, report, state, Fatal, Hint};
use nix::mount::MsFlags;
use nix::unistd::{fork, ForkResult};
use serde::{Deserialize, Serialize};

use crate::sys;

/// The lock file of a `--rm` layer: also the mark that lets `pidns` remove it afterwards.
const RM_LOCK: &str = common::after::REMOVABLE_MARK;

/// The writable layer of one container.
#[derive(Debug)]
pub struct Layer {
    pub id: String,
    pub dir: PathBuf,
    /// Created by this run (deleted again if setup fails).
    pub fresh: bool,
    /// The layer directory itself was made by this run (not a user's `--upper DIR`).
    pub own_dir: bool,
    pub rm: bool,
    /// The parts of the layer this run created (what a failed setup removes again).
    made: Vec<&'static str>,
    /// Held while the layer is set up; the cleaner inherits it.
    lock: Option<File>,
}

impl Layer {
    pub fn diff(&self) -> PathBuf {
        self.dir.join("diff")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    pub fn merged(&self) -> PathBuf {
        self.dir.join("merged")
    }
    /// The `--rm` lock, for the process that deletes the layer (it holds it until then).
    pub fn take_lock(&mut self) -> Option<File> {
        self.lock.take()
    }
}

/// The directory holding every layer.
pub fn layers_dir() -> PathBuf {
    state::data_dir().join("overlay")
}

/// A random layer id: 12 hex digits, as Docker shows container ids.
fn random_id() -> anyhow::Result<String> {
    let mut bytes = [0u8; 6];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("unable to read /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Checks a lower layer (or the `--upper` directory) can be named in overlayfs options.
pub fn check_option_path(path: &Path) -> Result<(), String> {
    if path
        .as_os_str()
        .as_bytes()
        .iter()
        .any(|b| b",:\\\n".contains(b))
    {
        return Err(format!(
            "{} contains a character overlayfs cannot take in a layer path (',', ':', '\\')",
            path.display()
        ));
    }
    Ok(())
}

/// Creates (or, for a named chain, reuses) the layer directories. `lower_mode` is the mode of
/// the topmost lower layer's root, given to `diff` (which becomes the merged root).
pub fn prepare(
    upper: Option<&Path>,
    name: Option<&str>,
    rm: bool,
    lower: &Path,
    lower_tree: Option<BorrowedFd<'_>>,
) -> Result<Layer, Fatal> {
    let (id, dir, own_dir) = match upper {
        Some(dir) => {
            let id = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "upper".into());
            (id, dir.to_owned(), !dir.exists())
        }
        None => {
            let id = match name {
                // The chain's name (from NSCHAIN_NAME too): it becomes a path component.
                Some(name) => {
                    common::chain::validate_name(name).map_err(Fatal::new)?;
                    name.to_owned()
                }
                None => random_id()?,
            };
            let parent = layers_dir();
            state::ensure_dir(&parent, 0o700)
                .fatal_context("unable to prepare the layer directory")
                .map_err(data_dir_hint)?;
            let dir = parent.join(&id);
            (id, dir.clone(), !dir.exists())
        }
    };
    check_option_path(&dir).map_err(Fatal::new)?;
    let fresh = own_dir || !dir.join("diff").exists();
    let made_now: Vec<&'static str> = ["diff", "work", "merged"]
        .into_iter()
        .filter(|sub| !dir.join(sub).exists())
        .collect();
    let made = debug::step(format_args!("prepare layer {}", dir.display()), || {
        make_dirs(&dir, lower, lower_tree, rm)
    });
    let lock = match made {
        Ok(lock) => lock,
        Err(e) => {
            if own_dir {
                let _ = fs::remove_dir_all(&dir);
            }
            return Err(data_dir_hint(
                Fatal::from(e).context(format!("unable to prepare the layer {}", dir.display())),
            ));
        }
    };
    Ok(Layer {
        id,
        dir,
        fresh,
        own_dir,
        rm,
        made: made_now,
        lock,
    })
}

fn make_dirs(
    dir: &Path,
    lower: &Path,
    lower_tree: Option<BorrowedFd<'_>>,
    rm: bool,
) -> anyhow::Result<Option<File>> {
    fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(dir)?;
    let meta = fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    // An idmapped tree shows the owners as the namespace sees them through it.
    let (uid, gid, mode) = match lower_tree {
        Some(tree) => crate::idmap::root_attrs(tree),
        None => fs::metadata(lower)
            .map(|m| (m.uid(), m.gid(), m.mode()))
            .map_err(anyhow::Error::from),
    }
    .with_context(|| format!("unable to read {}", lower.display()))?;
    let diff = dir.join("diff");
    if !diff.exists() {
        fs::DirBuilder::new().mode(0o755).create(&diff)?;
        // The merged root takes its attributes from diff: copy the lower root's.
        fs::set_permissions(&diff, fs::Permissions::from_mode(mode & 0o7777))?;
        let _ = std::os::unix::fs::chown(&diff, Some(uid), Some(gid));
    }
    for sub in ["work", "merged"] {
        let path = dir.join(sub);
        if !path.exists() {
            fs::DirBuilder::new().mode(0o700).create(&path)?;
        }
    }
    if !rm {
        return Ok(None);
    }
    let path = dir.join(RM_LOCK);
    if let Ok(existing) = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&path)
    {
        if common::sys::fs::try_lock_exclusive(existing.as_fd()) != Ok(true) {
            bail!("the layer is in use by a running container");
        }
    }
    // Locked under a private name first, then renamed into place: a concurrent garbage
    // collection never sees an unlocked `.rm` of a layer being set up.
    let tmp = dir.join(format!("{RM_LOCK}.{}", std::process::id()));
    let lock = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&tmp)?;
    if common::sys::fs::try_lock_exclusive(lock.as_fd()) != Ok(true) {
        bail!("unable to lock {}", tmp.display());
    }
    fs::rename(&tmp, &path)?;
    Ok(Some(lock))
}

/// In a user namespace, a data directory owned by an unmapped user (the host's root, for a
/// chain with `userns --map-auto`) cannot take layers: say what to do.
fn data_dir_hint(fatal: Fatal) -> Fatal {
    let denied = fatal.error.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
            || c.downcast_ref::<state::UnsafeDir>().is_some()
    });
    if denied && !state::is_host_root() {
        return fatal.with_hint(format!(
            "the root of this user namespace cannot write to {}: give it a directory it owns (NSCHAIN_DATA_DIR, or chown to the host uid that root maps to), or choose the layer with --upper DIR",
            layers_dir().display()
        ));
    }
    fatal
}

/// Mounts the overlay at `merged`; returns an O_PATH fd of the new root. A lower layer with
/// an idmapped tree (`trees[i]`) is that tree, attached for the mount at a staging directory
/// of the layer and detached again once overlayfs holds it.
pub fn mount(
    layer: &Layer,
    lowers: &[PathBuf],
    trees: &mut [Option<OwnedFd>],
) -> Result<OwnedFd, Fatal> {
    let mut staged = Staged::default();
    let mut shown = Vec::new();
    for (i, lower) in lowers.iter().enumerate() {
        match trees.get_mut(i).and_then(Option::take) {
            Some(tree) => shown.push(staged.attach(layer, i, tree, lower)?),
            None => shown.push(lower.clone()),
        }
    }
    let mounted = mount_lowers(layer, &shown, staged.is_empty());
    staged.detach();
    mounted
}

/// The overlay over lower layers that all lie below one handed-down idmapped tree (`userns
/// --idmap STORE`, the image store): the tree is attached once in the layer and the lower
/// layers are taken from there.
pub fn mount_below_tree(
    layer: &Layer,
    lowers: &[PathBuf],
    tree_path: &Path,
    tree: OwnedFd,
) -> Result<OwnedFd, Fatal> {
    let mut staged = Staged::default();
    let dir = staged.attach(layer, 0, tree, tree_path)?;
    let shown: Vec<PathBuf> = lowers
        .iter()
        .map(|l| dir.join(l.strip_prefix(tree_path).unwrap_or(l)))
        .collect();
    let mounted = mount_lowers(layer, &shown, false);
    staged.detach();
    mounted
}

/// Idmapped trees attached in the layer for the overlay mount (`.idmap-N`), detached and
/// removed once overlayfs holds its own clones of them.
#[derive(Default)]
struct Staged {
    dirs: Vec<PathBuf>,
}

impl Staged {
    fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    fn attach(
        &mut self,
        layer: &Layer,
        i: usize,
        tree: OwnedFd,
        lower: &Path,
    ) -> Result<PathBuf, Fatal> {
        let dir = layer.dir.join(format!(".idmap-{i}"));
        debug::step(
            format_args!(
                "attach the idmapped tree of {} at {}",
                lower.display(),
                dir.display()
            ),
            || -> anyhow::Result<()> {
                match fs::DirBuilder::new().mode(0o700).create(&dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e.into()),
                }
                let target = crate::resolve::open_host_dir(&dir)?;
                self.dirs.push(dir.clone());
                sys::move_onto(tree.as_fd(), target.as_fd())?;
                Ok(())
            },
        )
        .map_err(|e| {
            Fatal::from(e).context(format!(
                "unable to attach the idmapped tree of {}",
                lower.display()
            ))
        })?;
        Ok(dir)
    }

    fn detach(self) {
        for dir in self.dirs {
            let _ = nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH);
            let _ = fs::remove_dir(&dir);
        }
    }
}

fn mount_lowers(layer: &Layer, lowers: &[PathBuf], may_split: bool) -> Result<OwnedFd, Fatal> {
    let lowerdir = lowers
        .iter()
        .map(|l| l.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(":");
    let mut data = format!(
        "lowerdir={lowerdir},upperdir={},workdir={}",
        layer.diff().display(),
        layer.work().display()
    );
    if !state::is_host_root() {
        // Inside a user namespace: keep overlay's metadata in user.* xattrs.
        data.push_str(",userxattr");
    }
    let merged = layer.merged();
    let mounted = debug::step("mount overlay", || {
        nix::mount::mount(
            Some("overlay"),
            &merged,
            Some("overlay"),
            MsFlags::empty(),
            Some(data.as_str()),
        )
    });
    if let (Err(nix::errno::Errno::EINVAL), false, [lower], true) =
        (&mounted, state::is_host_root(), lowers, may_split)
    {
        if !crate::overlay_split::mounts_below(lower).is_empty() {
            // Locked mounts on the lower layer (a user namespace): one overlay per directory.
            return crate::overlay_split::mount(layer, lower, ",userxattr");
        }
    }
    mounted.map_err(|e| {
        let fatal = Fatal::from(e).context(format!("unable to mount the overlay at {}", merged.display()));
        match e {
            nix::errno::Errno::EBUSY => fatal.with_hint("the layer is in use by another running container"),
            nix::errno::Errno::EINVAL if !state::is_host_root() => fatal.with_hint("in a user namespace overlayfs refuses a lower layer with mounts on it (the host's /proc, /dev, ... are locked over /): use a directory without submounts, such as an image's rootfs, as LOWER"),
            nix::errno::Errno::EINVAL => fatal.with_hint("overlayfs refuses this combination: the layer must be on a filesystem that supports it (not overlayfs or tmpfs without xattrs) and outside every lower layer's own mount"),
            _ => fatal,
        }
    })?;
    Ok(crate::resolve::open_host_dir(&merged)?)
}

/// Deletes `--rm` layers whose cleaner is gone and half-deleted trash.
pub fn collect_garbage() {
    common::after::collect_stale(&layers_dir());
}

/// Renames `parent/name` to trash (atomic: the layer is gone at once) and deletes it.
fn delete_dir(parent: &Path, name: &std::ffi::OsStr) -> std::io::Result<()> {
    common::after::remove_tree(&parent.join(name))
}

/// Deletes the layer: all of it for `--rm`, else (a failed setup) only what this run made.
/// A user's `--upper DIR` itself is never removed.
fn delete_layer(layer: &Layer, all: bool) -> std::io::Result<()> {
    let dir = &layer.dir;
    if layer.own_dir {
        if let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) {
            return delete_dir(parent, name);
        }
    }
    let parts: Vec<&str> = if all {
        vec!["diff", "work", "merged", RM_LOCK]
    } else {
        layer.made.iter().copied().chain([RM_LOCK]).collect()
    };
    for sub in parts {
        let path = dir.join(sub);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => fs::remove_dir_all(&path)?,
            Ok(_) => fs::remove_file(&path)?,
            Err(_) => {}
        }
    }
    Ok(())
}

/// Deletes a `--rm` layer once its container has ended (the waiter, waiter.rs).
pub fn remove(layer: &Layer) -> std::io::Result<()> {
    delete_layer(layer, true)
}

/// `--rm` under a link that waits outside (pidns's monitor, common::after): hands it the
/// removal and the mark's lock before the setup goes on, so that it removes the layer once
/// the container has ended (also when the setup fails) and no cleaner of ours stays inside
/// the container. False (nothing handed over) for a user's `--upper DIR` or a failed send.
pub fn hand_over(layer: &mut Layer, after: &Channel) -> bool {
    if !layer.rm || !layer.own_dir {
        return false;
    }
    let Some(lock) = layer.lock.as_ref() else {
        return false;
    };
    match common::after::request_removal_locked(after, &layer.dir, lock.as_fd()) {
        Ok(()) => {
            // The waiting side holds the lock now; ours closes.
            layer.lock = None;
            true
        }
        Err(e) => {
            report::warning(format_args!(
                "unable to hand the layer's removal to the process that waits outside: {e}"
            ));
            false
        }
    }
}

/// The forked cleaner, waiting for word from mntns.
#[derive(Debug)]
pub struct Cleaner {
    channel: Channel,
    pid: nix::unistd::Pid,
}

/// What mntns tells its cleaner once setup succeeded (nothing at all: setup failed).
#[derive(Debug, Serialize, Deserialize)]
enum CleanerWord {
    /// The layer is kept: leave at once.
    Keep,
    /// Delete the `--rm` layer once COMMAND exits.
    DeleteAfter,
}

impl Cleaner {
    /// Forks the cleaner (before the mount namespace is unshared). Needed when the layer is
    /// fresh (to remove it if setup fails) or `--rm`.
    pub fn spawn(layer: &mut Layer) -> Result<Option<Cleaner>, Fatal> {
        if !layer.fresh && !layer.rm {
            return Ok(None);
        }
        let watched = sys::pidfd_open(std::process::id() as libc::pid_t)
            .map_err(|e| Fatal::from(e).context("unable to watch this process (pidfd_open)"))?;
        let (ours, theirs) = channel::pair()
            .map_err(|e| Fatal::from(e).context("unable to create the cleaner's channel"))?;
        let lock = layer.lock.take();
        // SAFETY: mntns is single-threaded until exec, so the child may run ordinary code.
        match unsafe { fork() }
            .map_err(|e| Fatal::from(e).context("unable to fork the layer cleaner"))?
        {
            ForkResult::Child => {
                drop(ours);
                let keep = [
                    theirs.as_fd().as_raw_fd(),
                    watched.as_raw_fd(),
                    lock.as_ref().map(|l| l.as_raw_fd()).unwrap_or(-1),
                ];
                let code = clean(theirs, watched, layer, &keep);
                drop(lock);
                // SAFETY: _exit ends the cleaner without running the parent's destructors.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => {
                drop(theirs);
                drop(lock);
                Ok(Some(Cleaner {
                    channel: ours,
                    pid: child,
                }))
            }
        }
    }

    /// Setup succeeded: the cleaner deletes the layer when this process (COMMAND after the
    /// exec) exits if `delete` (`--rm`), else it leaves at once.
    pub fn release(self, delete: bool) {
        let word = if delete {
            CleanerWord::DeleteAfter
        } else {
            CleanerWord::Keep
        };
        let _ = self.channel.send(&word);
        if !delete {
            // It leaves at once: reap it, so COMMAND does not inherit a zombie child.
            let _ = nix::sys::wait::waitpid(self.pid, None);
        }
    }
}

/// The cleaner's life: detach, wait for word, then for the watched process, then delete.
fn clean(channel: Channel, watched: OwnedFd, layer: &Layer, keep: &[RawFd]) -> i32 {
    detach(keep);
    let (delete, all) = match channel.recv::<CleanerWord>() {
        Ok(Some(CleanerWord::Keep)) => return 0,
        Ok(Some(CleanerWord::DeleteAfter)) => (true, true),
        // mntns failed before the exec: undo what it made (all of it with --rm).
        Ok(None) | Err(_) => (layer.fresh || layer.rm, layer.rm),
    };
    drop(channel);
    let mut fds = [libc::pollfd {
        fd: watched.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    loop {
        // SAFETY: fds is a valid array of one pollfd for the duration of the call.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 1, -1) };
        if rc > 0 || nix::errno::Errno::last() != nix::errno::Errno::EINTR {
            break;
        }
    }
    if !delete {
        return 0;
    }
    match delete_layer(layer, all) {
        Ok(()) => 0,
        Err(e) => {
            report::warning(format_args!(
                "unable to delete the layer {}: {e}",
                layer.dir.display()
            ));
            1
        }
    }
}

/// Leaves the caller's session and terminal, closes every fd but stderr and `keep`, and
/// becomes non-dumpable.
fn detach(keep: &[RawFd]) {
    let _ = nix::sys::prctl::set_dumpable(false);
    let _ = nix::sys::prctl::set_name(c"mntns-cleaner");
    let _ = nix::unistd::setsid();
    for signal in [
        nix::sys::signal::Signal::SIGHUP,
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGQUIT,
        nix::sys::signal::Signal::SIGPIPE,
    ] {
        // SAFETY: SIG_IGN installs no handler code.
        let _ = unsafe { nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigIgn) };
    }
    // The cleaner owns no other Rust object holding these fds except the `keep` ones.
    common::sys::fs::close_all_above_stdio_but(keep);
    if let Ok(null) = OpenOptions::new().read(true).write(true).open("/dev/null") {
        let _ = nix::unistd::dup2(null.as_fd().as_raw_fd(), 0);
        let _ = nix::unistd::dup2(null.as_fd().as_raw_fd(), 1);
    }
    let _ = nix::unistd::chdir("/");
}
