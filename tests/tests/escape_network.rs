//! The escape suite, network part: attacks on the other containers of a bridge and on the
//! host's side of it, from a container of a rootful bridged chain (`netns --bridge` first),
//! inside a throwaway host (escape_common's Lab). Each attack first succeeds with the defence
//! off, then is blocked with it.
//!
//! The rootless chain has no bridge (`--slirp4netns`: nothing else on its link), so these
//! attacks do not apply to it.

mod escape_common;

use std::process::Output;

use escape_common::*;
use nschain_tests::*;

/// The bridge of these tests (in the lab's host) and the victim container's address on it.
const SUBNET: &str = "10.213.0.0/24";
const VICTIM: &str = "10.213.0.10";

fn need_nsenter() -> bool {
    require(have("nsenter"), "nsenter (util-linux)")
}

/// The argv of `config`'s chain with its netns link in bridge mode, running `command`.
fn bridged_chain(lab: &Lab, config: Config, mntns_args: &[&str], command: &[&str]) -> Vec<String> {
    let mut argv = lab.chain_argv(config, None, mntns_args, command);
    assert_eq!(argv[0], "netns", "{config:?} has no bridge");
    argv.insert(1, "--bridge".to_owned());
    argv
}

/// Runs `script` as the lab's host shell; `"$@"` in it is the attacker's chain.
fn in_lab(lab: &Lab, script: &str, attacker: Vec<String>) -> Output {
    let mut argv: Vec<String> = vec!["sh".into(), "-c".into(), script.into(), "sh".into()];
    argv.extend(attacker);
    run(&mut lab.in_host("", false, &argv))
}

/// The victim: a second container on the bridge at VICTIM (`$v` is its pid), up and reached
/// once by the host (so the host's neighbour table has its MAC).
const VICTIM_UP: &str = r#"
    netns --bridge --subnet 10.213.0.0/24 --ip 10.213.0.10 -- sleep 60 & v=$!
    i=0
    until busybox ping -c1 -W1 10.213.0.10 >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -lt 50 ] && kill -0 $v || { echo "the victim never answered"; exit 3; }
        sleep 0.1
    done
"#;

/// The end of a script: the victim stopped and its lease released (by its cleanup watcher),
/// so that the next run may take its address.
const VICTIM_DOWN: &str = r#"
    kill $v; wait
    i=0
    while [ -n "$(find "$NSCHAIN_RUN_DIR/netns" -type f ! -name lock ! -name last ! -name bridge.json 2>/dev/null)" ]; do
        i=$((i + 1)); [ $i -lt 600 ] || { echo "a lease was never released"; exit 3; }
        sleep 0.05
    done
"#;

fn assert_escaped(claim: &str, config: Config, out: &Output, lines: &[&str]) {
    let text = stdout(out);
    for line in lines {
        assert!(
            text.lines()
                .any(|l| l.starts_with("ESCAPED") && l.contains(line)),
            "[{claim}] the attack must succeed without the defence in the {} chain, to prove itself: no ESCAPED line with '{line}'\nstdout:\n{text}\nstderr:\n{}",
            config.name(),
            stderr(out)
        );
    }
}

/// ARP spoofing: a container claims the victim's IPv4 address with gratuitous ARPs from a
/// packet socket while the host keeps sending to the victim; the attack succeeds when a packet
/// meant for the victim arrives at the attacker. A packet socket needs CAP_NET_RAW, which
/// podman's default set (ours) lacks and Docker's has.
#[test]
fn arp_spoofing_another_container_needs_net_raw_which_is_not_in_the_default_set() {
    if !need_root() || !need_nsenter() {
        return;
    }
    let mut lab = Lab::new("arp");
    lab.make_bridge(SUBNET);
    let script = format!(
        r#"{VICTIM_UP}
        ( while :; do busybox ping -c1 -W1 {VICTIM} >/dev/null 2>&1; sleep 0.1; done ) & p=$!
        "$@"; rc=$?
        echo "INFO host neighbour: $(ip neigh show {VICTIM})"
        kill $p
        {VICTIM_DOWN}
        exit $rc
        "#
    );
    let attack = ["/nsattack", "arp-spoof", "eth0", VICTIM, "5000"];
    let claim = "claim: a container cannot take over another container's address (ARP spoofing)";

    // Proof: with NET_RAW (Docker's default set), the victim's traffic comes to the attacker.
    let out = in_lab(
        &lab,
        &script,
        bridged_chain(&lab, Config::Rootful, &["--cap-add", "NET_RAW"], &attack),
    );
    assert_escaped(
        claim,
        Config::Rootful,
        &out,
        &["take over another container's address by ARP spoofing"],
    );
    let text = stdout(&out);
    let mac = text
        .lines()
        .find_map(|l| l.strip_prefix("INFO packet socket open on eth0, MAC "))
        .unwrap_or_else(|| panic!("no MAC: {text}"));
    assert!(
        text.contains(&format!("lladdr {mac}")),
        "the host's neighbour entry for the victim names the attacker: {text}"
    );

    // The defence: no NET_RAW by default, so no packet socket.
    for config in [Config::Rootful, Config::RootfulUserns] {
        let out = in_lab(&lab, &script, bridged_chain(&lab, config, &[], &attack));
        assert_blocked(claim, config, &out);
        assert!(
            stdout(&out).contains("needs CAP_NET_RAW): Operation not permitted"),
            "{}",
            stdout(&out)
        );
    }
    // With a user namespace, even --cap-add NET_RAW gives it over the container's user
    // namespace only, not over the network namespace the host's root made.
    let out = in_lab(
        &lab,
        &script,
        bridged_chain(
            &lab,
            Config::RootfulUserns,
            &["--cap-add", "NET_RAW"],
            &attack,
        ),
    );
    assert_blocked(claim, Config::RootfulUserns, &out);
    lab.assert_clean();
}

/// Rogue router advertisements (Docker's CVE-2020-13401): a container with CAP_NET_RAW sends
/// an RA for PREFIX/64 to ff02::1. The host's bridge and the victim container must get neither
/// an address of PREFIX nor a default route from it. With `weaken`, IPv6 and `accept_ra` are
/// switched back on (bridge, host veth ends, the victim's eth0) after the attacker's chain set
/// up its link and before it sends.
fn rogue_ra(lab: &Lab, prefix: &str, weaken: bool) -> Output {
    let net = prefix.trim_end_matches(':');
    let weaken_script = if weaken {
        r#"
        up() { n=0; for d in /sys/class/net/nsc[0-9a-f]*; do [ "$(cat $d/operstate)" = up ] && n=$((n + 1)); done; [ $n -ge 2 ]; }
        i=0
        until up; do i=$((i + 1)); [ $i -lt 600 ] || { echo "the attacker never came up"; exit 3; }; sleep 0.05; done
        for d in /proc/sys/net/ipv6/conf/nschain0 /proc/sys/net/ipv6/conf/nsc[0-9a-f]*; do
            echo 0 > $d/disable_ipv6; echo 2 > $d/accept_ra
        done
        nsenter -t $v -n sh -c 'echo 0 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6; echo 2 > /proc/sys/net/ipv6/conf/eth0/accept_ra'
        echo "INFO defence off: IPv6 on and accept_ra=2 on the bridge, the host's veth ends and the victim's eth0"
        touch root/tmp/go
        "#
    } else {
        "touch root/tmp/go"
    };
    let script = format!(
        r#"{VICTIM_UP}
        rm -f root/tmp/go
        "$@" & a=$!
        {weaken_script}
        wait $a; rc=$?
        sleep 0.3
        verdict() {{ if [ -n "$2" ]; then echo "ESCAPED $1: $2"; else echo "BLOCKED $1: none"; fi; }}
        verdict "the host's bridge got an address of the rogue prefix" "$(ip -6 -o addr show dev nschain0 | grep -o '{net}:[0-9a-f:]*/64')"
        verdict "the host got a default route from the rogue router" "$(ip -6 route show default dev nschain0)"
        verdict "the other container got an address of the rogue prefix" "$(nsenter -t $v -n ip -6 -o addr show dev eth0 | grep -o '{net}:[0-9a-f:]*/64')"
        verdict "the other container got a default route from the rogue router" "$(nsenter -t $v -n ip -6 route show default)"
        {VICTIM_DOWN}
        exit $rc
        "#
    );
    // The attacker sends once the host script says go (its /tmp is the lab's root/tmp): at
    // once, or once the defence is off.
    let send = format!(
        "i=0; until test -e /tmp/go; do i=$((i + 1)); test $i -lt 600 || exit 4; sleep 0.05; done; \
         exec /nsattack ra eth0 {prefix}"
    );
    in_lab(
        lab,
        &script,
        bridged_chain(
            lab,
            Config::Rootful,
            &["--cap-add", "NET_RAW"],
            &["/bin/sh", "-c", &send],
        ),
    )
}

#[test]
fn a_rogue_router_advertisement_configures_neither_the_host_nor_another_container_cve_2020_13401() {
    if !need_root() || !need_nsenter() {
        return;
    }
    let claim = "CVE-2020-13401: a container's router advertisement configures the host or another container";
    // Proof: with IPv6 and accept_ra back on, the host's bridge and the victim take the
    // attacker's prefix and route.
    let mut weak = Lab::new("ra-weak");
    weak.make_bridge(SUBNET);
    let out = rogue_ra(&weak, "2001:db8:5a:1::", true);
    assert_escaped(
        claim,
        Config::Rootful,
        &out,
        &[
            "the host's bridge got an address",
            "the host got a default route",
            "the other container got an address",
            "the other container got a default route",
        ],
    );
    // A bridge left accepting RAs (made by an older version, say): the next start makes it
    // refuse them, and the containers have IPv6 off. (What the proof left goes first.)
    let flush: Vec<String> = [
        "sh",
        "-c",
        "ip -6 route flush proto ra && ip -6 addr flush dev nschain0 scope global",
    ]
    .map(str::to_owned)
    .to_vec();
    let out = run(&mut weak.in_host("", false, &flush));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = rogue_ra(&weak, "2001:db8:5a:2::", false);
    assert_blocked(claim, Config::Rootful, &out);
    assert!(
        stdout(&out).contains("INFO 3 router advertisements sent"),
        "the attack did not run: {}",
        stdout(&out)
    );
    // A bridge made by netns.
    let mut lab = Lab::new("ra");
    lab.make_bridge(SUBNET);
    let out = rogue_ra(&lab, "2001:db8:5a:3::", false);
    assert_blocked(claim, Config::Rootful, &out);
    assert!(
        stdout(&out).contains("INFO 3 router advertisements sent"),
        "the attack did not run: {}",
        stdout(&out)
    );
    weak.assert_clean();
    lab.assert_clean();
}

/// What netns sets, read from the outside: IPv6 off on the bridge and eth0, no IPv6 address
/// on the host's veth end, router advertisements refused on all three.
#[test]
fn bridge_mode_links_have_ipv6_off_and_refuse_router_advertisements() {
    if !need_root() {
        return;
    }
    let mut lab = Lab::new("ipv6");
    lab.make_bridge(SUBNET);
    let script = r#"
        c=/proc/sys/net/ipv6/conf
        echo "bridge $(cat $c/nschain0/disable_ipv6) $(cat $c/nschain0/accept_ra)"
        netns --bridge -- sh -c "echo eth0 \$(cat $c/eth0/disable_ipv6) \$(cat $c/eth0/accept_ra) > eth0.tmp; echo ipv4 \$(cat /proc/sys/net/ipv4/conf/eth0/arp_notify) \$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start) >> eth0.tmp && mv eth0.tmp eth0; sleep 5" & v=$!
        i=0
        until [ -s eth0 ]; do i=$((i + 1)); [ $i -lt 600 ] || exit 3; sleep 0.05; done
        cat eth0
        for d in $c/nsc[0-9a-f]*; do echo "veth $(cat $d/addr_gen_mode) $(cat $d/accept_ra) addresses: $(ip -6 -o addr show dev ${d##*/} | wc -l)"; done
        echo "host addresses: $(ip -6 -o addr show dev nschain0 | wc -l)"
        kill $v; wait
    "#;
    let out = in_lab(&lab, script, Vec::new());
    let text = ok_out(&out, "ipv6");
    // The host's veth end, a bridge port, generates no IPv6 address (addr_gen_mode 1: none).
    for want in [
        "bridge 1 0",
        "eth0 1 0",
        "veth 1 0 addresses: 0",
        "host addresses: 0",
        // and, set through the same /proc/sys/net handle: arp_notify on eth0, every port
        // the container's own
        "ipv4 1 0",
    ] {
        assert!(text.lines().any(|l| l == want), "{want}: {text}");
    }
    lab.assert_clean();
}
