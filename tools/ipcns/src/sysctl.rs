//! The sysctls that belong to an IPC namespace, parsed and applied after the unshare.

use common::Fatal;

/// The per-IPC-namespace sysctls: every other key is refused, since writing it would change
/// the host, not the container.
const KEYS: [&str; 13] = [
    "kernel.shmmax",
    "kernel.shmall",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "fs.mqueue.queues_max",
    "fs.mqueue.msg_max",
    "fs.mqueue.msgsize_max",
    "fs.mqueue.msg_default",
    "fs.mqueue.msgsize_default",
];

/// One `KEY=VALUE` setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpcSysctl {
    pub key: String,
    pub value: String,
}

impl IpcSysctl {
    /// Parses `KEY=VALUE`: KEY one of the IPC sysctls (dots or slashes), VALUE unsigned
    /// integers (four, space-separated, for kernel.sem).
    pub fn parse(text: &str) -> Result<IpcSysctl, String> {
        let (key, value) = text
            .split_once('=')
            .ok_or_else(|| format!("'{text}' is not KEY=VALUE"))?;
        let key = key.trim().replace('/', ".");
        if !KEYS.contains(&key.as_str()) {
            return Err(format!(
                "'{key}' is not an IPC namespace sysctl (one of {})",
                KEYS.join(", ")
            ));
        }
        let numbers: Vec<&str> = value.split_whitespace().collect();
        let wanted = if key == "kernel.sem" { 4 } else { 1 };
        let numeric = numbers.iter().all(|n| n.parse::<u64>().is_ok());
        if numbers.len() != wanted || !numeric {
            return Err(format!(
                "{key}={value}: expected {wanted} unsigned integer{}",
                if wanted > 1 { "s" } else { "" }
            ));
        }
        Ok(IpcSysctl {
            key,
            value: numbers.join(" "),
        })
    }

    /// Writes the value under /proc/sys (the new namespace's view of it).
    pub fn apply(&self) -> Result<(), Fatal> {
        common::sysctl::write(&self.key, &self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipc_sysctls_are_parsed() {
        assert_eq!(
            IpcSysctl::parse("kernel.shmmax=1024"),
            Ok(IpcSysctl {
                key: "kernel.shmmax".into(),
                value: "1024".into()
            })
        );
        assert_eq!(
            IpcSysctl::parse("kernel/sem=250  32000 32 128").map(|s| s.value),
            Ok("250 32000 32 128".into())
        );
        for bad in [
            "kernel.shmmax",
            "kernel.shmmax=",
            "kernel.shmmax=-1",
            "kernel.shmmax=1x",
            "kernel.hostname=x",
            "net.ipv4.ip_forward=1",
            "kernel.sem=1 2 3",
            "=1",
        ] {
            assert!(IpcSysctl::parse(bad).is_err(), "{bad}");
        }
    }
}
