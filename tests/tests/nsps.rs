//! nsps and named chains end to end: list, inspect (the PID mapping checked against
//! /proc/PID/status), exec into a running container, name clashes, rm. Runs inside a throwaway
//! network and mount namespace that plays the host.

use std::path::Path;
use std::process::Output;

use nschain_tests::*;

/// Runs `script` as root in a throwaway "host" network, mount and pid namespace: nothing it
/// starts outlives it.
fn in_host(state: &Path, script: &str) -> Output {
    in_throwaway_host(state, 60, script)
}

#[test]
fn nsps_lists_inspects_enters_and_forgets_a_named_chain() {
    require(is_root(), "root");
    let state = scratch();
    let layer = state.path().join("data/overlay/web1");
    let out = in_host(
        state.path(),
        r#"
netns --bridge -p 18080:80 --name web1 -- ipcns -- utsns --hostname web1 -- pidns -- \
    mntns --overlay / -- sleep 1000 &
chain=$!
wait_for nsps exec web1 -- true
echo "==list=="; nsps
echo "==json=="; nsps --json
echo "==one=="; nsps web1
echo "==mapping=="
nsps web1 | awk '/^ +[0-9]+ -> / {print $1, $3}' | while read -r host inner; do
    nspid=$(awk '/^NSpid:/ {print $NF}' /proc/$host/status)
    echo "$host $inner $nspid"
done
echo "==hostname=="; nsps exec web1 -- hostname
echo "==ps=="; nsps exec web1 -- ps -e -o pid=,comm=
echo "==write=="; nsps exec web1 -- sh -c 'echo written-by-exec > /opt/nsps-exec'
cat "$NSCHAIN_DATA_DIR/overlay/web1/diff/opt/nsps-exec"
echo "==clash=="; utsns --name web1 -- true 2>&1 && echo "no clash" || echo "status $?"
kill -TERM $chain; wait $chain || true
echo "==after=="; nsps
echo "==again=="; utsns --name web1 -- hostname
echo "==rm=="; nsps rm web1 && echo removed
"#,
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));

    let list = section(&text, "list");
    let row = list
        .lines()
        .find(|l| l.starts_with("web1 "))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(row.contains("sleep 1000") && row.contains("18080"), "{row}");

    let json: Value = serde_json::from_str(section(&text, "json")).unwrap();
    let web1 = json
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "web1")
        .unwrap();
    assert_eq!(web1["hostname"], "web1");
    assert!(
        web1["addresses"][0].as_str().unwrap().starts_with("10."),
        "{web1}"
    );
    assert!(web1["ports"].to_string().contains("18080"), "{web1}");
    assert!(
        web1["layer"].as_str().unwrap().ends_with("overlay/web1"),
        "{web1}"
    );
    for ns in ["ipc", "mnt", "net", "pid", "uts"] {
        assert!(
            web1["namespaces"].to_string().contains(ns),
            "{ns} missing: {web1}"
        );
    }

    let mapping = section(&text, "mapping");
    assert!(
        mapping.lines().count() >= 2,
        "init and sleep at least: {mapping}"
    );
    for line in mapping.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            f[1], f[2],
            "nsps maps host pid {} to {}, /proc says {}",
            f[0], f[1], f[2]
        );
    }
    assert!(mapping
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("1")));

    assert_eq!(section(&text, "hostname"), "web1");
    let ps: Vec<&str> = section(&text, "ps").lines().map(str::trim).collect();
    assert!(ps.contains(&"1 pidns"), "{ps:?}");
    assert!(ps.contains(&"2 sleep"), "{ps:?}");
    assert!(ps.iter().any(|l| l.ends_with(" ps")), "{ps:?}");
    assert!(
        ps.iter()
            .all(|l| ["pidns", "sleep", "ps"]
                .contains(&l.split_whitespace().last().unwrap_or_default())),
        "only the container's processes: {ps:?}"
    );

    assert_eq!(
        section(&text, "write"),
        "written-by-exec",
        "the write lands in the layer"
    );
    assert_eq!(
        std::fs::read_to_string(layer.join("diff/opt/nsps-exec"))
            .ok()
            .as_deref(),
        None,
        "nsps rm removed the layer at the end"
    );
    assert!(
        section(&text, "clash").contains("in use by a running chain"),
        "{text}"
    );
    assert!(section(&text, "clash").ends_with("status 125"), "{text}");
    assert!(
        !section(&text, "after").contains("web1"),
        "still listed after exit"
    );
    assert!(
        section(&text, "again").ends_with(&host_hostname()) || !section(&text, "again").is_empty()
    );
    assert_eq!(section(&text, "rm"), "removed");
    assert!(!layer.exists(), "nsps rm left the layer");
    assert!(
        !Path::new("/opt/nsps-exec").exists(),
        "the write escaped to the host"
    );
}

#[test]
fn the_layer_written_through_exec_is_the_containers() {
    require(is_root(), "root");
    let state = scratch();
    let layer = state.path().join("data/overlay/web2");
    let out = in_host(
        state.path(),
        r#"
utsns --name web2 --hostname web2 -- pidns -- mntns --overlay / -- sleep 1000 &
chain=$!
wait_for nsps exec web2 -- true
nsps exec web2 -- sh -c 'echo via-exec > /opt/nsps-layer'
cat "$NSCHAIN_DATA_DIR/overlay/web2/diff/opt/nsps-layer"
kill -TERM $chain; wait $chain || true
"#,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "via-exec");
    assert!(
        layer.join("diff/opt/nsps-layer").exists(),
        "the layer is kept without --rm"
    );
    assert!(!Path::new("/opt/nsps-layer").exists());
}

#[test]
fn bad_input_exits_125() {
    let state = scratch();
    for args in [
        vec!["no-such-chain"],
        vec!["bad name"],
        vec!["exec", "no-such-chain", "--", "true"],
        vec!["rm", "no-such-chain"],
        vec!["--bogus"],
    ] {
        let out = run(tool("nsps", state.path()).args(&args));
        assert_fatal(&out, "nsps");
    }
}
