#!/usr/bin/env bash
# make demo: the seed's walkthrough, replayed non-interactively. Three nginx containers on
# host ports 80, 81 and 82, each with its own files, hostname, PID 1, IPC, address and user
# mapping; then the host's view; then everything stops and nothing is left.
#
# It runs inside a throwaway network and mount namespace that plays the host, so the
# machine's own interfaces, firewall and /run are untouched.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
bin=${NSCHAIN_BIN:-$top/target/release}

if [ "${NSCHAIN_DEMO_HOST:-}" != 1 ]; then
    [ "$(id -u)" = 0 ] || { echo "demo: needs root (the containers publish ports 80-82 on a bridge)" >&2; exit 1; }
    exec unshare --net --mount --propagation private --fork \
        env NSCHAIN_DEMO_HOST=1 bash "$0" "$@"
fi

export PATH="$bin:$PATH"
state=$(mktemp -d /tmp/nschain-demo.XXXXXX)
chmod 755 "$state"   # each container's root (a host range) enters its own data directory below
export NSCHAIN_RUN_DIR=$state/run NSCHAIN_DATA_DIR=$state/data
ip link set lo up

bold=$'\e[1m' dim=$'\e[2m' off=$'\e[0m'
[ -t 1 ] || { bold='' dim='' off=''; }
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$off"; }
proves() { printf '%s   -> %s%s\n' "$dim" "$*" "$off"; }
show() { printf '%s$ %s%s\n' "$bold" "$*" "$off"; eval "$@" 2>&1 | sed 's/^/   /'; }
fail() { echo "demo: FAILED: $*" >&2; exit 1; }

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

step "Start three nginx containers, published on host ports 80, 81 and 82"
for i in 1 2 3; do
    port=$((79 + i))
    chain=(netns --bridge --publish "$port:80" --name "web$i" --
           userns --map-auto --idmap / --
           ipcns --
           utsns --hostname "web$i" --
           pidns --
           mntns --overlay / --
           sh -c "echo 'hello from web$i' > /opt/test1; echo 'page of web$i' > /var/www/html/index.html; ipcmk -M 4096 >/dev/null; exec nginx -g 'daemon off;'")
    printf '%s$ %s &%s\n' "$bold" "${chain[*]@Q}" "$off"
    "${chain[@]}" &
    pids+=($!)
done
for port in 80 81 82; do
    for _ in $(seq 100); do curl -fsS "127.0.0.1:$port" >/dev/null 2>&1 && break; sleep 0.1; done
done

step "1. Each container has its own filesystem"
for i in 1 2 3; do show "nsps exec web$i -- cat /opt/test1"; done
proves "each container wrote /opt/test1 with its own text and reads only its own"
show "ls /opt/test1 || echo 'the host has no /opt/test1'"
[ ! -e /opt/test1 ] || fail "/opt/test1 appeared on the host"
for i in 1 2 3; do show "ls -ln $NSCHAIN_DATA_DIR/userns-*/overlay/web$i/diff/opt/test1 | cut -d' ' -f3,4,9-; cat $NSCHAIN_DATA_DIR/userns-*/overlay/web$i/diff/opt/test1"; done
proves "each file landed in that container's own writable layer (its diff directory), as Docker's overlay2, owned by the container's host uid range"

step "2. Each container has its own process tree and PID 1"
show "nsps exec web1 -- ps -ef"
proves "inside, nginx runs under PID 1 (nschain's init) and sees only its own processes"
show "nsps web1 | sed -n '/processes/,\$p'"
proves "the host sees every container process under its host pid (the NSpid mapping)"

step "3. IPC stays inside the container"
show "nsps exec web1 -- ipcs -m | grep -c 0x || true"
show "ipcs -m | grep -c 0x || true"
proves "the shared memory segment made in web1 is invisible to the host"

step "4. Each container has its own IP address; ports are published on the host"
for i in 1 2 3; do show "nsps exec web$i -- ip -4 -o addr show eth0 | awk '{print \$4}'"; done
for port in 80 81 82; do show "curl -fsS 127.0.0.1:$port"; done
[ "$(curl -fsS 127.0.0.1:81)" = "page of web2" ] || fail "port 81 did not reach web2"
proves "all three listen on port 80 inside and answer on 80, 81 and 82 of the host"

step "5. The same or different hostnames, each its own"
for i in 1 2 3; do show "nsps exec web$i -- hostname"; done
show "hostname"
proves "the host's hostname is unchanged"

step "6. Root inside, an unprivileged range outside, no clashes"
for i in 1 2 3; do show "nsps exec web$i -- cat /proc/self/uid_map"; done
show "nsps exec web1 -- id -u"
show "ps -o uid,pid,comm -C nginx"
proves "each container's root is a different 65536-id host range; nginx's workers run unprivileged"

step "The host's view"
show "nsps"
show "ip -br link show type veth"
show "nft list table ip nschain | grep -E 'dnat|elements' || true"

step "Stop everything"
for pid in "${pids[@]}"; do kill -TERM "$pid"; done
wait || true
pids=()
# The kernel tears a network namespace down asynchronously; each container's watcher then
# removes its veth, ports and address lease.
for _ in $(seq 100); do [ -z "$(ip -br link show type veth)" ] && break; sleep 0.1; done
show "nsps"
for i in 1 2 3; do show "nsps rm web$i"; done
show "netns gc --prune"
show "ip -br link show type veth | wc -l"
leftovers="find $NSCHAIN_RUN_DIR $NSCHAIN_DATA_DIR -type f ! -name lock ! -path '*/userns/lease-*'"
show "$leftovers"
[ "$(ip -br link show type veth | wc -l)" = 0 ] || fail "a veth was left behind"
[ -z "$(eval "$leftovers")" ] || fail "state was left behind"
proves "no container, veth, address lease, port, registration or layer is left"
proves "(the uid ranges of finished chains are free: the next userns --map-auto reclaims their lease files)"
rm -rf "$state"
echo
echo "demo: all five questions answered"
