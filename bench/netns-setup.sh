#!/usr/bin/env bash
# Bridge-mode setup time of `netns` (unshare to exec), side by side with the same steps done
# by `ip` commands and with `unshare -n` alone. Runs as root inside a throwaway network, mount
# and pid namespace that plays the host: the machine's interfaces and nft tables are untouched.
#
#   bench/netns-setup.sh [NETNS_BINARY]        (default: target/release/netns)
#   RUNS=300 bench/netns-setup.sh              (hyperfine runs per command)
#   SETTLE=0 bench/netns-setup.sh              (seconds between runs, default 0.1)
#
# Between runs the script sleeps SETTLE seconds: the kernel tears the previous run's network
# namespace down asynchronously, holding the RTNL lock that every netlink change (of netns and
# of ip alike) waits for; back to back (SETTLE=0) that teardown is measured too.
#
# Prints a Markdown table (hyperfine --export-markdown) and the setup trace of one run.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
netns=$(realpath "${1:-${NETNS:-$here/target/release/netns}}")
runs=${RUNS:-100}
settle=${SETTLE:-0.1}

if [ "${NSCHAIN_BENCH_INNER:-}" != 1 ]; then
    [ "$(id -u)" = 0 ] || { echo "netns-setup.sh: needs root (it builds a throwaway host namespace)" >&2; exit 1; }
    for p in hyperfine ip nft unshare; do
        command -v "$p" >/dev/null || { echo "netns-setup.sh: $p is missing" >&2; exit 1; }
    done
    [ -x "$netns" ] || { echo "netns-setup.sh: $netns is not built (cargo build --release -p netns)" >&2; exit 1; }
    exec env NSCHAIN_BENCH_INNER=1 unshare --net --mount --pid --fork --mount-proc \
        --propagation private bash "$0" "$netns"
fi

# Inside the throwaway "host".
mount -t tmpfs tmpfs /run
mkdir -p /run/netns
ip link set lo up
work=$(mktemp -d /run/netns-bench.XXXXXX)
export NSCHAIN_RUN_DIR=$work/state

# The ip-command equivalent of `netns --bridge true`: a new namespace, lo up, a veth whose
# host end joins the bridge and whose peer is eth0 inside, an address, eth0 up, a default
# route, then the command. The bridge exists already (as it does for netns after its first run).
ip link add nsbench0 type bridge
ip addr add 10.201.0.1/16 dev nsbench0
ip link set nsbench0 up
cat >"$work/ip-steps.sh" <<'EOF'
set -e
n=c$$
ip netns add $n
ip link add v$$ type veth peer name eth0 netns $n
ip link set v$$ master nsbench0 up
ip -n $n link set lo up
ip -n $n addr add 10.201.0.2/16 dev eth0
ip -n $n link set eth0 up
ip -n $n route add default via 10.201.0.1
ip netns exec $n true
ip netns del $n
EOF

# Warm up: the bridge nschain0 and the table ip nschain exist from now on.
"$netns" --bridge true
sleep 0.3

echo "## netns bridge-mode setup ($(nproc) CPUs, $(uname -r), $runs runs each, ${settle}s apart)"
echo
hyperfine -N --warmup 10 --runs "$runs" --prepare "sleep $settle" --export-markdown "$work/result.md" \
    --command-name "unshare -n true" "unshare -n true" \
    --command-name "netns true (lo up)" "$netns true" \
    --command-name "netns --bridge true" "$netns --bridge true" \
    --command-name "ip commands (same steps)" "bash $work/ip-steps.sh" >&2
cat "$work/result.md"
echo
echo "One traced run (NSCHAIN_DEBUG=1):"
echo '```'
NSCHAIN_DEBUG=1 "$netns" --bridge true 2>&1 | sed 's/^netns\[[0-9]*\]: debug: //'
echo '```'

# Every run was released by its watcher: nothing is left.
sleep 0.5
left=$(find "$NSCHAIN_RUN_DIR/netns" -type f ! -name lock ! -name last | wc -l)
veths=$(ip -br link | grep -c '^nsc[0-9a-f]' || true)
echo
echo "left behind after the runs: $left leases, $veths veths"
