//! `/etc/subuid` and `/etc/subgid`: the host ids delegated to each user (`NAME:START:COUNT` or
//! `UID:START:COUNT` per line, see subuid(5)). `newuidmap` enforces them; `userns` reads them
//! too, to refuse a bad range with a message that says what to change, and to pick
//! `--map-auto` ranges.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::idmap::Range;

pub const SUBUID: &str = "/etc/subuid";
pub const SUBGID: &str = "/etc/subgid";

/// The first id `useradd` delegates (`SUB_UID_MIN` in login.defs).
const SUGGESTED_MIN: u64 = 100_000;

/// A size that fits `--map-auto` (inner 0..65535).
pub const BLOCK: u32 = 65_536;

/// One line of a subordinate id file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub owner: String,
    pub start: u32,
    pub count: u32,
}

impl Entry {
    pub fn end(&self) -> u64 {
        u64::from(self.start) + u64::from(self.count)
    }

    /// Whether the host ids `first..first+count` are all inside this entry.
    pub fn covers(&self, first: u32, count: u32) -> bool {
        first >= self.start && u64::from(first) + u64::from(count) <= self.end()
    }
}

/// A parsed subordinate id file.
#[derive(Clone, Debug)]
pub struct SubIds {
    pub path: PathBuf,
    pub entries: Vec<Entry>,
}

/// The user whose delegations apply: its name (if known) and uid.
#[derive(Clone, Debug)]
pub struct User {
    pub name: Option<String>,
    pub uid: u32,
}

impl User {
    /// The user of this process's real uid (what `newuidmap` checks).
    pub fn current() -> User {
        let uid = nix::unistd::getuid();
        // From /etc/passwd as a file: the binaries are static, without NSS.
        let name = common::accounts::name_of_uid(uid.as_raw());
        User {
            name,
            uid: uid.as_raw(),
        }
    }

    /// How the user appears in messages and in a suggested line.
    pub fn shown(&self) -> String {
        match &self.name {
            Some(name) => name.clone(),
            None => self.uid.to_string(),
        }
    }

    fn owns(&self, entry: &Entry) -> bool {
        self.name.as_deref() == Some(entry.owner.as_str()) || entry.owner == self.uid.to_string()
    }
}

impl SubIds {
    /// Reads a file; a missing file has no entries.
    pub fn read(path: &Path) -> anyhow::Result<SubIds> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("unable to read {}", path.display())),
        };
        Ok(SubIds::parse(path, &text))
    }

    /// Parses the text of a file; malformed lines are skipped, as shadow's tools do.
    pub fn parse(path: &Path, text: &str) -> SubIds {
        let entries = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|line| {
                let mut fields = line.trim().split(':');
                let owner = fields.next()?.to_owned();
                let start = fields.next()?.parse::<u32>().ok()?;
                let count = fields.next()?.parse::<u32>().ok()?;
                (fields.next().is_none() && !owner.is_empty() && count > 0).then_some(Entry {
                    owner,
                    start,
                    count,
                })
            })
            .collect();
        SubIds {
            path: path.to_owned(),
            entries,
        }
    }

    /// The entries delegated to `user`.
    pub fn of(&self, user: &User) -> Vec<&Entry> {
        self.entries.iter().filter(|e| user.owns(e)).collect()
    }

    /// The line to add for `user`: 65536 ids past every entry in the file (at least 100000).
    pub fn suggested_line(&self, user: &User) -> String {
        let end = self.entries.iter().map(Entry::end).max();
        let start = match end {
            None => SUGGESTED_MIN,
            Some(end) => (end.div_ceil(u64::from(BLOCK)) * u64::from(BLOCK)).max(SUGGESTED_MIN),
        };
        format!("{}:{start}:{BLOCK}", user.shown())
    }

    /// Checks that every OUTER range is delegated to `user` (their own id, as a single id,
    /// is always allowed: `newuidmap` allows it too).
    pub fn check(
        &self,
        user: &User,
        own_id: u32,
        ranges: &[Range],
        option: &str,
    ) -> Result<(), common::Fatal> {
        let mine = self.of(user);
        let file = self.path.display();
        for range in ranges {
            if range.count == 1 && range.outer == own_id {
                continue;
            }
            if mine.is_empty() {
                return Err(common::Fatal::new(format!(
                    "{option} {range}: no ids are delegated to user {} in {file}",
                    user.shown()
                ))
                .with_hint(format!(
                    "as root, add this line to {file}: {}",
                    self.suggested_line(user)
                )));
            }
            if !mine.iter().any(|e| e.covers(range.outer, range.count)) {
                let have: Vec<String> = mine
                    .iter()
                    .map(|e| format!("{}..{}", e.start, e.end() - 1))
                    .collect();
                return Err(common::Fatal::new(format!(
                    "{option} {range}: host ids {}..{} are not within the ids delegated to user {} in {file} ({})",
                    range.outer,
                    range.outer_last(),
                    user.shown(),
                    have.join(", ")
                ))
                .with_hint(format!(
                    "choose OUTER ids inside one {file} entry of {}, or extend the entry",
                    user.shown()
                )));
            }
        }
        Ok(())
    }

    /// The user's entries cut into blocks of 65536 ids, in file order.
    pub fn blocks(&self, user: &User) -> Vec<u32> {
        let mut blocks = Vec::new();
        for entry in self.of(user) {
            let mut start = u64::from(entry.start);
            while start + u64::from(BLOCK) <= entry.end() {
                if let Ok(s) = u32::try_from(start) {
                    blocks.push(s);
                }
                start += u64::from(BLOCK);
            }
        }
        blocks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        User {
            name: Some("alice".into()),
            uid: 1000,
        }
    }

    const FILE: &str = "# comment\nalice:100000:65536\n1000:300000:131072\nbob:165536:65536\nbad line\ncarol:x:1\n";

    #[test]
    fn entries_by_name_or_uid() {
        let ids = SubIds::parse(Path::new("/etc/subuid"), FILE);
        assert_eq!(ids.entries.len(), 3);
        let mine = ids.of(&user());
        assert_eq!(mine.len(), 2);
        assert_eq!(ids.blocks(&user()), vec![100000, 300000, 365536]);
        assert_eq!(ids.suggested_line(&user()), "alice:458752:65536");
        let empty = SubIds::parse(Path::new("/etc/subuid"), "");
        assert_eq!(empty.suggested_line(&user()), "alice:100000:65536");
        let nameless = User { name: None, uid: 7 };
        assert_eq!(empty.suggested_line(&nameless), "7:100000:65536");
    }

    #[test]
    fn ranges_must_lie_in_one_entry() {
        let ids = SubIds::parse(Path::new("/etc/subuid"), FILE);
        let r = |s: &str| s.parse::<Range>().unwrap();
        assert!(ids
            .check(&user(), 1000, &[r("0:100000:65536")], "--map-users")
            .is_ok());
        assert!(ids
            .check(
                &user(),
                1000,
                &[r("0:1000:1"), r("1:300000:131072")],
                "--map-users"
            )
            .is_ok());
        let err = ids
            .check(&user(), 1000, &[r("0:100000:65537")], "--map-users")
            .unwrap_err();
        assert!(err.message().contains("not within"), "{}", err.message());
        let err = ids
            .check(&user(), 1000, &[r("0:165536:10")], "--map-users")
            .unwrap_err();
        assert!(
            err.message().contains("100000..165535"),
            "{}",
            err.message()
        );
        let none = User {
            name: Some("dave".into()),
            uid: 2000,
        };
        let err = ids
            .check(&none, 2000, &[r("0:100000:1")], "--map-users")
            .unwrap_err();
        assert!(err.message().contains("no ids are delegated"));
        assert_eq!(
            err.hint.as_deref(),
            Some("as root, add this line to /etc/subuid: dave:458752:65536")
        );
    }
}
