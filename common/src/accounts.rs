//! User and group names, resolved as runc and Docker do, by reading the target root's own
//! /etc/passwd and /etc/group, never through NSS (the binaries are static): `mntns --user
//! USER[:GROUP]` (read after the root change, so the container's files, never the host's)
//! gives the uid, the gid, the supplementary groups (every group listing the user), HOME and
//! the user's name; `userns --map-user NAME` / `--map-group NAME` and the messages of userns
//! use the same lookups ([`uid_of`], [`gid_of`], [`name_of_uid`]) in the current root.
//!
//! Those files may belong to an image: they are parsed as untrusted text (a regular file, read
//! without blocking, at most 4 MiB; a malformed line is skipped), and they decide only what
//! the user could choose anyway — the ids inside the user namespace.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::str::FromStr;

/// A uid and a gid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct User {
    /// The user id.
    pub uid: u32,
    /// The group id.
    pub gid: u32,
}

/// A user or group as given: a name or a numeric id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Id {
    /// A numeric id.
    Num(u32),
    /// A name, looked up in the root's files.
    Name(String),
}

/// `--user USER[:GROUP]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserSpec {
    /// USER.
    pub user: Id,
    /// GROUP, if given.
    pub group: Option<Id>,
}

fn parse_id(text: &str, whole: &str) -> Result<Id, String> {
    let bad = || {
        format!("'{whole}' is not USER[:GROUP] (a name in the root's /etc/passwd and /etc/group, or a numeric id)")
    };
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u32>()
            .ok()
            .filter(|n| *n != u32::MAX)
            .map(Id::Num)
            .ok_or_else(bad);
    }
    let mut bytes = text.bytes();
    let first = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    let rest = bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !first || !rest || text.len() > 32 {
        return Err(bad());
    }
    Ok(Id::Name(text.to_owned()))
}

impl FromStr for UserSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (user, group) = match text.split_once(':') {
            Some((user, group)) => (user, Some(group)),
            None => (text, None),
        };
        Ok(UserSpec {
            user: parse_id(user, text)?,
            group: group.map(|g| parse_id(g, text)).transpose()?,
        })
    }
}

impl UserSpec {
    /// The uid when it is given as a number (known before the root's files are read).
    pub fn numeric_uid(&self) -> Option<u32> {
        match self.user {
            Id::Num(uid) => Some(uid),
            Id::Name(_) => None,
        }
    }
}

/// What `--user` resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The uid and the gid.
    pub user: User,
    /// The supplementary groups.
    pub groups: Vec<u32>,
    /// HOME (`/` without an entry).
    pub home: String,
    /// The user's name, if it has an entry.
    pub name: Option<String>,
}

/// Reads one of the root's account files as untrusted text ("" if it is missing or odd).
fn read_account_file(path: &str) -> String {
    let Ok(file) = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
    else {
        return String::new();
    };
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return String::new();
    }
    let mut bytes = Vec::new();
    let _ = file.take(4 << 20).read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Resolves `spec` in the current root's /etc/passwd and /etc/group.
pub fn resolve(spec: &UserSpec) -> Result<Resolved, String> {
    resolve_in(spec, &read_account_file(PASSWD), &read_account_file(GROUP))
}

const PASSWD: &str = "/etc/passwd";
const GROUP: &str = "/etc/group";

/// Field `n` of the first well-formed line (at least `fields` fields) whose field `key` is
/// `value`.
fn lookup(text: &str, fields: usize, key: usize, value: &str, n: usize) -> Option<String> {
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= fields)
        .find(|f| f[key] == value)
        .map(|f| f[n].to_owned())
}

/// A uid given as a number or a user name of the current root's /etc/passwd.
pub fn uid_of(text: &str) -> Result<u32, String> {
    id_of(text, PASSWD, 7, "user")
}

/// A gid given as a number or a group name of the current root's /etc/group.
pub fn gid_of(text: &str) -> Result<u32, String> {
    id_of(text, GROUP, 4, "group")
}

fn id_of(text: &str, file: &str, fields: usize, what: &str) -> Result<u32, String> {
    if let Ok(id) = text.parse::<u32>() {
        return Ok(id);
    }
    if !matches!(parse_id(text, text), Ok(Id::Name(_))) {
        return Err(format!("'{text}' is not a {what} name or a numeric id"));
    }
    lookup(&read_account_file(file), fields, 0, text, 2)
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| format!("unable to find {what} {text}: no matching entry in {file}"))
}

/// The user name of `uid` in the current root's /etc/passwd, if it has one.
pub fn name_of_uid(uid: u32) -> Option<String> {
    lookup(&read_account_file(PASSWD), 7, 2, &uid.to_string(), 0)
}

/// Resolves `spec` in the text of a passwd and a group file.
pub fn resolve_in(spec: &UserSpec, passwd: &str, group: &str) -> Result<Resolved, String> {
    // name:password:uid:gid:gecos:home:shell
    let accounts: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7 && f[2].parse::<u32>().is_ok() && f[3].parse::<u32>().is_ok())
        .collect();
    // name:password:gid:members
    let groups: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4 && f[2].parse::<u32>().is_ok())
        .collect();
    let entry = match &spec.user {
        Id::Name(name) => Some(accounts.iter().find(|f| f[0] == name).ok_or_else(|| {
            format!("unable to find user {name}: no matching entry in the root's /etc/passwd")
        })?),
        Id::Num(uid) => accounts.iter().find(|f| f[2] == uid.to_string()),
    };
    let uid = match (&spec.user, entry) {
        (Id::Num(uid), _) => *uid,
        (_, Some(f)) => f[2].parse().unwrap_or(u32::MAX),
        (Id::Name(_), None) => u32::MAX,
    };
    let gid = match &spec.group {
        Some(Id::Num(gid)) => *gid,
        Some(Id::Name(name)) => groups
            .iter()
            .find(|f| f[0] == name)
            .and_then(|f| f[2].parse().ok())
            .ok_or_else(|| {
                format!("unable to find group {name}: no matching entry in the root's /etc/group")
            })?,
        // As before names: a bare uid without an entry keeps gid = uid.
        None => entry.and_then(|f| f[3].parse().ok()).unwrap_or(uid),
    };
    let name = entry.map(|f| f[0].to_owned());
    let mut supplementary = Vec::new();
    if let Some(name) = &name {
        for f in &groups {
            if f[3].split(',').any(|m| m == name) {
                if let Ok(g) = f[2].parse::<u32>() {
                    if g != gid && !supplementary.contains(&g) {
                        supplementary.push(g);
                    }
                }
            }
        }
    }
    let home = entry
        .map(|f| f[5])
        .filter(|h| h.starts_with('/'))
        .unwrap_or("/")
        .to_owned();
    Ok(Resolved {
        user: User { uid, gid },
        groups: supplementary,
        home,
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nbroken line\nwww-data:x:33:33:www:/var/www:/usr/sbin/nologin\nalice:x:1000:1000::/home/alice:/bin/sh\n";
    const GROUP: &str =
        "root:x:0:\nwww-data:x:33:\nusers:x:100:alice,bob\nwheel:x:10:alice\nalice:x:1000:\n";

    fn spec(s: &str) -> UserSpec {
        s.parse().unwrap()
    }

    #[test]
    fn user_specs_parse() {
        assert_eq!(spec("1000").user, Id::Num(1000));
        assert_eq!(spec("alice:wheel").group, Some(Id::Name("wheel".into())));
        assert_eq!(spec("33:33").group, Some(Id::Num(33)));
        for bad in [
            "",
            ":",
            "a b",
            "-x",
            "1000:",
            "4294967295",
            "1:2:3",
            "x;y",
            "é",
        ] {
            assert!(bad.parse::<UserSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn names_resolve_like_docker() {
        let r = resolve_in(&spec("alice"), PASSWD, GROUP).unwrap();
        assert_eq!(
            r.user,
            User {
                uid: 1000,
                gid: 1000
            }
        );
        assert_eq!(r.groups, vec![100, 10]);
        assert_eq!(r.home, "/home/alice");
        assert_eq!(r.name.as_deref(), Some("alice"));
        let r = resolve_in(&spec("33"), PASSWD, GROUP).unwrap();
        assert_eq!((r.user.gid, r.home.as_str()), (33, "/var/www"));
        let r = resolve_in(&spec("alice:users"), PASSWD, GROUP).unwrap();
        assert_eq!((r.user.gid, r.groups.clone()), (100, vec![10]));
        // A bare id without an entry: HOME /, no name, gid = uid.
        let r = resolve_in(&spec("4242"), PASSWD, GROUP).unwrap();
        assert_eq!((r.user.gid, r.home.as_str(), r.name), (4242, "/", None));
        assert!(resolve_in(&spec("mallory"), PASSWD, GROUP).is_err());
        assert!(resolve_in(&spec("alice:nogroup"), PASSWD, GROUP).is_err());
    }
}
