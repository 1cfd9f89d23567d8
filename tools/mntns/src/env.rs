//! COMMAND's environment: Docker's `-e/--env KEY=VALUE` (`-e KEY` passes the caller's value,
//! or nothing when it has none) and `--env-file FILE`, bubblewrap's `--clearenv`, and what
//! `--user` implies (HOME, USER, LOGNAME from the root's /etc/passwd, unless given).
//!
//! Order, as Docker: the starting environment (the caller's, or none with `--clearenv`), then
//! the env files in order, then `-e` in order; the user's HOME/USER/LOGNAME only where
//! nothing set them; PATH Docker's default when none is left.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Docker's default PATH (moby's `oci/defaults.go`).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One `-e` value: KEY=VALUE, or KEY alone (the caller's value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvSpec {
    pub key: String,
    pub value: Option<OsString>,
}

fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("an empty variable name".into());
    }
    if key.chars().any(char::is_whitespace) {
        return Err(format!("the variable name '{key}' contains whitespace"));
    }
    Ok(())
}

/// Parses `KEY=VALUE` or `KEY`.
pub fn parse_env(text: &str) -> Result<EnvSpec, String> {
    let (key, value) = match text.split_once('=') {
        Some((key, value)) => (key, Some(OsString::from(value))),
        None => (text, None),
    };
    check_key(key).map_err(|e| format!("invalid environment variable '{text}': {e}"))?;
    Ok(EnvSpec {
        key: key.to_owned(),
        value,
    })
}

/// Reads an env file (Docker's format: `KEY=VALUE` or `KEY` per line, `#` comments and blank
/// lines skipped, the value taken as written).
pub fn read_env_file(path: &Path) -> Result<Vec<EnvSpec>, String> {
    let text = std::fs::read(path)
        .map_err(|e| format!("unable to read the env file {}: {e}", path.display()))?;
    let text = String::from_utf8(text)
        .map_err(|_| format!("invalid env file {}: not UTF-8 text", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let spec = parse_env(line)
            .map_err(|e| format!("invalid env file {} line {}: {e}", path.display(), n + 1))?;
        out.push(spec);
    }
    Ok(out)
}

/// The environment flags, checked.
#[derive(Clone, Debug, Default)]
pub struct EnvPlan {
    pub clear: bool,
    /// Env files first, then `-e`, with `KEY` alone already given the caller's value (or
    /// dropped when the caller has none).
    pub set: Vec<(String, OsString)>,
}

impl EnvPlan {
    pub fn new(clear: bool, files: &[PathBuf], flags: &[EnvSpec]) -> Result<EnvPlan, String> {
        let mut specs = Vec::new();
        for file in files {
            specs.extend(read_env_file(file)?);
        }
        specs.extend(flags.iter().cloned());
        let set = specs
            .into_iter()
            .filter_map(|spec| {
                let value = spec.value.or_else(|| std::env::var_os(&spec.key))?;
                Some((spec.key, value))
            })
            .collect();
        Ok(EnvPlan { clear, set })
    }

    fn sets(&self, key: &str) -> bool {
        self.set.iter().any(|(k, _)| k == key)
    }

    /// Applies the plan to this process's environment (right before the exec); `user` is
    /// what `--user` resolved to.
    pub fn apply(&self, user: Option<&crate::passwd::Resolved>) {
        if self.clear {
            // The chain's descriptors are closed first, as at any exec of COMMAND.
            common::handdown::shed_for_payload();
            for (key, _) in std::env::vars_os() {
                std::env::remove_var(key);
            }
        }
        for (key, value) in &self.set {
            std::env::set_var(key, value);
        }
        if let Some(user) = user {
            if !self.sets("HOME") {
                std::env::set_var("HOME", &user.home);
            }
            if let Some(name) = &user.name {
                for key in ["USER", "LOGNAME"] {
                    if !self.sets(key) {
                        std::env::set_var(key, name);
                    }
                }
            }
        }
        if std::env::var_os("PATH").is_none() {
            std::env::set_var("PATH", DEFAULT_PATH);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_values_parse() {
        let e = parse_env("A=b=c").unwrap();
        assert_eq!((e.key.as_str(), e.value), ("A", Some("b=c".into())));
        assert_eq!(parse_env("A").unwrap().value, None);
        assert_eq!(parse_env("A=").unwrap().value, Some("".into()));
        for bad in ["", "=x", "A B=c", " A=b", "\tA"] {
            assert!(parse_env(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn env_files_read_like_docker() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("env");
        std::fs::write(
            &file,
            "# comment\n\nA=1\n  B=\"quoted\" kept\nNSCHAIN_TEST_UNSET_VAR\n",
        )
        .unwrap();
        let specs = read_env_file(&file).unwrap();
        assert_eq!(specs.len(), 3);
        assert_eq!(specs[1].value, Some("\"quoted\" kept".into()));
        let plan = EnvPlan::new(false, &[file], &[parse_env("A=2").unwrap()]).unwrap();
        // The unset KEY is dropped; -e comes after the file.
        assert_eq!(
            plan.set,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "\"quoted\" kept".into()),
                ("A".into(), "2".into())
            ]
        );
        std::fs::write(dir.path().join("bad"), "OK=1\nA B=2\n").unwrap();
        let err = read_env_file(&dir.path().join("bad")).unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        assert!(read_env_file(&dir.path().join("missing")).is_err());
    }
}
