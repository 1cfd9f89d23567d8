#!/usr/bin/env bash
# bench/oci.sh: nsoci (issue 17) on the ground of runc and crun, in ONE run on this machine:
#   a. `nsoci run` of a bundle vs `runc run` and `crun run` of the same bundle (goal: nsoci
#      ≤ 0.5 × crun), one hyperfine run, alternating rounds;
#   b. `podman --runtime X run --rm IMAGE true` with nsoci vs runc (goal: ≤ 0.8 × runc).
# The bundle is what engines send: `runc spec` (pid, network, ipc, uts and mount namespaces, a
# device-cgroup rule, so each runtime makes a cgroup) over a busybox root, process `true`. The
# image is the same root imported into a podman store of this run's own (vfs, cgroupfs,
# --network none, the ulimits this machine needs). Everything runs in a throwaway network and
# mount namespace (crun 1.8 refuses this hybrid host unless the unified hierarchy is hidden;
# the others do not use it). Writes the "nsoci vs runc and crun" section of bench/RESULTS.md
# (between its markers; the rest of the file is left as it is), with where the time goes (an
# strace summary, CPU per run, the cgroup.procs waits of each runtime), and prints it.
# `make bench` runs it; alone: `make bench-oci` or `bash bench/oci.sh` after `make build`.
# Knobs: NSCHAIN_BENCH_BIN (nsoci and the links, default target/release),
# NSCHAIN_BENCH_LAYOUT (multicall, the default when BIN has nschain, or per-tool),
# NSCHAIN_BENCH_OCI_RUNS (runs per runtime command, 60), NSCHAIN_BENCH_PODMAN_RUNS (12),
# NSCHAIN_BENCH_OUT (default bench/RESULTS.md).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
export BIN=${NSCHAIN_BENCH_BIN:-$REPO/target/release}
export RUNS=${NSCHAIN_BENCH_OCI_RUNS:-60}
export PODMAN_RUNS=${NSCHAIN_BENCH_PODMAN_RUNS:-12}
OUT=${NSCHAIN_BENCH_OUT:-$REPO/bench/RESULTS.md}

if [[ ${1:-} != --inside ]]; then
    [[ $(id -u) == 0 ]] || { echo "bench/oci.sh: must run as root" >&2; exit 1; }
    for p in hyperfine runc crun podman busybox strace python3 tar; do
        command -v "$p" >/dev/null || { echo "bench/oci.sh: $p is missing (make deps)" >&2; exit 1; }
    done
    [[ -x $BIN/nsoci && -x $BIN/mntns ]] || { echo "bench/oci.sh: $BIN/nsoci and its links are not built (make build)" >&2; exit 1; }
    export WORK
    WORK=$(mktemp -d /tmp/nschain-bench-oci.XXXXXX)
    trap 'rm -rf "$WORK"' EXIT
    # The installed layout (make install), as bench/run.sh: every tool a hard link to the
    # multi-call nschain, so that the links of a chain hand off in process; the per-tool
    # binaries `make build` also puts in target/release always exec.
    # NSCHAIN_BENCH_LAYOUT=per-tool measures those instead.
    export LAYOUT="per-tool binaries"
    if [[ -x $BIN/nschain && ${NSCHAIN_BENCH_LAYOUT:-multicall} == multicall ]]; then
        mkdir -p "$WORK/bin"
        cp "$BIN/nschain" "$WORK/bin/nschain"
        for t in tools/*/; do ln -f "$WORK/bin/nschain" "$WORK/bin/$(basename "$t")"; done
        LAYOUT="the installed layout: every tool a hard link to $BIN/nschain"
        BIN=$WORK/bin
    fi
    unshare --net --mount --propagation private bash "$0" --inside
    python3 bench/oci_report.py "$WORK" "$OUT"
    exit 0
fi

# --- inside the throwaway namespaces ------------------------------------------------------------
umount /sys/fs/cgroup/unified 2>/dev/null || true
ip link set lo up
log() { printf 'bench/oci.sh: %s\n' "$*" >&2; }
fact() { printf '%s=%s\n' "$1" "$2" >>"$WORK/facts"; }
chmod 755 "$WORK"
unset NSCHAIN_NAME NSCHAIN_DEBUG

ROOTFS=$WORK/rootfs
mkdir -p "$ROOTFS"/{bin,proc,dev,sys,tmp,etc,root,run}
cp "$(command -v busybox)" "$ROOTFS/bin/busybox"
for applet in $("$ROOTFS/bin/busybox" --list); do
    [[ $applet == busybox ]] || ln -s busybox "$ROOTFS/bin/$applet"
done
chmod 1777 "$ROOTFS/tmp"
BUNDLE=$WORK/bundle
mkdir -p "$BUNDLE"
(cd "$BUNDLE" && runc spec)
python3 - "$BUNDLE/config.json" "$ROOTFS" <<'EOF'
import json, sys
path, root = sys.argv[1], sys.argv[2]
c = json.load(open(path))
c["root"] = {"path": root, "readonly": True}
c["process"]["terminal"] = False
c["process"]["args"] = ["true"]
json.dump(c, open(path, "w"), indent=1)
EOF

NSOCI="$BIN/nsoci --root $WORK/nsoci-state run --bundle $BUNDLE bench"
RUNC="runc --root $WORK/runc-state run --bundle $BUNDLE bench"
CRUN="crun --root $WORK/crun-state run --bundle $BUNDLE bench"
PODMAN="podman --root $WORK/storage --runroot $WORK/runroot --storage-driver vfs --cgroup-manager=cgroupfs --events-backend=file"
export TMPDIR=$WORK
ARGS="run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 localhost/nschain-bench-oci:1 true"
tar -C "$ROOTFS" -cf "$WORK/image.tar" .
$PODMAN import -q "$WORK/image.tar" localhost/nschain-bench-oci:1 >/dev/null
P_NSOCI="$PODMAN --runtime $BIN/nsoci $ARGS"
P_RUNC="$PODMAN --runtime $(command -v runc) $ARGS"

# every command once, so that a failure is reported rather than timed
for cmd in "$NSOCI" "$RUNC" "$CRUN" "$P_NSOCI" "$P_RUNC"; do
    $cmd </dev/null >/dev/null 2>"$WORK/check.err" || {
        log "failed its check run: $cmd: $(head -3 "$WORK/check.err")"
        exit 1
    }
done

fact date "$(date -u '+%Y-%m-%d %H:%M UTC')"
fact commit "$(git -C "$REPO" log -1 --format='%h %s' 2>/dev/null || echo unknown)"
fact load "$(cut -d' ' -f1-3 /proc/loadavg)"
fact runs "$RUNS"
fact podman_runs "$PODMAN_RUNS"
fact versions "$(runc --version | head -1), $(crun --version | head -1), $(podman --version), $(hyperfine --version)"
fact nsoci "$(readlink -f "$BIN/nsoci") ($(stat -c %s "$BIN/nsoci") bytes, $(file -b "$BIN/nsoci" | grep -o 'static-pie linked\|dynamically linked\|statically linked' | head -1); $LAYOUT)"

# hf NAME RUNS LABEL CMD...: 4 rounds, the order reversed every other round (load that comes
# and goes falls on every command alike); one JSON per round
hf() {
    local name=$1 runs=$2 round
    shift 2
    local fwd=("$@") rev=() i
    for ((i = $# - 2; i >= 0; i -= 2)); do rev+=("${fwd[@]:i:2}"); done
    for round in 1 2 3 4; do
        local order=("${fwd[@]}")
        ((round % 2)) || order=("${rev[@]}")
        local named=() j
        for ((j = 0; j < ${#order[@]}; j += 2)); do named+=(-n "${order[j]}" "${order[j + 1]}"); done
        log "$name round $round"
        hyperfine -N --style basic --warmup 3 --runs $(((runs + 3) / 4)) \
            --export-json "$WORK/$name.r$round.json" "${named[@]}" >>"$WORK/hf.log" 2>&1
    done
}
hf runtimes "$RUNS" "nsoci run" "$NSOCI" "runc run" "$RUNC" "crun run" "$CRUN"
hf podman "$PODMAN_RUNS" "podman --runtime nsoci" "$P_NSOCI" "podman --runtime runc" "$P_RUNC"

# where the time goes: syscall time of one run of each (strace -f -c, every process)
for rt in nsoci runc crun; do
    case $rt in nsoci) cmd=$NSOCI ;; runc) cmd=$RUNC ;; crun) cmd=$CRUN ;; esac
    strace -f -c -S time -o "$WORK/strace-$rt.txt" $cmd >/dev/null 2>&1 || true
done
# CPU time per run (every process, perf stat): under load, wall time is mostly waiting for a CPU
if command -v perf >/dev/null; then
    for rt in nsoci runc crun; do
        case $rt in nsoci) cmd=$NSOCI ;; runc) cmd=$RUNC ;; crun) cmd=$CRUN ;; esac
        perf stat -r 30 -x, -e task-clock,page-faults,context-switches -o "$WORK/perf-$rt.csv" \
            $cmd >/dev/null 2>&1 || rm -f "$WORK/perf-$rt.csv"
    done
fi
# the first write to a v1 cgroup.procs waits for an RCU grace period (the kernel's
# cgroup_threadgroup_rwsem); every runtime pays it: its duration, 5 runs each
for rt in nsoci runc crun; do
    case $rt in nsoci) cmd=$NSOCI ;; runc) cmd=$RUNC ;; crun) cmd=$CRUN ;; esac
    for i in 1 2 3 4 5; do
        strace -f -y -T -e trace=write -o "$WORK/procs-$rt.$i.txt" $cmd >/dev/null 2>&1 || true
    done
done
