//! The order matrix (DESIGN.md §2, issue 19 item 16): every ordered pair of links, as root and
//! as an unprivileged user, with and without a root change first, either works or fails with
//! 125 (127 when the next link is missing from a new root) and one hint that names the rule.

mod escape_common;

use std::process::Output;

use escape_common::{busybox_root, need_rootless};
use nschain_tests::*;

const LINKS: [&str; 8] = [
    "userns", "netns", "ipcns", "utsns", "cgroupns", "timens", "pidns", "mntns",
];

/// What a pair may do: work, or fail the contract's way with one hint that names the rule it
/// broke (`rule`, when the pair can only break that one).
fn judge(pair: &str, out: &Output, rule: Option<u8>, root_change: bool) -> Result<(), String> {
    let err = stderr(out);
    let code = out.status.code();
    if code == Some(0) {
        return Ok(());
    }
    let fatal: Vec<&str> = err.lines().filter(|l| l.contains(": fatal: ")).collect();
    let hints: Vec<&str> = err.lines().filter(|l| l.contains(": hint: ")).collect();
    let wanted = match rule {
        Some(n) => format!("(DESIGN.md §2, rule {n})"),
        None => "(DESIGN.md §2, rule ".to_owned(),
    };
    let names_rule = hints.iter().any(|h| h.contains(&wanted));
    let status_ok = code == Some(125) || (root_change && code == Some(127));
    let shape = status_ok && fatal.len() == 1 && hints.len() == 1;
    if shape && names_rule {
        return Ok(());
    }
    Err(format!("{pair}: status {code:?}\n{err}"))
}

fn pairs(first_variants: &[(&str, Vec<String>)]) -> Vec<(String, Vec<String>, bool)> {
    let mut all = Vec::new();
    for (label, first) in first_variants {
        let root_change = first.len() > 1;
        for second in LINKS {
            if first[0] == second && first.len() == 1 {
                continue;
            }
            let mut argv = first.clone();
            argv.extend([
                "--".to_owned(),
                second.to_owned(),
                "--".to_owned(),
                "true".to_owned(),
            ]);
            all.push((format!("{label} -- {second}"), argv, root_change));
        }
    }
    all
}

fn matrix(nobody: bool) {
    let dir = scratch();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let root = busybox_root(dir.path()).display().to_string();
    let mut firsts: Vec<(&str, Vec<String>)> =
        LINKS.iter().map(|l| (*l, vec![(*l).to_owned()])).collect();
    let rootfs = ["mntns", "--rootfs", &root].map(str::to_owned).to_vec();
    let overlay = ["mntns", "--overlay", "/", "--rm"]
        .map(str::to_owned)
        .to_vec();
    firsts.push(("mntns --rootfs BUSYBOX", rootfs));
    firsts.push(("mntns --overlay / --rm", overlay));
    let mut failures = Vec::new();
    let mut ran = 0;
    for (pair, argv, root_change) in pairs(&firsts) {
        let mut cmd = if nobody {
            as_user(NOBODY, bin(&argv[0]))
        } else {
            std::process::Command::new(bin(&argv[0]))
        };
        cmd.args(&argv[1..]);
        with_env(&mut cmd, &state);
        cmd.current_dir(dir.path());
        let out = run(&mut cmd);
        ran += 1;
        // Rootless, a first link other than userns breaks rule 1; after a new root, rule 6.
        let rule = if nobody && argv[0] != "userns" {
            Some(1)
        } else if root_change {
            Some(6)
        } else {
            None
        };
        if let Err(e) = judge(&pair, &out, rule, root_change) {
            failures.push(e);
        }
    }
    assert_eq!(ran, LINKS.len() * (LINKS.len() - 1) + 2 * LINKS.len());
    assert!(
        failures.is_empty(),
        "{} of {ran} pairs {}:\n\n{}",
        failures.len(),
        if nobody { "as uid 65534" } else { "as root" },
        failures.join("\n")
    );
}

#[test]
fn every_ordered_pair_works_or_names_the_rule_as_root() {
    if !require(is_root(), "root") || !escape_common::have_busybox() {
        return;
    }
    matrix(false);
}

#[test]
fn every_ordered_pair_works_or_names_the_rule_as_an_unprivileged_user() {
    if !require(is_root(), "root (to become uid 65534)")
        || !need_rootless()
        || !escape_common::have_busybox()
    {
        return;
    }
    matrix(true);
}
