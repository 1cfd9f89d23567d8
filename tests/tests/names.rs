//! Chain names (issue 19): unnamed chains are listed under a generated name (item 14), and a
//! named `--map-auto` chain finds its kept layer again (item 9). Runs inside a throwaway
//! network, mount and pid namespace that plays the host.

use std::path::Path;
use std::process::Output;

use nschain_tests::*;

/// Runs `script` as root in a throwaway "host" network, mount and pid namespace: nothing it
/// starts outlives it.
fn in_host(state: &Path, script: &str) -> Output {
    in_throwaway_host(state, 90, script)
}

fn script_ok(state: &Path, script: &str) -> String {
    let out = in_host(state, script);
    ok_out(&out, "the script")
}

/// `<tool>-<6 lowercase hex digits>`.
/// A registration's listing as the kinds it records, sorted: `links-PID-uts-ipc.json` (links
/// that ran in one process register once) counts as `ipc.json` and `uts.json`.
fn recorded_kinds(listing: &str) -> String {
    let mut files: Vec<String> = Vec::new();
    for file in listing.lines() {
        match file
            .strip_prefix("links-")
            .and_then(|f| f.strip_suffix(".json"))
        {
            Some(batch) => files.extend(batch.split('-').skip(1).map(|k| format!("{k}.json"))),
            None => files.push(file.to_owned()),
        }
    }
    files.sort();
    files.join("\n")
}

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
NSCHAIN_DEBUG=1 utsns --hostname box -- ipcns -- sleep 1000 2>"${NSCHAIN_RUN_DIR%/run}/uts.log" &
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
echo "==recycled=="; netns -- sh -c 'ls "$NSCHAIN_RUN_DIR"/chains/*/; nsps | tail -n +2 | wc -l'
echo "==nsps=="; nsps; ls "$NSCHAIN_RUN_DIR/chains" | wc -l
echo "==log=="; grep 'not registered' "${NSCHAIN_RUN_DIR%/run}/uts.log" || true
"#,
    );
    let name = section(&out, "name");
    assert!(is_generated(name, "utsns"), "generated name {name:?}");
    assert_eq!(section(&out, "joined"), format!("box\n{name}"));
    assert_eq!(
        recorded_kinds(section(&out, "records")),
        "chain.json\nipc.json\nuts.json",
        "a join replaced or added a record"
    );
    // Each ended one is pruned by the next: never more than the last one's stays.
    assert_eq!(section(&out, "ended"), "1\n1", "{out}");
    // The next unnamed chain takes over an ended one's registration (no inode made or freed):
    // it holds only the new chain's records, and nsps lists that chain alone.
    assert_eq!(
        section(&out, "recycled"),
        "chain.json\nnet.json\n1",
        "{out}"
    );
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
        recorded_kinds(section(&out, "records")),
        "chain.json\nipc.json\nnet.json\nuts.json"
    );
    let clash = section(&out, "clash");
    assert!(
        clash.contains("the name web is in use") && clash.ends_with("status 125"),
        "{clash}"
    );
}

/// Item 9: a named `--map-auto` chain with a kept layer gets its range back. Chain A (`web`)
/// writes a file in its layer and ends; chain B, unnamed, then holds a range; A again sees
/// its file (before the fix B took A's range, the lowest free, and A started empty in
/// another). A chain of another name avoids the range too.
#[test]
fn a_named_map_auto_chain_finds_its_kept_layer_while_another_chain_runs() {
    require(is_root(), "root");
    let state = scratch();
    let out = script_ok(
        state.path(),
        r#"
web() { userns --map-auto --name web --idmap / -- mntns --overlay / -- sh -c "$1"; }
echo "==first=="; web 'echo kept > /root/kept-by-web; head -1 /proc/self/uid_map'
userns --map-auto -- sleep 1000 & b=$!
wait_for grep -qv ' 0 *0 ' /proc/$b/uid_map
echo "==b=="; head -1 /proc/$b/uid_map
echo "==other=="; userns --map-auto --name other -- head -1 /proc/self/uid_map
echo "==again=="; web 'cat /root/kept-by-web; head -1 /proc/self/uid_map'
kill $b
"#,
    );
    let range = |text: &str| -> String {
        text.lines()
            .last()
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_owned()
    };
    let first = range(section(&out, "first"));
    assert_ne!(range(section(&out, "b")), first, "B took web's range");
    assert_ne!(
        range(section(&out, "other")),
        first,
        "other took web's range"
    );
    let again = section(&out, "again");
    assert_eq!(
        again.lines().next(),
        Some("kept"),
        "web lost its file: {out}"
    );
    assert_eq!(range(again), first);
}

/// Item 9: when the range keeping a chain's layer is held by another chain (a layer left
/// before the fix, or no other range was free), the chain is refused (125), naming the
/// chain that holds it, rather than started from an empty layer.
#[test]
fn a_kept_layer_in_a_held_range_is_refused_naming_the_holder() {
    require(is_root(), "root");
    let state = scratch();
    let out = script_ok(
        state.path(),
        r#"
userns --map-auto -- sleep 1000 & b=$!
wait_for grep -qv ' 0 *0 ' /proc/$b/uid_map
wait_for sh -c 'nsps | grep -q sleep'
echo "==b=="; ls "$NSCHAIN_RUN_DIR/chains"
# The layer web kept in this range before B took it.
mkdir -p "$NSCHAIN_DATA_DIR/userns-$(awk '{print $2}' /proc/$b/uid_map)/overlay/web/diff"
echo "==web=="; userns --map-auto --name web -- mntns --overlay / -- true 2>&1 && echo "started" || echo "status $?"
kill $b
"#,
    );
    let holder = section(&out, "b");
    let web = section(&out, "web");
    let lines: Vec<&str> = web.lines().collect();
    assert_eq!(lines.len(), 3, "{web}");
    assert!(
        lines[0]
            .starts_with("userns: fatal: the layer of chain web is kept in the range of host uid")
            && lines[0].contains(&format!("which chain {holder} (pid")),
        "{web}"
    );
    assert!(lines[1].starts_with("userns: hint: "), "{web}");
    assert_eq!(lines[2], "status 125");
}
