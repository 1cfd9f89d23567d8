//! This process as the mounted /proc numbers it.
//!
//! After `pidns`, a link runs in a new pid namespace while /proc is still the host's:
//! `getpid()` (2, say) then names another process — or none — in /proc, in the chain's
//! registrations and in leases that others judge by /proc. `/proc/self` is resolved by the
//! /proc mount itself, so it gives the pid every reader of that /proc sees.

/// Reads a /proc file whole. /proc reports no size, so `std::fs::read_to_string` asks the
/// size first (statx), then reads 32 bytes and doubles (eight calls for a 2 KiB status, and
/// each call of a seq file renders again from where the last stopped); this asks 16 KiB at
/// once, with plain `read` calls (`read_to_end` on a `File` would still ask statx and lseek
/// for a size hint): open, one read, the read that finds the end, close.
pub fn read(path: impl AsRef<std::path::Path>) -> std::io::Result<String> {
    let bytes = read_small(path)?;
    String::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Reads a small file whole, as [`read`] does, as bytes: a state record too (`chain.json`, a
/// registration, a status), where `std::fs::read` would first ask statx for a size hint.
/// Scans of every chain's registration (each start prunes the generated ones) pay that
/// once per file.
pub fn read_small(path: impl AsRef<std::path::Path>) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut bytes = vec![0u8; 16 * 1024];
    let mut len = 0;
    loop {
        if len == bytes.len() {
            bytes.resize(len * 2, 0);
        }
        match file.read(&mut bytes[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    bytes.truncate(len);
    Ok(bytes)
}

/// This process's pid in the pid namespace of the mounted /proc (the host's, before a link
/// mounts a new /proc); `getpid()` when /proc is missing.
pub fn own_pid() -> u32 {
    std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(std::process::id)
}

/// A capability set of this process from /proc/self/status (`CapEff`, `CapBnd`, ...).
pub fn capabilities(field: &str) -> Option<u64> {
    let status = read("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

/// `/proc/PID/stat`'s fields from the state on (field 3): the command before it may hold
/// spaces and parentheses, so they follow the last ')'.
fn stat_fields(pid: &str) -> Option<Vec<String>> {
    let stat = read(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// When process `pid` started, in clock ticks after boot (field 22 of /proc/PID/stat): with
/// the pid, it names one process for good (a reused pid has another start time).
pub fn start_time(pid: u32) -> Option<u64> {
    stat_fields(&pid.to_string())?.get(19)?.parse().ok()
}

/// This process's start time (see [`start_time`]), as the mounted /proc numbers it.
pub fn own_start_time() -> Option<u64> {
    stat_fields("self")?.get(19)?.parse().ok()
}

/// Whether process `pid` exists, is the one that started at `start` (when known) and has not
/// ended: a zombie (a process its parent has not reaped yet) has ended.
pub fn running(pid: u32, start: Option<u64>) -> bool {
    let Some(fields) = stat_fields(&pid.to_string()) else {
        return false;
    };
    let same = start.is_none_or(|s| fields.get(19).and_then(|f| f.parse().ok()) == Some(s));
    same && !matches!(fields.first().map(String::as_str), Some("Z" | "X"))
}

const CAP_SYS_ADMIN: u64 = 1 << 21;

/// Whether this process is root with its capabilities cut to a container's: CAP_SYS_ADMIN
/// gone from its bounding set. That is a link running after `mntns` made a new root (and
/// entered the container), whatever the chain before it had; the hint is "put mntns last",
/// not "run as root".
pub fn runs_with_container_capabilities() -> bool {
    nix::unistd::geteuid().is_root()
        && capabilities("CapBnd").is_some_and(|bounding| bounding & CAP_SYS_ADMIN == 0)
}

/// The hint for a link that lacks a privilege because of [`runs_with_container_capabilities`].
pub const PUT_MNTNS_LAST: &str = "this link runs with a container's capabilities: a link after mntns with a new root is inside the container, so put mntns last in the chain (DESIGN.md §2, rule 6)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_longer_than_the_first_buffer_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long");
        let text: String = (0..5000).map(|i| format!("{i:07}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        assert!(text.len() > 16 * 1024 * 2);
        assert_eq!(read(&path).unwrap(), text);
        let status = read("/proc/self/status").unwrap();
        assert!(status.starts_with("Name:") && status.contains("\nCapBnd:"));
    }

    #[test]
    fn outside_a_new_pid_namespace_it_is_getpid() {
        assert_eq!(own_pid(), std::process::id());
    }

    #[test]
    fn a_process_is_its_pid_and_start_time_until_it_is_reaped_or_a_zombie() {
        let pid = std::process::id();
        let start = own_start_time();
        assert!(start.is_some());
        assert_eq!(start_time(pid), start);
        assert!(running(pid, start));
        assert!(running(pid, None));
        assert!(!running(pid, start.map(|s| s + 1)));
        assert!(!running(u32::MAX, None));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let child_pid = child.id();
        let child_start = start_time(child_pid);
        // Unreaped, it stays a zombie: ended, though /proc still lists it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while running(child_pid, child_start) {
            assert!(std::time::Instant::now() < deadline, "true did not end");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(std::path::Path::new(&format!("/proc/{child_pid}")).exists());
        child.wait().unwrap();
    }

    #[test]
    fn capability_sets_are_read_from_status() {
        assert!(capabilities("CapBnd").is_some());
        assert!(capabilities("CapEff").is_some());
        assert_eq!(capabilities("NoSuchField"), None);
    }
}
