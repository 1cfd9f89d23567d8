#!/usr/bin/env bash
# bench/before-after.sh BEFORE AFTER [OUT]: the full chain of two release `nschain` binaries
# (e.g. main's and a branch's), each laid out as `make install` does (tools as hard links),
# side by side with bwrap, crun and the floor: ONE hyperfine run per table (rootful, then
# rootless as uid 65534), rounds alternating in order as in bench/run.sh; then CPU time and
# page faults of each command (perf stat, all processes of a run); then the image
# OUT/chain.svg (bench/images.py). Writes OUT/*.json, OUT/perf.txt (OUT: /tmp/nschain-ba).
# Knobs: RUNS (per command and round, 40), ROUNDS (4), FLOOR (default: target/release's),
# RUNS_ON (the tmpfs for run-time state, /dev/shm).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# With RUST_BACKTRACE set, every anyhow error made (even one handled on the way) captures a
# backtrace, and the first capture sorts the binary's unwind tables: milliseconds per link
# that a user without it never pays. Measure what a user gets by default.
unset RUST_BACKTRACE RUST_LIB_BACKTRACE
BEFORE=$(realpath "$1") AFTER=$(realpath "$2") OUT=${3:-/tmp/nschain-ba}
RUNS=${RUNS:-40} ROUNDS=${ROUNDS:-4}
FLOOR=${FLOOR:-$PWD/target/release/nschain-floor}
NOBODY=(setpriv --reuid 65534 --regid 65534 --clear-groups)
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/nschain-ba.XXXXXX)
# Run-time state on a tmpfs, as installed (/run, $XDG_RUNTIME_DIR and crun's /run/crun are
# tmpfs on Debian; this machine's /run is the ext4 root, where each registration's inodes cost).
RUNS_ON=${RUNS_ON:-/dev/shm}
RUN=$(mktemp -d "$RUNS_ON/nschain-ba-run.XXXXXX")
chmod 755 "$WORK" "$RUN"
trap 'rm -rf "$WORK" "$RUN"' EXIT
for side in before after; do
    src=$BEFORE
    [[ $side == after ]] && src=$AFTER
    mkdir -p "$WORK/$side"
    cp "$src" "$WORK/$side/nschain"
    for t in netns userns ipcns utsns pidns mntns; do ln -f "$WORK/$side/nschain" "$WORK/$side/$t"; done
done
R=$WORK/rootfs
mkdir -p "$R"/{bin,proc,dev,sys,tmp,etc,root,run} "$RUN/run" "$WORK/state" "$RUN/crun" \
    "$RUN/run-nobody" "$WORK/state-nobody"
cp "$(command -v busybox)" "$R/bin/busybox"
ln -s busybox "$R/bin/true"
mkdir -p "$WORK/bundle" && (cd "$WORK/bundle" && crun spec)
python3 - "$WORK/bundle/config.json" "$R" <<'EOF'
import json, sys
path, root = sys.argv[1], sys.argv[2]
c = json.load(open(path))
c["root"] = {"path": root, "readonly": False}
c["hostname"] = "b"
c["process"].update(terminal=False, args=["/bin/true"])
c["linux"]["namespaces"].append({"type": "user"})
c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 1}]
c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 1}]
c["linux"].pop("resources", None)
c["mounts"] = [m for m in c["mounts"] if m["destination"] != "/sys/fs/cgroup"]
for m in c["mounts"]:
    if m["type"] == "devpts":
        m["options"] = [o for o in m["options"] if not o.startswith("gid=")]
json.dump(c, open(path, "w"))
EOF
export NSCHAIN_RUN_DIR=$RUN/run NSCHAIN_DATA_DIR=$WORK/state
chain() { echo "$1/netns -- $1/userns --map-root -- $1/ipcns -- $1/utsns --hostname b -- $1/pidns -- $1/mntns --rootfs $R -- /bin/true"; }
# Each table its own state directories (exported before it: an `env` in the command would add
# an exec to the chain's rows): root refuses (and so does not register in) a run directory
# that uid 65534 owns.
as_root() { export NSCHAIN_RUN_DIR=$RUN/run NSCHAIN_DATA_DIR=$WORK/state; }
as_nobody() { export NSCHAIN_RUN_DIR=$RUN/run-nobody NSCHAIN_DATA_DIR=$WORK/state-nobody; }
rootless() { echo "${NOBODY[*]} $1/userns --map-root -- $1/netns -- $1/ipcns -- $1/utsns --hostname b -- $1/pidns -- $1/mntns --rootfs $R -- /bin/true"; }
BWRAP="bwrap --unshare-all --hostname b --bind $R / --proc /proc --dev /dev /bin/true"
# crun 1.8 refuses this hybrid cgroup host unless the unified mount is out of its sight
WRAP=(unshare -m --propagation private sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"' sh)
CRUN="crun --root $RUN/crun --cgroup-manager=disabled run --bundle $WORK/bundle ba"
rootful_rows=("chain, before" "$(chain "$WORK/before")" "chain, after" "$(chain "$WORK/after")"
    "bwrap --unshare-all" "$BWRAP" "crun run" "$CRUN" "floor" "$FLOOR $R /bin/true")
rootless_rows=("rootless chain, before" "$(rootless "$WORK/before")" "rootless chain, after" "$(rootless "$WORK/after")"
    "bwrap rootless" "${NOBODY[*]} bwrap --unshare-all --unshare-user --hostname b --bind $R / --proc /proc --dev /dev /bin/true"
    "floor rootless" "${NOBODY[*]} $FLOOR $R /bin/true")
chown -R 65534:65534 "$RUN/run-nobody" "$WORK/state-nobody"
table() {
    local name=$1 round n args ordered i j
    shift
    args=("$@")
    n=$((${#args[@]} / 2))
    for ((round = 1; round <= ROUNDS; round++)); do
        ordered=()
        for ((i = 0; i < n; i++)); do
            j=$((round % 2 ? i : n - 1 - i))
            ordered+=(-n "${args[2 * j]}" "${args[2 * j + 1]}")
        done
        "${WRAP[@]}" hyperfine -N --style none --warmup 5 --runs "$RUNS" \
            --export-json "$OUT/$name.r$round.json" "${ordered[@]}" >/dev/null
    done
}
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >"$OUT/perf.txt"
as_root
table rootful "${rootful_rows[@]}"
as_nobody
table rootless "${rootless_rows[@]}"
as_root
for ((i = 0; i < ${#rootful_rows[@]}; i += 2)); do
    { echo "== ${rootful_rows[i]}"; "${WRAP[@]}" perf stat -r 30 -e task-clock,page-faults ${rootful_rows[i + 1]} 2>&1 >/dev/null | grep -E 'task-clock|page-faults|elapsed'; } >>"$OUT/perf.txt"
done
as_nobody
for ((i = 0; i < ${#rootless_rows[@]}; i += 2)); do
    { echo "== ${rootless_rows[i]}"; perf stat -r 30 -e task-clock,page-faults ${rootless_rows[i + 1]} 2>&1 >/dev/null | grep -E 'task-clock|page-faults|elapsed'; } >>"$OUT/perf.txt"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/perf.txt"
python3 bench/images.py chain "$OUT/chain.svg" "$OUT"/rootful.r*.json
python3 bench/images.py chain "$OUT/chain-rootless.svg" "$OUT"/rootless.r*.json
python3 - "$OUT" <<'EOF'
import glob, json, statistics, sys
out = sys.argv[1]
for table in ("rootful", "rootless"):
    times = {}
    for path in glob.glob(f"{out}/{table}.r*.json"):
        for r in json.load(open(path))["results"]:
            times.setdefault(r["command"], []).extend(r["times"])
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    print(f"{table}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in med.items()))
    for side in ("before", "after"):
        mine = [v for k, v in med.items() if k.endswith(side)][0]
        print(f"  {side}: " + ", ".join(f"÷ {k} {mine / v:.2f}" for k, v in med.items() if not k.endswith(("before", "after"))))
EOF
cat "$OUT/perf.txt"
