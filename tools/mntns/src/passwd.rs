//! `--user USER[:GROUP]`, resolved in the new root's own /etc/passwd and /etc/group by
//! common::accounts (after the root change: the container's files, never the host's).

pub use common::accounts::{resolve, Resolved, UserSpec};
