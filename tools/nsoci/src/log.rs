//! `--log FILE --log-format text|json`: errors also go to FILE, one line each (conmon reads
//! `msg` from the JSON form and shows it to the user).

use std::io::Write;
use std::path::PathBuf;

use serde_json::json;

#[derive(Debug)]
pub struct Log {
    path: Option<PathBuf>,
    json: bool,
}

impl Log {
    pub fn new(path: Option<PathBuf>, json: bool) -> Log {
        Log { path, json }
    }

    /// Appends an error line; a log that cannot be written loses the line, not the error.
    pub fn error(&self, msg: &str) {
        let Some(path) = &self.path else { return };
        let time = crate::state::now_rfc3339();
        let line = if self.json {
            json!({"level": "error", "msg": msg, "time": time}).to_string()
        } else {
            format!("time=\"{time}\" level=error msg={}", json!(msg))
        };
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}
