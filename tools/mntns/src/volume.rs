//! Parsers for the mount specs the user writes: `-v SRC:DST[:OPTS]`, `--tmpfs DST[:OPTS]`,
//! `--propagation`, `--user UID[:GID]`. Pure functions: nothing here touches the system.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use nix::mount::MsFlags;

/// `-v SRC:DST[:OPTS]`, OPTS a comma list of `ro`/`rw` and a propagation as docker's
/// (`rprivate`, `private`, `rshared`, `shared`, `rslave`, `slave`, `runbindable`,
/// `unbindable`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
    /// The bind's propagation (MS_SHARED, MS_SLAVE, ...; with MS_REC for the `r` forms);
    /// none: the container's (private).
    pub propagation: Option<MsFlags>,
}

/// One option of a volume's OPTS: read-only or not, and a propagation.
fn volume_option(option: &[u8], ro: &mut bool, prop: &mut Option<MsFlags>) -> Result<(), String> {
    let kind = match option {
        b"ro" => {
            *ro = true;
            return Ok(());
        }
        b"rw" => {
            *ro = false;
            return Ok(());
        }
        b"private" | b"rprivate" => MsFlags::MS_PRIVATE,
        b"shared" | b"rshared" => MsFlags::MS_SHARED,
        b"slave" | b"rslave" => MsFlags::MS_SLAVE,
        b"unbindable" | b"runbindable" => MsFlags::MS_UNBINDABLE,
        other => {
            return Err(format!(
                "unknown option '{}' (expected ro, rw or a propagation such as rslave)",
                String::from_utf8_lossy(other)
            ))
        }
    };
    let recursive = option.first() == Some(&b'r');
    *prop = Some(if recursive {
        kind | MsFlags::MS_REC
    } else {
        kind
    });
    Ok(())
}

/// Parses a volume spec. SRC is a host path (relative to the current directory if relative);
/// DST must be absolute: it is resolved inside the container's root.
pub fn parse_volume(spec: &OsStr) -> Result<Volume, String> {
    let shown = spec.to_string_lossy();
    let parts: Vec<&[u8]> = spec.as_bytes().split(|&b| b == b':').collect();
    let (mut read_only, mut propagation) = (false, None);
    let (source, target) = match parts.as_slice() {
        [source, target] => (*source, *target),
        [source, target, opts] => {
            for option in opts.split(|&b| b == b',') {
                volume_option(option, &mut read_only, &mut propagation)
                    .map_err(|e| format!("invalid volume '{shown}': {e}"))?;
            }
            (*source, *target)
        }
        _ => {
            return Err(format!(
                "invalid volume '{shown}': expected SRC:DST[:ro|rw][,PROPAGATION]"
            ))
        }
    };
    if source.is_empty() {
        return Err(format!("invalid volume '{shown}': the source is empty"));
    }
    let target = parse_target(target).map_err(|e| format!("invalid volume '{shown}': {e}"))?;
    Ok(Volume {
        source: PathBuf::from(OsString::from_vec(source.to_vec())),
        target,
        read_only,
        propagation,
    })
}

/// A mount target inside the container: absolute, not `/` itself, no `..`.
pub fn parse_target(bytes: &[u8]) -> Result<PathBuf, String> {
    let path = Path::new(OsStr::from_bytes(bytes));
    if !path.is_absolute() {
        return Err(format!(
            "the target '{}' is not an absolute path",
            path.display()
        ));
    }
    let mut clean = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!("the target '{}' contains '..'", path.display()))
            }
            Component::Normal(name) => clean.push(name),
            Component::Prefix(_) => {}
        }
    }
    if clean == Path::new("/") {
        return Err("the target cannot be / itself (use --rootfs or --overlay)".into());
    }
    if clean.starts_with("/proc") {
        return Err(format!(
            "the target '{}' is inside /proc, which mntns manages",
            clean.display()
        ));
    }
    Ok(clean)
}

/// `--tmpfs DST[:size=…,mode=…,…]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tmpfs {
    pub target: PathBuf,
    pub flags: MsFlags,
    /// The filesystem options passed to the kernel (size, mode, nr_inodes, uid, gid).
    pub data: String,
}

/// Docker's defaults for `--tmpfs`: nosuid, nodev, noexec.
const TMPFS_DEFAULT: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

pub fn parse_tmpfs(spec: &OsStr) -> Result<Tmpfs, String> {
    let bytes = spec.as_bytes();
    let shown = spec.to_string_lossy();
    let (target, options) = match bytes.iter().position(|&b| b == b':') {
        Some(at) => (&bytes[..at], Some(&bytes[at + 1..])),
        None => (bytes, None),
    };
    let target = parse_target(target).map_err(|e| format!("invalid tmpfs '{shown}': {e}"))?;
    let mut flags = TMPFS_DEFAULT;
    let mut data = Vec::new();
    if let Some(options) = options {
        let options = std::str::from_utf8(options)
            .map_err(|_| format!("invalid tmpfs '{shown}': the options are not UTF-8"))?;
        for option in options.split(',') {
            apply_tmpfs_option(option, &mut flags, &mut data)
                .map_err(|e| format!("invalid tmpfs '{shown}': {e}"))?;
        }
    }
    Ok(Tmpfs {
        target,
        flags,
        data: data.join(","),
    })
}

fn apply_tmpfs_option(
    option: &str,
    flags: &mut MsFlags,
    data: &mut Vec<String>,
) -> Result<(), String> {
    let (key, value) = match option.split_once('=') {
        Some((key, value)) => (key, Some(value)),
        None => (option, None),
    };
    match (key, value) {
        ("size", Some(v)) => data.push(format!("size={}", parse_size(v)?)),
        ("mode", Some(v)) => {
            let mode = u32::from_str_radix(v, 8)
                .ok()
                .filter(|m| *m <= 0o7777 && !v.is_empty())
                .ok_or_else(|| format!("'{v}' is not an octal mode"))?;
            data.push(format!("mode={mode:o}"));
        }
        ("nr_inodes" | "uid" | "gid", Some(v)) => {
            v.parse::<u32>()
                .map_err(|_| format!("{key}='{v}' is not a number"))?;
            data.push(format!("{key}={v}"));
        }
        ("ro", None) => flags.insert(MsFlags::MS_RDONLY),
        ("rw", None) => flags.remove(MsFlags::MS_RDONLY),
        ("exec", None) => flags.remove(MsFlags::MS_NOEXEC),
        ("noexec", None) => flags.insert(MsFlags::MS_NOEXEC),
        ("suid", None) => flags.remove(MsFlags::MS_NOSUID),
        ("nosuid", None) => flags.insert(MsFlags::MS_NOSUID),
        ("dev", None) => flags.remove(MsFlags::MS_NODEV),
        ("nodev", None) => flags.insert(MsFlags::MS_NODEV),
        _ => {
            return Err(format!(
                "unknown option '{option}' (expected size=, mode=, nr_inodes=, uid=, gid=, ro, rw, [no]exec, [no]suid, [no]dev)"
            ))
        }
    }
    Ok(())
}

/// A tmpfs size: bytes with an optional k/m/g suffix (binary), or a percentage of RAM
/// (1-100%). Returned in the kernel's syntax.
pub fn parse_size(text: &str) -> Result<String, String> {
    let bad = || format!("'{text}' is not a size (expected N, Nk, Nm, Ng or N%)");
    if let Some(percent) = text.strip_suffix('%') {
        let n: u32 = percent.parse().map_err(|_| bad())?;
        if n == 0 || n > 100 || !percent.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        return Ok(format!("{n}%"));
    }
    let (digits, shift) = match text.as_bytes().last() {
        Some(b'k' | b'K') => (&text[..text.len() - 1], 10),
        Some(b'm' | b'M') => (&text[..text.len() - 1], 20),
        Some(b'g' | b'G') => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let bytes = n
        .checked_shl(shift)
        .filter(|b| b >> shift == n)
        .ok_or_else(bad)?;
    if bytes == 0 {
        return Err(format!(
            "'{text}': a size of 0 means no limit to tmpfs; give a positive size"
        ));
    }
    Ok(bytes.to_string())
}

/// `--propagation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Propagation {
    #[default]
    Private,
    Slave,
    Shared,
    /// Private, and no bind mount may be made of it (OCI rootfsPropagation "unbindable").
    Unbindable,
    Unchanged,
}

impl FromStr for Propagation {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "private" => Ok(Propagation::Private),
            "slave" => Ok(Propagation::Slave),
            "shared" => Ok(Propagation::Shared),
            "unbindable" => Ok(Propagation::Unbindable),
            "unchanged" => Ok(Propagation::Unchanged),
            _ => Err(format!(
                "'{text}' is not a propagation (expected private, slave, shared, unbindable or unchanged)"
            )),
        }
    }
}

/// `--user UID[:GID]` (numeric: names would be looked up in the container's /etc/passwd,
/// which is untrusted input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
}

impl FromStr for User {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let id = |s: &str| {
            s.parse::<u32>()
                .ok()
                .filter(|n| *n != u32::MAX && s.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| format!("'{text}' is not UID[:GID] (numeric ids)"))
        };
        match text.split_once(':') {
            Some((uid, gid)) => Ok(User {
                uid: id(uid)?,
                gid: id(gid)?,
            }),
            None => {
                let uid = id(text)?;
                Ok(User { uid, gid: uid })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(s: &str) -> Result<Volume, String> {
        parse_volume(OsStr::new(s))
    }

    #[test]
    fn volumes_parse() {
        assert_eq!(
            vol("/srv/data:/data").unwrap(),
            Volume {
                source: "/srv/data".into(),
                target: "/data".into(),
                read_only: false,
                propagation: None,
            }
        );
        assert!(vol("/a:/b:ro").unwrap().read_only);
        let slave = vol("/a:/b:ro,rslave").unwrap();
        assert!(slave.read_only);
        assert_eq!(slave.propagation, Some(MsFlags::MS_SLAVE | MsFlags::MS_REC));
        assert_eq!(
            vol("/a:/b:shared").unwrap().propagation,
            Some(MsFlags::MS_SHARED)
        );
        assert!(!vol("/a:/b:rw").unwrap().read_only);
        assert_eq!(
            vol("rel/dir:/x//y/./z/").unwrap().target,
            PathBuf::from("/x/y/z")
        );
        for bad in [
            "",
            "/a",
            "/a:",
            ":/b",
            "/a:b",
            "/a:/b:rx",
            "/a:/b:ro,sideways",
            "/a:/b:ro:x",
            "/a:/",
            "/a:/x/../y",
            "/a:/proc/sys",
            "/a:/proc",
        ] {
            assert!(vol(bad).is_err(), "{bad}");
        }
        let raw = OsStr::from_bytes(b"/\xff:/t");
        assert_eq!(
            parse_volume(raw).unwrap().source.as_os_str().as_bytes(),
            b"/\xff"
        );
    }

    #[test]
    fn tmpfs_parse() {
        let t = parse_tmpfs(OsStr::new("/run")).unwrap();
        assert_eq!(t.target, PathBuf::from("/run"));
        assert_eq!(t.flags, TMPFS_DEFAULT);
        assert_eq!(t.data, "");
        let t = parse_tmpfs(OsStr::new("/run:size=64m,mode=1777,exec,ro")).unwrap();
        assert_eq!(t.data, format!("size={},mode=1777", 64 << 20));
        assert!(t.flags.contains(MsFlags::MS_RDONLY));
        assert!(!t.flags.contains(MsFlags::MS_NOEXEC));
        for bad in [
            "run",
            "/run:size=",
            "/run:size=x",
            "/run:size=-1",
            "/run:size=10q",
            "/run:size=0",
            "/run:size=101%",
            "/run:mode=9",
            "/run:mode=",
            "/run:bogus",
            "/run:uid=a",
            "/run:size=99999999999999999999g",
            "/:size=1m",
        ] {
            assert!(parse_tmpfs(OsStr::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1024").unwrap(), "1024");
        assert_eq!(parse_size("2k").unwrap(), "2048");
        assert_eq!(parse_size("1G").unwrap(), (1u64 << 30).to_string());
        assert_eq!(parse_size("50%").unwrap(), "50%");
        for bad in ["", "k", "1.5m", "0%", "+1", "1 m", "18446744073709551615k"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn propagation_and_user_parse() {
        assert_eq!("slave".parse::<Propagation>().unwrap(), Propagation::Slave);
        assert!("rshared".parse::<Propagation>().is_err());
        assert_eq!(
            "1000".parse::<User>().unwrap(),
            User {
                uid: 1000,
                gid: 1000
            }
        );
        assert_eq!("0:5".parse::<User>().unwrap(), User { uid: 0, gid: 5 });
        for bad in ["", "x", "1:", ":1", "-1", "+1", "4294967295", "1:2:3"] {
            assert!(bad.parse::<User>().is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn volume_targets_stay_absolute_and_clean(s in "[/a-z.:]{0,24}") {
            if let Ok(v) = vol(&s) {
                proptest::prop_assert!(v.target.is_absolute());
                proptest::prop_assert!(v.target.components().all(|c| c != Component::ParentDir));
                proptest::prop_assert!(v.target != Path::new("/"));
            }
        }
    }
}
