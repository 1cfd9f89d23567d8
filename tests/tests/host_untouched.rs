//! Issue 19: the host is left as it was, and what a container held is free when its command
//! returns. Every network case runs in a throwaway network namespace that plays the host
//! (`ip netns add`), with bridges, veths and servers the test makes itself; traffic goes only
//! between namespaces made here.

mod escape_common;

use std::path::Path;
use std::process::{Command, Output};

use escape_common::HostNs;
use nschain_tests::{have, require, run, stderr, stdout, with_env};

/// Shell functions every "host" script starts with.
const PRELUDE: &str = r#"
set -u
# The state of the "host" that a refused netns must leave exactly as it was.
host_state() {
    ip -br link | sed 's/@[^ ]*//' | sort
    ip -br -4 addr | sort
    nft list ruleset
    find "$NSCHAIN_RUN_DIR/netns" -type f ! -name lock 2>/dev/null | sort
}
# Wait (up to 30 s: generous, it returns as soon as the command succeeds) until a command succeeds.
wait_for() { for _ in $(seq 300); do if "$@" >/dev/null 2>&1; then return 0; fi; sleep 0.1; done; return 1; }
leases() { find "$NSCHAIN_RUN_DIR/netns" -type f ! -name lock ! -name last ! -name bridge.json 2>/dev/null | wc -l; }
no_leases() { [ "$(leases)" = 0 ]; }
# Leases whose setup is complete (an address is claimed before its veth exists).
up_leases() { find "$NSCHAIN_RUN_DIR/netns" -type f ! -name lock ! -name last ! -name bridge.json -exec grep -L '"ifindex":0,' {} + 2>/dev/null | wc -l; }
leases_are() { [ "$(up_leases)" = "$1" ]; }
links() { ip -br link | sed 's/@[^ ]*//' | awk '{print $1}' | sort | tr '\n' ' '; }
addr_of() { ip -br -4 addr show dev "$1" | awk '{print $3}'; }
"#;

fn need_root() -> bool {
    nschain_tests::need::lab()
}

/// Runs `script` as root in the throwaway host `host`, with the chain's state under `state`.
fn in_host(host: &HostNs, state: &Path, script: &str) -> Output {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &host.name, "timeout", "100", "bash", "-c"])
        .arg(format!("{PRELUDE}\n{script}"));
    with_env(&mut cmd, state);
    cmd.current_dir(state);
    run(&mut cmd)
}

fn in_host_ok(host: &HostNs, state: &Path, script: &str) -> String {
    let out = in_host(host, state, script);
    assert!(
        out.status.success(),
        "host script failed with {}:\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// The value after `key: ` on the line that starts with it.
fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no '{key}:' line in:\n{out}"))
        .trim()
}

/// Item 2: `--bridge=NAME` on an interface that is not a bridge is refused before anything
/// changes (today: the veth got the gateway address, then the veth pair failed).
#[test]
fn bridge_on_an_interface_that_is_not_a_bridge_is_refused_and_nothing_changes() {
    if !need_root() {
        return;
    }
    let state = nschain_tests::scratch();
    let host = HostNs::new("notbr");
    let out = in_host_ok(
        &host,
        state.path(),
        r#"
        ip link add vx0 type veth peer name vx1
        host_state > before
        for name in vx0 lo; do
            netns --bridge=$name -- true 2>err; echo "$name: $? $(tr '\n' '|' < err)"
        done
        host_state > after
        diff before after && echo "host unchanged"
        echo "vx0 addresses: $(addr_of vx0)"
        "#,
    );
    for name in ["vx0", "lo"] {
        let line = field(&out, name);
        assert!(
            line.starts_with(&format!("125 netns: fatal: {name} is not a bridge|")),
            "{name}: {line}"
        );
        // One fatal line and one hint.
        assert_eq!(line.matches('|').count(), 2, "{name}: {line}");
    }
    assert!(out.contains("host unchanged"), "{out}");
    assert_eq!(field(&out, "vx0 addresses"), "", "{out}");
}

/// Item 1: `netns gc --prune` removes only what netns made. A bridge it used but did not
/// create (as docker0), an address-less bridge it gave an address, a plain veth and `lo`
/// stay (the address it added goes); the bridges it created and its table go; a bridge that
/// cannot be pruned does not stop the rest.
#[test]
fn gc_prune_removes_only_what_netns_created() {
    if !need_root() {
        return;
    }
    let state = nschain_tests::scratch();
    let host = HostNs::new("prune");
    let out = in_host(
        &host,
        state.path(),
        r#"
        # What the "host" had before nschain: a docker0-like bridge with its address, an
        # address-less bridge, a plain veth pair.
        ip link add ubr0 type bridge; ip addr add 10.91.0.1/16 dev ubr0; ip link set ubr0 up
        ip link add ubr1 type bridge; ip link set ubr1 up
        ip link add uveth0 type veth peer name uveth1
        ip link add uv2 type veth peer name uv3
        echo "before: $(links)"
        netns --bridge=ubr0 -- true || echo "ubr0 run failed"
        netns --bridge=ubr1 --subnet 10.92.0.0/16 -- true || echo "ubr1 run failed"
        echo "ubr1 got: $(addr_of ubr1)"
        netns --bridge=uveth0 -- true 2>/dev/null; echo "uveth0 run: $?"
        netns --bridge=lo -- true 2>/dev/null; echo "lo run: $?"
        netns --bridge -- true || echo "nschain0 run failed"
        netns --bridge=nsown1 --subnet 10.93.0.0/16 -- true || echo "nsown1 run failed"
        # A bridge netns made, to which the user then attached an interface of theirs.
        netns --bridge=nsown2 --subnet 10.94.0.0/16 -- true || echo "nsown2 run failed"
        ip link set uv2 master nsown2
        echo "used: $(links)"
        # What an earlier version left for --bridge=lo and --bridge=uveth0 (a lease directory
        # and no record); the one for lo cannot be removed (a directory in it).
        mkdir -p "$NSCHAIN_RUN_DIR/netns/bridge-lo/stuck" "$NSCHAIN_RUN_DIR/netns/bridge-uveth0"
        wait_for no_leases || { echo "leases left"; exit 1; }
        netns gc --prune 2>err; echo "prune: $? $(tr '\n' '|' < err)"
        echo "after: $(links | sed 's/nsown2 //')"
        echo "nsown2 kept: $(ip -br link show type bridge | grep -c '^nsown2 ')"
        echo "ubr0 after: $(addr_of ubr0)"
        echo "ubr1 after: $(addr_of ubr1)"
        echo "tables: $(nft list tables | grep -c nschain)"
        echo "state: $(cd "$NSCHAIN_RUN_DIR/netns" && ls | tr '\n' ' ')"
        # Once the user's interface is gone, the bridge netns made goes at the next prune.
        ip link del uv2; rm -r "$NSCHAIN_RUN_DIR/netns/bridge-lo"
        netns gc --prune; echo "second prune: $? $(ip -br link show type bridge | awk '{print $1}' | tr '\n' ' ')"
        "#,
    );
    let out = format!("{}\n{}", stdout(&out), stderr(&out));
    assert!(!out.contains("run failed"), "{out}");
    assert_eq!(field(&out, "ubr1 got"), "10.92.0.1/16", "{out}");
    assert_eq!(field(&out, "uveth0 run"), "125", "{out}");
    assert_eq!(field(&out, "lo run"), "125", "{out}");
    let used = field(&out, "used");
    assert!(
        used.contains("nschain0") && used.contains("nsown1"),
        "{out}"
    );
    // The one failure and the bridge kept for the user's port are reported, nothing else.
    let prune = field(&out, "prune");
    assert!(prune.starts_with("125 "), "{out}");
    assert!(
        prune.contains("warning: unable to prune the bridge lo"),
        "{out}"
    );
    assert!(
        prune.contains(
            "warning: the bridge nsown2 is left: it has ports netns did not attach (uv2)"
        ),
        "{out}"
    );
    assert_eq!(prune.matches("warning:").count(), 2, "{out}");
    assert_eq!(field(&out, "nsown2 kept"), "1", "{out}");
    assert_eq!(
        field(&out, "after"),
        field(&out, "before"),
        "gc --prune removed an interface netns did not create, or left one it did:\n{out}"
    );
    assert_eq!(field(&out, "ubr0 after"), "10.91.0.1/16", "{out}");
    assert_eq!(
        field(&out, "ubr1 after"),
        "",
        "the address netns added stays: {out}"
    );
    assert_eq!(field(&out, "tables"), "0", "{out}");
    // nsown2's record stays: a later prune deletes it once the user's port is gone.
    assert_eq!(
        field(&out, "state"),
        "bridge-lo bridge-nsown2 lock",
        "{out}"
    );
    assert_eq!(field(&out, "second prune"), "0 ubr0 ubr1", "{out}");
}

/// Item 11: networks isolated like Docker's. A container on one bridge reaches a container
/// on another bridge only through a published port; `--icc=false` containers of one bridge
/// cannot reach each other. Proven first with the defence off (the test flushes netns's
/// isolation chain; two containers without `--icc=false`), then blocked with it.
#[test]
fn containers_on_different_bridges_or_with_icc_false_cannot_reach_each_other() {
    if !need_root() || !require(have("curl"), "curl") || !require(have("python3"), "python3") {
        return;
    }
    let state = nschain_tests::scratch();
    let host = HostNs::new("isol");
    let out = in_host_ok(
        &host,
        state.path(),
        r#"
        mkdir -p www; echo page > www/index.html
        serve() { ip=$1; shift; netns --bridge "$@" --ip $ip -- busybox httpd -f -p 8081 -h www & }
        # get BRIDGE-ARGS -- ADDRESS[:PORT]: a client container fetches the page, or says blocked.
        get() {
            args=""; while [ "$1" != -- ]; do args="$args $1"; shift; done
            netns $args -- curl -sf -m 2 "http://$2/" || echo blocked
        }
        serve 10.200.0.24 -p 8085:8081
        serve 10.200.0.25 --icc=false
        serve 10.200.0.26
        wait_for leases_are 3 || exit 1
        for ip in 24 25 26; do wait_for curl -sf 10.200.0.$ip:8081 || exit 1; done
        netns --bridge=br2 --subnet 10.77.0.0/16 -- true    # the second bridge exists
        # Defence off: without the isolation chain's rule, br2 reaches nschain0.
        nft list chain ip nschain isolate > isolate.nft
        nft flush chain ip nschain isolate
        echo "other bridge, defence off: $(get --bridge=br2 -- 10.200.0.24:8081)"
        nft -f isolate.nft
        echo "other bridge: $(get --bridge=br2 -- 10.200.0.24:8081)"
        echo "other bridge, published port: $(get --bridge=br2 -- 10.77.0.1:8085)"
        # The same bridge: open by default (as Docker's icc=true).
        echo "same bridge: $(get --bridge -- 10.200.0.26:8081)"
        echo "icc=false to icc=false: $(get --bridge --icc=false -- 10.200.0.25:8081)"
        echo "icc=false, published port: $(get --bridge --icc=false -- 10.200.0.1:8085)"
        echo "icc=false port flag: $(ip -d link show dev nsc0ac80019 | grep -o 'isolated on')"
        # Layer 3: an --icc=false container with CAP_NET_ADMIN (no mntns here) routes to an
        # --icc=false neighbour through the gateway, one UDP datagram per try: it arrives with
        # the isolation chain flushed, not with it.
        UDP_RECEIVER='import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 9000)); print("ready", flush=True)
while True: print(s.recv(100).decode().strip(), flush=True)'
        netns --bridge --icc=false --ip 10.200.0.28 -- python3 -c "$UDP_RECEIVER" > udp.28 &
        wait_for grep -q ready udp.28 || exit 1
        # routed WORD [defence-off]: the sender starts (its start asserts the isolation rules),
        # then the test may flush them, then it sends.
        routed() {
            rm -f go
            netns --bridge --icc=false --ip 10.200.0.27 -- bash -c \
                "ip route add 10.200.0.28/32 via 10.200.0.1 || exit 1; while [ ! -e go ]; do sleep 0.02; done
                 echo $1 > /dev/udp/10.200.0.28/9000; sleep 0.2" &
            wait_for leases_are 5 || exit 1
            sleep 0.1
            if [ $# = 2 ]; then nft flush chain ip nschain isolate; fi
            touch go; wait $!
            if [ $# = 2 ]; then nft -f isolate.nft; fi
            wait_for leases_are 4 || exit 1
        }
        nft list chain ip nschain isolate > isolate.nft   # now with the rule of --icc=false
        routed off defence-off
        routed on
        sleep 0.3
        echo "icc=false routed: $(tr '\n' ' ' < udp.28)"
        kill $(jobs -p); wait
        wait_for no_leases && echo "clean at the end"
        "#,
    );
    assert_eq!(field(&out, "other bridge, defence off"), "page", "{out}");
    assert_eq!(field(&out, "other bridge"), "blocked", "{out}");
    assert_eq!(field(&out, "other bridge, published port"), "page", "{out}");
    assert_eq!(field(&out, "same bridge"), "page", "{out}");
    assert_eq!(field(&out, "icc=false to icc=false"), "blocked", "{out}");
    assert_eq!(field(&out, "icc=false, published port"), "page", "{out}");
    assert_eq!(field(&out, "icc=false port flag"), "isolated on", "{out}");
    assert_eq!(field(&out, "icc=false routed"), "ready off", "{out}");
    assert!(out.contains("clean at the end"), "{out}");
}

/// Item 4: a failed rootless `netns --slirp4netns` leaves no process behind (it left one per
/// attempt, blocked on a pipe, holding the caller's descriptors); slirp4netns's start-up lines
/// (`sent tapfd=7 for tap0`) do not reach the user's stderr, and its words are in the error
/// when it fails.
#[test]
fn a_failed_slirp4netns_start_leaves_no_process_and_its_chatter_stays_hidden() {
    if !need_root()
        || !require(have("slirp4netns"), "slirp4netns")
        || !escape_common::need_rootless()
    {
        return;
    }
    let state = nschain_tests::scratch();
    let host = HostNs::new("slirp");
    let out = in_host_ok(
        &host,
        state.path(),
        r#"
        as_nobody() { setpriv --reuid 65534 --regid 65534 --clear-groups -- "$@"; }
        # /dev/net/tun is 0600 here: a world-usable node, in this mount namespace only.
        mkdir dev; mount -t tmpfs tmpfs dev; mknod -m 666 dev/tun c 10 200
        mount --bind dev/tun /dev/net/tun
        # Fails at the unshare (no user namespace): three attempts.
        for i in 1 2 3; do
            as_nobody netns --slirp4netns -- true 2>err.$i; echo "failed $i: $? $(tr '\n' '|' < err.$i)"
        done
        as_nobody userns -- netns --slirp4netns -- true 2>ok.err; echo "normal: $? [$(tr '\n' '|' < ok.err)]"
        umount -l /dev/net/tun   # lazily: the slirp4netns of the run above may still hold it
        as_nobody userns -- netns --slirp4netns -- true 2>tun.err; echo "no tun: $? $(tr '\n' '|' < tun.err)"
        "#,
    );
    for i in 1..=3 {
        assert!(
            field(&out, &format!("failed {i}")).starts_with("125 netns: fatal: "),
            "{out}"
        );
    }
    assert_eq!(field(&out, "normal"), "0 []", "{out}");
    let no_tun = field(&out, "no tun");
    assert!(
        no_tun.starts_with("125 netns: fatal: unable to start slirp4netns: slirp4netns exited before the network was ready: "),
        "{out}"
    );
    assert!(no_tun.contains("/dev/net/tun"), "{out}");
    assert!(!no_tun.contains("sent tapfd"), "{out}");
    // Nothing of these runs is left (the failed ones left a blocked netns each).
    let marker = format!("NSCHAIN_RUN_DIR={}", state.path().join("run").display());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let left = nschain_tests::audit::processes_with_env(&marker);
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "processes left behind: {left:?}\n{out}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Item 8: what a container held is free when its command returns. The same published port,
/// the same `--ip` and the same `--name` run again straight away (it failed for 40-80 ms
/// with "already published by ... (pid N)", a dead pid); a connection in TIME_WAIT on the
/// host port is not "a host process listens there"; a namespace the command left running (a
/// daemon) still holds its port, and a real listener is still refused.
#[test]
fn ports_addresses_and_names_are_free_when_the_command_returns() {
    if !need_root() || !require(have("curl"), "curl") || !require(have("python3"), "python3") {
        return;
    }
    let state = nschain_tests::scratch();
    let host = HostNs::new("free");
    let out = in_host_ok(
        &host,
        state.path(),
        r#"
        ip link set lo up
        mkdir -p www; echo page > www/index.html
        again() { n=0; for i in $(seq 15); do netns "$@" 2>>again.err || n=$((n + 1)); done; echo $n; }
        echo "same port, failures: $(again --bridge -p 8400:80 -- true)"
        echo "same address, failures: $(again --bridge --ip 10.200.0.40 -- true)"
        echo "same name, failures: $(again --name free19 --bridge -p 8400:80 --ip 10.200.0.41 -- true)"
        echo "errors: $(sort -u again.err | tr '\n' '|')"
        # A host server on 8401 closes its side of one connection first, and stops: that side
        # is in TIME_WAIT (for a minute).
        python3 -c 'import socket
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 8401)); srv.listen()
client = socket.create_connection(("127.0.0.1", 8401)); conn, _ = srv.accept()
conn.close(); client.recv(1); client.close(); srv.close()'
        echo "time-wait sockets: $(ss -Htan state time-wait '( sport = :8401 )' | wc -l)"
        netns --bridge -p 8401:80 -- true 2>tw.err; echo "over time-wait: $? $(tr '\n' '|' < tw.err)"
        # A real listener is still refused.
        busybox httpd -f -p 8402 -h www & pid=$!
        wait_for curl -sf 127.0.0.1:8402 || exit 1
        netns --bridge -p 8402:80 -- true 2>ls.err; echo "over a listener: $? $(tr '\n' '|' < ls.err)"
        kill $pid; wait $pid
        # The command returns but leaves a process in the namespace: the port stays its own.
        netns --bridge -p 8403:80 -- sh -c 'sleep 30 >/dev/null 2>&1 & echo $! > sleeper.pid'
        netns --bridge -p 8403:80 -- true 2>dm.err; echo "daemon left: $? $(tr '\n' '|' < dm.err)"
        kill $(cat sleeper.pid)
        wait_for no_leases && echo "clean at the end"
        "#,
    );
    assert_eq!(field(&out, "same port, failures"), "0", "{out}");
    assert_eq!(field(&out, "same address, failures"), "0", "{out}");
    assert_eq!(field(&out, "same name, failures"), "0", "{out}");
    assert_eq!(field(&out, "errors"), "", "{out}");
    assert_ne!(
        field(&out, "time-wait sockets"),
        "0",
        "no TIME_WAIT made: {out}"
    );
    assert_eq!(field(&out, "over time-wait"), "0", "{out}");
    let listener = field(&out, "over a listener");
    assert!(
        listener.starts_with("125 netns: fatal: the host port 0.0.0.0:8402/tcp is not free"),
        "{out}"
    );
    assert!(listener.contains("a host process listens there"), "{out}");
    let daemon = field(&out, "daemon left");
    assert!(
        daemon.starts_with("125 netns: fatal: the host port 8403/tcp is already published"),
        "{out}"
    );
    assert!(out.contains("clean at the end"), "{out}");
}

/// Bad values of `--icc`: one fatal line naming netns, 125, before anything is made.
#[test]
fn icc_bad_values_are_refused() {
    let state = nschain_tests::scratch();
    for (args, expected) in [
        (&["--icc=false", "true"][..], "--icc=false needs --bridge"),
        (
            &["--bridge", "--icc=maybe", "true"][..],
            "invalid value 'maybe'",
        ),
        (&["--bridge", "--icc=", "true"][..], "--icc"),
    ] {
        let out = run(nschain_tests::tool("netns", state.path()).args(args));
        nschain_tests::assert_fatal(&out, "netns");
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert!(
        !state.path().join("run").exists(),
        "state made by a refused start"
    );
}
