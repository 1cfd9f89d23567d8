//! Chain names (issue 19): unnamed chains are listed under a generated name (item 14), and a
//! named `--map-auto` chain finds its kept layer again (item 9). Runs inside a throwaway
//! network, mount and pid namespace that plays the host.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

use nschain_tests::*;

/// Runs `script` as root in a throwaway "host" network, mount and pid namespace: nothing it
/// starts outlives it.
fn in_host(state: &Path, script: &str) -> Output {
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--net",
        "--mount",
        "--propagation",
        "private",
        "--pid",
        "--fork",
        "--mount-proc",
        "timeout",
        "90",
        "bash",
        "-c",
    ])
    .arg(format!(
        "set -eu\nip link set lo up\nwait_for() {{ for _ in $(seq 200); do if \"$@\" >/dev/null 2>&1; then return 0; fi; sleep 0.05; done; return 1; }}\n{script}"
    ));
    with_env(&mut cmd, state);
    run(&mut cmd)
}

fn section<'a>(out: &'a str, name: &str) -> &'a str {
    let start = out
        .find(&format!("=={name}==\n"))
        .unwrap_or_else(|| panic!("no section {name} in:\n{out}"))
        + name.len()
        + 5;
    let rest = &out[start..];
    rest.find("\n==").map_or(rest, |end| &rest[..end]).trim()
}

fn script_ok(state: &Path, script: &str) -> String {
    let out = in_host(state, script);
    ok_out(&out, "the script")
}

/// `<tool>-<6 lowercase hex digits>`.
fn is_generated(name: &str, tool: &str) -> bool {
    name.strip_prefix(&format!("{tool}-")).is_some_and(|s| {
        s.len() == 6
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The README's first example, as written (nginx included), without `--name`: `nsps` lists
/// it under a generated name, `nsps exec NAME` enters it, and it is gone once it ends.
#[test]
fn the_readmes_unnamed_nginx_example_is_listed_entered_and_forgotten() {
    require(is_root(), "root");
    require(have("nginx"), "nginx");
    let state = scratch();
    let out = script_ok(
        state.path(),
        r#"
netns --bridge --publish 8080:80 -- \
userns --map-auto --idmap / -- \
ipcns -- \
utsns --hostname web1 -- \
pidns -- \
mntns --overlay / -- nginx -g 'daemon off;' &
chain=$!
wait_for sh -c 'nsps | grep -q "nginx: master"'
name=$(ls "$NSCHAIN_RUN_DIR/chains")
echo "==name=="; echo "$name"
echo "==list=="; nsps
echo "==exec=="; nsps exec "$name" -- sh -c 'hostname; head -1 /proc/self/uid_map'
echo "==layer=="; ls "$NSCHAIN_DATA_DIR"/userns-*/overlay
kill -TERM $chain; wait $chain || true
echo "==after=="; nsps; ls "$NSCHAIN_RUN_DIR/chains"
"#,
    );
    let name = section(&out, "name");
    assert!(is_generated(name, "netns"), "generated name {name:?}");
    let list = section(&out, "list");
    let row = list
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("{name} not listed:\n{list}"));
    assert!(row.contains("nginx"), "{row}");
    assert!(row.contains("ipc,mnt,net,pid,user,uts"), "{row}");
    assert!(row.contains("8080:80/tcp"), "{row}");
    let exec: Vec<&str> = section(&out, "exec").lines().collect();
    assert_eq!(exec[0], "web1", "nsps exec did not enter the uts namespace");
    let map: Vec<&str> = exec[1].split_whitespace().collect();
    assert_eq!(map[0], "0");
    assert_ne!(map[1], "0", "nsps exec did not enter the user namespace");
    // The layer keeps its random id: a generated name is not the layer's.
    let layer = section(&out, "layer");
    assert!(
        layer.len() == 12 && layer != name,
        "layer {layer:?} of chain {name}"
    );
    assert_eq!(section(&out, "after").lines().count(), 1, "{out}");
}

/// Only a link that makes a namespace names the chain: a `--join` alone registers nothing,
/// and a joining link registers under the chain it joins. Names of ended chains without a
/// pidns (nothing survives them to unregister) are pruned by the next unnamed chain.
#[test]
fn joins_make_no_name_and_ended_names_are_pruned() {
    require(is_root(), "root");
    let state = scratch();
    let out = script_ok(
        state.path(),
        r#"
utsns --hostname box -- ipcns -- sleep 1000 &
chain=$!
wait_for sh -c 'nsps | grep -q sleep'
name=$(ls "$NSCHAIN_RUN_DIR/chains")
echo "==name=="; echo "$name"
echo "==joined=="; utsns --join "$name" -- hostname; ipcns --join $chain -- true
ls "$NSCHAIN_RUN_DIR/chains"
echo "==records=="; ls "$NSCHAIN_RUN_DIR/chains/$name"
kill $chain; wait $chain || true
echo "==ended=="; utsns -- true; ls "$NSCHAIN_RUN_DIR/chains" | wc -l
ipcns -- true; ls "$NSCHAIN_RUN_DIR/chains" | wc -l
echo "==nsps=="; nsps; ls "$NSCHAIN_RUN_DIR/chains" | wc -l
"#,
    );
    let name = section(&out, "name");
    assert!(is_generated(name, "utsns"), "generated name {name:?}");
    assert_eq!(section(&out, "joined"), format!("box\n{name}"));
    assert_eq!(
        section(&out, "records"),
        "chain.json\nipc.json\nuts.json",
        "a join replaced or added a record"
    );
    // Each ended one is pruned by the next: never more than the last one's stays.
    assert_eq!(section(&out, "ended"), "1\n1", "{out}");
    assert_eq!(section(&out, "nsps").lines().last(), Some("0"), "{out}");
}

/// `--name` at a later link names the whole chain: the links before it, which registered
/// under a generated name, move to it. A generated name is exported as such: the
/// payload sees the chosen name only.
#[test]
fn a_name_given_at_a_later_link_replaces_the_generated_one() {
    require(is_root(), "root");
    let state = scratch();
    let out = script_ok(
        state.path(),
        r#"
netns -- utsns --name web -- ipcns -- sleep 1000 &
chain=$!
wait_for nsps exec web -- true
echo "==chains=="; ls "$NSCHAIN_RUN_DIR/chains"
echo "==list=="; nsps
echo "==records=="; ls "$NSCHAIN_RUN_DIR/chains/web"
echo "==clash=="; utsns --name web -- true 2>&1 && echo "no clash" || echo "status $?"
kill $chain; wait $chain || true
"#,
    );
    assert_eq!(section(&out, "chains"), "web", "{out}");
    assert!(
        section(&out, "list").contains("ipc,net,uts"),
        "{}",
        section(&out, "list")
    );
    assert_eq!(
        section(&out, "records"),
        "chain.json\nipc.json\nnet.json\nuts.json"
    );
    let clash = section(&out, "clash");
    assert!(
        clash.contains("the name web is in use") && clash.ends_with("status 125"),
        "{clash}"
    );
}
