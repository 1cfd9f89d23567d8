#!/usr/bin/env bash
# make bench: nschain measured side by side with its anchors, in ONE run, on this machine.
#
# Writes bench/RESULTS.md and prints it. Every comparison is one hyperfine invocation, so the
# commands of a row are measured minutes apart at most, under the same load; report.py turns the
# JSON into medians, ratios and the targets of issue 8. A tool that is not built is reported as
# "not measured", never guessed. Sections:
#   1. each tool alone vs its util-linux unshare equivalent
#   2. the full rootful chain over a busybox root vs bwrap, crun, unshare and our floor
#   3. the rootless chain (uid 65534) vs bwrap rootless and the floor
#   4. bridge networking (netns --bridge) vs unshare -n and ip commands, in a throwaway netns
#   5. scale: N containers in bridge mode started at once (bench/scale.py)
#   6. binary sizes, pidns monitor/init memory, static vs dynamic exec, strace/perf profile
#   then bench/pull.sh: nsimage pull vs podman pull and skopeo copy + umoci unpack
#   then bench/oci.sh: nsoci run vs runc/crun run, podman with nsoci vs runc (alone: make bench-oci)
#
# Knobs: NSCHAIN_BENCH_RUNS (runs per command, 200), NSCHAIN_BENCH_WARMUP (20),
# NSCHAIN_BENCH_ROUNDS (the runs are split into that many alternating rounds, 4),
# NSCHAIN_BENCH_SCALE (containers in section 5, 1000; 0 skips it), NSCHAIN_BENCH_STATIC=0 skips
# the static build, NSCHAIN_BENCH_BIN (binaries, default target/release),
# NSCHAIN_BENCH_LAYOUT=per-tool (the per-tool binaries, not hard links to nschain),
# NSCHAIN_BENCH_OUT (default bench/RESULTS.md), NSCHAIN_BENCH_QUIET=SECONDS (wait that long at
# most for a quiet machine), NSCHAIN_BENCH_KEEP=1 (keep the work directory),
# NSCHAIN_BENCH_RUNS_ON (the tmpfs for the chains' run-time state, /dev/shm).
# Needs root (rootful rows; rootless rows switch to uid 65534 with setpriv). Never touches the
# host's interfaces or firewall: every network row runs in a network namespace made here.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# With RUST_BACKTRACE set, an anyhow error made on a normal path captures a backtrace (the
# first capture sorts the binary's unwind tables): measure what a user gets by default.
unset RUST_BACKTRACE RUST_LIB_BACKTRACE
REPO=$PWD
BIN=${NSCHAIN_BENCH_BIN:-$REPO/target/release}
RUNS=${NSCHAIN_BENCH_RUNS:-200}
WARMUP=${NSCHAIN_BENCH_WARMUP:-20}
ROUNDS=${NSCHAIN_BENCH_ROUNDS:-4}
SCALE=${NSCHAIN_BENCH_SCALE:-1000}
OUT=${NSCHAIN_BENCH_OUT:-$REPO/bench/RESULTS.md}
TOOLS=(utsns ipcns netns pidns mntns userns timens cgroupns)
NOBODY=(setpriv --reuid 65534 --regid 65534 --clear-groups)

if [[ $(id -u) != 0 ]]; then
    echo "bench: must run as root (the rootless rows switch to uid 65534 themselves)" >&2
    exit 1
fi
for prog in hyperfine python3 unshare bwrap crun busybox setpriv strace; do
    command -v "$prog" >/dev/null || { echo "bench: $prog is missing (make deps)" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/nschain-bench.XXXXXX)
# The chains' run-time state on a tmpfs, as installed (/run and $XDG_RUNTIME_DIR are tmpfs on
# Debian; where /run is a disk filesystem, each registration's inodes cost milliseconds).
RUN=$(mktemp -d "${NSCHAIN_BENCH_RUNS_ON:-/dev/shm}/nschain-bench-run.XXXXXX")
chmod 755 "$WORK" "$RUN"
DATA=$WORK/data
mkdir -p "$DATA" "$RUN/run" "$WORK/state" "$RUN/run-nobody" "$WORK/state-nobody"
chown 65534:65534 "$RUN/run-nobody" "$WORK/state-nobody"
export NSCHAIN_RUN_DIR=$RUN/run NSCHAIN_DATA_DIR=$WORK/state
# The installed layout (make install): every tool a hard link to the multi-call nschain, so
# that the links of a chain hand off in process; the per-tool binaries `make build` also puts
# in target/release always exec. NSCHAIN_BENCH_LAYOUT=per-tool measures those instead.
if [[ -x $BIN/nschain && ${NSCHAIN_BENCH_LAYOUT:-multicall} == multicall ]]; then
    mkdir -p "$WORK/bin"
    cp "$BIN/nschain" "$WORK/bin/nschain"
    for t in "${TOOLS[@]}" nsps nsoci nsimage; do ln -f "$WORK/bin/nschain" "$WORK/bin/$t"; done
    [[ -x $BIN/nschain-floor ]] && cp "$BIN/nschain-floor" "$WORK/bin/"
    BIN=$WORK/bin
fi
unset NSCHAIN_NAME NSCHAIN_DEBUG

cleanup() {
    local pids
    pids=$(jobs -p) || true
    [[ -n $pids ]] && kill $pids 2>/dev/null
    # Mounts made by an interrupted row live in namespaces that die with their processes;
    # only plain files remain here.
    if [[ -n ${NSCHAIN_BENCH_KEEP:-} ]]; then echo "bench: kept $WORK $RUN" >&2; else rm -rf "$WORK" "$RUN" 2>/dev/null || true; fi
}
trap cleanup EXIT

log() { printf 'bench: %s\n' "$*" >&2; }
# section N TITLE: logs it and records the load average before it
section() { log "$1. $2"; fact "load_section_$1" "$(cut -d' ' -f1 /proc/loadavg)"; }
# fact KEY VALUE: a figure for report.py
fact() { printf '%s\t%s\n' "$1" "$2" >>"$DATA/facts.tsv"; }
# text NAME < file: a verbatim block for report.py
text() { cat >"$DATA/text-$1.txt"; }
have() { [[ -x $BIN/$1 ]]; }
missing_tools() {
    local t out=()
    for t in "$@"; do have "$t" || out+=("$t"); done
    echo "${out[*]}"
}

fact machine "$(nproc) cpus, $(uname -sr), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
fact versions "$(hyperfine --version), $(unshare --version | sed 's/.*from //'), $(bwrap --version), $(crun --version | head -1), busybox $(busybox | head -1 | awk '{print $2}'), rustc $(rustc --version 2>/dev/null | awk '{print $2}')"
fact commit "$(git -C "$REPO" log -1 --format='%h %s' 2>/dev/null || echo unknown)"
# NSCHAIN_BENCH_QUIET=SECONDS: wait up to that long for the 1-minute load average to fall
# below 1 before measuring (other work on the machine inflates every wall time)
quiet=${NSCHAIN_BENCH_QUIET:-0}
while ((quiet > 0)) && awk '{exit !($1 >= 1.0)}' /proc/loadavg; do
    sleep 5
    quiet=$((quiet - 5))
done
fact started "$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
fact load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
fact runs "$RUNS"
fact warmup "$WARMUP"
fact rounds "$ROUNDS"
fact tools_present "$(for t in "${TOOLS[@]}"; do have "$t" && printf '%s ' "$t"; done)"
fact tools_missing "$(missing_tools "${TOOLS[@]}")"

# --- one comparison -----------------------------------------------------------------------------
# hf GROUP LABEL CMD [LABEL CMD]... : checks each command once (a failing one is reported, not
# timed), then times the rest in ONE hyperfine run (-N: no shell in between). HF_WRAP, when set,
# is a command prefix the whole run executes under (a throwaway namespace).
HF_WRAP=()
hf() {
    local group=$1 label cmd err rc
    shift
    local args=()
    while (($#)); do
        label=$1 cmd=$2
        shift 2
        rc=0
        err=$("${HF_WRAP[@]}" timeout 30 bash -c "exec $cmd" </dev/null 2>&1 >/dev/null) || rc=$?
        if ((rc == 0)); then
            args+=(-n "$label" "$cmd")
            printf '%s\t%s\t%s\tok\t\n' "$group" "$label" "$cmd" >>"$DATA/rows.tsv"
        else
            err=$(printf '%s' "$err" | tr '\n\t' '  ' | cut -c1-300)
            printf '%s\t%s\t%s\tfailed\t%s\n' "$group" "$label" "$cmd" "exit $rc: ${err:-no message}" >>"$DATA/rows.tsv"
            log "$group/$label failed its check run: $err"
        fi
    done
    ((${#args[@]})) || return 0
    # ROUNDS rounds of RUNS/ROUNDS runs each, the order of the commands reversed every other
    # round: load that comes and goes (other work on the machine, the kernel's asynchronous
    # namespace teardown left by the previous command) falls on every command alike.
    local round per=$(( (RUNS + ROUNDS - 1) / ROUNDS )) n=$(( ${#args[@]} / 3 )) i ordered
    log "timing $group: $n commands x $RUNS runs ($ROUNDS rounds)"
    for ((round = 1; round <= ROUNDS; round++)); do
        ordered=()
        for ((i = 0; i < n; i++)); do
            local j=$(( round % 2 ? i : n - 1 - i ))
            ordered+=("${args[@]:$((3 * j)):3}")
        done
        if ! "${HF_WRAP[@]}" hyperfine -N --style basic --warmup "$(( round == 1 ? WARMUP : WARMUP / 2 ))" \
            --runs "$per" --export-json "$DATA/hf-$group.r$round.json" "${ordered[@]}" \
            >>"$DATA/hf-$group.log" 2>&1; then
            log "$group: hyperfine failed: $(tail -3 "$DATA/hf-$group.log")"
            printf '%s\t*\t\tfailed\thyperfine: %s\n' "$group" "$(tail -1 "$DATA/hf-$group.log" | tr '\t' ' ')" >>"$DATA/rows.tsv"
            rm -f "$DATA/hf-$group".r*.json
            return 0
        fi
    done
}
# missing GROUP LABEL CMD REASON: a row that cannot be measured
missing() { printf '%s\t%s\t%s\tmissing\t%s\n' "$1" "$2" "$3" "$4" >>"$DATA/rows.tsv"; }
# row GROUP LABEL CMD TOOLS...: hf arguments if every tool is built, else a "missing" row
ROW=()
row() {
    local group=$1 label=$2 cmd=$3
    shift 3
    local absent
    absent=$(missing_tools "$@")
    if [[ -n $absent ]]; then
        missing "$group" "$label" "$cmd" "$absent"
    else
        ROW+=("$label" "$cmd")
    fi
}
# help_has TOOL FLAG: whether TOOL's --help mentions FLAG
help_has() { have "$1" && "$BIN/$1" --help 2>/dev/null | grep -q -e "$2"; }

# --- a busybox root and an OCI bundle over it ----------------------------------------------------
ROOTFS=$WORK/rootfs
mkdir -p "$ROOTFS"/{bin,proc,dev,sys,tmp,etc,root,run}
cp "$(command -v busybox)" "$ROOTFS/bin/busybox"
for applet in $("$ROOTFS/bin/busybox" --list); do
    [[ $applet == busybox ]] || ln -s busybox "$ROOTFS/bin/$applet"
done
chmod 1777 "$ROOTFS/tmp"

BUNDLE=$WORK/bundle
mkdir -p "$BUNDLE" "$WORK/crun-state"
(cd "$BUNDLE" && crun spec)
python3 - "$BUNDLE/config.json" "$ROOTFS" <<'EOF'
import json, sys
path, root = sys.argv[1], sys.argv[2]
c = json.load(open(path))
c["root"] = {"path": root, "readonly": False}
c["hostname"] = "b"
p = c["process"]
p["terminal"] = False
p["args"] = ["/bin/true"]
# same namespaces as the chain: pid ipc uts mount network + user (root mapped to root)
c["linux"]["namespaces"].append({"type": "user"})
c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 1}]
c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 1}]
c["linux"].pop("resources", None)          # no cgroup manager on this machine
mounts = []
for m in c["mounts"]:
    if m["destination"] == "/sys/fs/cgroup":
        continue                            # no cgroup namespace in the chain either
    if m["type"] == "devpts":               # gid 5 is not mapped in a one-id user namespace
        m["options"] = [o for o in m["options"] if not o.startswith("gid=")]
    mounts.append(m)
c["mounts"] = mounts
json.dump(c, open(path, "w"), indent=1)
EOF
# crun 1.8 refuses cgroup v1/v2 hybrid hosts ("drop all controllers from cgroupv2") even with
# --cgroup-manager=disabled: rows with crun run in a private mount namespace without the
# unified hierarchy, which changes nothing for the other commands of the row.
CRUN_WRAP=(unshare -m --propagation private sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"' sh)
CRUN="crun --root $WORK/crun-state --cgroup-manager=disabled run --bundle $BUNDLE nschain-bench"

FLOOR=$BIN/nschain-floor
[[ -x $FLOOR ]] || FLOOR=""

# --- static builds (for the static-vs-dynamic rows) ------------------------------------------
# The same tools linked with crt-static, in their own target dir (target/bench-static): every
# tool that is built, else utsns alone. Never used for the headline rows.
STATIC=""
STATIC_ALL=no
if [[ ${NSCHAIN_BENCH_STATIC:-1} != 0 ]] && have utsns; then
    static_pkgs=()
    for t in "${TOOLS[@]}"; do have "$t" && static_pkgs+=(-p "$t"); done
    log "building static binaries (${static_pkgs[*]}) in target/bench-static"
    static_build() {
        RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$REPO/target/bench-static" \
            cargo build --release --quiet "$@" --target x86_64-unknown-linux-gnu 2>"$DATA/static-build.log"
    }
    if static_build "${static_pkgs[@]}"; then
        STATIC=$REPO/target/bench-static/x86_64-unknown-linux-gnu/release
        [[ ${#static_pkgs[@]} == $((2 * ${#TOOLS[@]})) ]] && STATIC_ALL=yes
    elif static_build -p utsns; then
        STATIC=$REPO/target/bench-static/x86_64-unknown-linux-gnu/release
    else
        fact static_failed "$(tail -3 "$DATA/static-build.log" | tr '\n\t' '  ')"
    fi
fi

# --- 1. each tool alone vs its unshare equivalent ----------------------------------------------
section 1 "tools alone"
ROW=(); row tool-utsns "utsns true" "$BIN/utsns true" utsns
hf tool-utsns "${ROW[@]}" "unshare -u true" "unshare -u true"
ROW=(); row tool-ipcns "ipcns true" "$BIN/ipcns true" ipcns
hf tool-ipcns "${ROW[@]}" "unshare -i true" "unshare -i true"
ROW=(); row tool-netns "netns true" "$BIN/netns true" netns
hf tool-netns "${ROW[@]}" "unshare -n true" "unshare -n true" \
    "unshare -n ip link set lo up" "unshare -n ip link set lo up"
ROW=(); row tool-pidns "pidns true" "$BIN/pidns true" pidns
help_has pidns --no-init && row tool-pidns "pidns --no-init true" "$BIN/pidns --no-init true" pidns
hf tool-pidns "${ROW[@]}" "unshare -pf true" "unshare -pf true"
ROW=(); row tool-mntns "mntns true" "$BIN/mntns true" mntns
hf tool-mntns "${ROW[@]}" "unshare -m true" "unshare -m true"
ROW=(); row tool-userns "userns --map-root true (uid 65534)" "${NOBODY[*]} $BIN/userns --map-root true" userns
hf tool-userns "${ROW[@]}" "unshare -Ur true (uid 65534)" "${NOBODY[*]} unshare -Ur true" \
    "setpriv alone (uid 65534)" "${NOBODY[*]} true"
ROW=(); row tool-timens "timens true" "$BIN/timens true" timens
row tool-timens "timens --boottime 1000 true" "$BIN/timens --boottime 1000 true" timens
# --join registers nothing: the difference is what the chain's registration costs
row tool-timens "timens --join (registers nothing)" "$BIN/timens --join /proc/self/ns/time true" timens
hf tool-timens "${ROW[@]}" "unshare -T true" "unshare -T true" \
    "unshare -T --boottime 1000 true" "unshare -T --boottime 1000 true"
ROW=(); row tool-cgroupns "cgroupns true" "$BIN/cgroupns true" cgroupns
row tool-cgroupns "cgroupns --join (registers nothing)" "$BIN/cgroupns --join /proc/self/ns/cgroup true" cgroupns
hf tool-cgroupns "${ROW[@]}" "unshare -C true" "unshare -C true"
# the cost of limits: the chain's cgroup made in every hierarchy, the limits written, the
# process moved in and its watcher spawned (the watcher removes the cgroup after each run, in
# the background); against the same by hand: mkdir, limits, move, rmdir in a shell
LIMITS="--memory 64m --pids-limit 64 --cpus 0.5"
if have cgroupns; then
    # the v1 work by hand (this host's layout), for orientation
    cat >"$WORK/limits-by-hand.sh" <<'EOF'
m=/sys/fs/cgroup/memory$(awk -F: '$2 == "memory" {print $3}' /proc/self/cgroup)/nschain-bench-hand
p=/sys/fs/cgroup/pids/nschain-bench-hand c=/sys/fs/cgroup/cpu/nschain-bench-hand
mkdir "$m" "$p" "$c"
echo 67108864 >"$m/memory.limit_in_bytes"; echo 64 >"$p/pids.max"; echo 50000 >"$c/cpu.cfs_quota_us"
sh -c 'for d in "$@"; do echo $$ >"$d/cgroup.procs"; done; exec true' sh "$m" "$p" "$c"
rmdir "$m" "$p" "$c"
EOF
    ROW=("cgroupns true (namespace only)" "$BIN/cgroupns true" "cgroupns $LIMITS true" "$BIN/cgroupns $LIMITS true")
    [[ -d /sys/fs/cgroup/pids && -d /sys/fs/cgroup/cpu ]] &&
        ROW+=("by hand: sh mkdir, 3 limits, move, rmdir (v1)" "sh $WORK/limits-by-hand.sh")
    hf limits "${ROW[@]}"
else
    missing limits "cgroupns $LIMITS true" "" cgroupns
fi

# the price of one link: chains of k `utsns --` links (each unshares a UTS namespace, the
# cheapest setup there is), dynamic and static; the slope is what one more exec'd link costs
if have utsns; then
    links() { local bin=$1 k=$2 out=""; for _ in $(seq "$k"); do out+="$bin/utsns -- "; done; echo "$out/bin/true"; }
    ROW=("/bin/true alone" "/bin/true" "1 link: utsns -- true" "$(links "$BIN" 1)" "6 links: utsns -- ×6 true" "$(links "$BIN" 6)")
    [[ -n $STATIC ]] && ROW+=("1 static link" "$(links "$STATIC" 1)" "6 static links" "$(links "$STATIC" 6)")
    hf links "${ROW[@]}"
fi

# --- 2. the full rootful chain ------------------------------------------------------------------
section 2 "rootful chain"
CHAIN="$BIN/netns -- $BIN/userns --map-root -- $BIN/ipcns -- $BIN/utsns --hostname b -- $BIN/pidns -- $BIN/mntns --rootfs $ROOTFS -- /bin/true"
fact chain_rootful "$CHAIN"
fact floor_present "$([[ -n $FLOOR ]] && echo yes || echo no)"
ROW=()
row chain "nschain chain" "$CHAIN" netns userns ipcns utsns pidns mntns
if [[ -z $(missing_tools netns userns ipcns utsns pidns mntns) ]]; then
    # variants, to show where the time goes (not the shipped build or the default chain)
    help_has pidns --no-init &&
        ROW+=("variant: chain with pidns --no-init" "${CHAIN/$BIN\/pidns --/$BIN/pidns --no-init --}")
    if [[ $STATIC_ALL == yes ]]; then
        ROW+=("variant: chain of static binaries" "${CHAIN//$BIN\//$STATIC/}")
        if help_has pidns --no-init; then
            noinit=${CHAIN/$BIN\/pidns --/$BIN/pidns --no-init --}
            ROW+=("variant: static binaries and pidns --no-init" "${noinit//$BIN\//$STATIC/}")
        fi
    fi
fi
row_bwrap="bwrap --unshare-all --hostname b --bind $ROOTFS / --proc /proc --dev /dev /bin/true"
if [[ -n $FLOOR ]]; then ROW+=("floor" "$FLOOR $ROOTFS /bin/true"); else missing chain floor "" "nschain-floor not built"; fi
HF_WRAP=("${CRUN_WRAP[@]}")
hf chain "${ROW[@]}" \
    "bwrap --unshare-all" "$row_bwrap" \
    "crun run" "$CRUN" \
    "unshare -muinpU -f --mount-proc" "unshare -muinpU -f --mount-proc true"
HF_WRAP=()
# the same chain bounded: cgroupns with limits after netns (rule 8: before userns and pidns)
if [[ -z $(missing_tools netns userns ipcns utsns pidns mntns cgroupns) ]]; then
    hf chain-limits "nschain chain" "$CHAIN" \
        "chain with cgroupns --memory 64m --pids-limit 64 --cpus 0.5" \
        "${CHAIN/$BIN\/netns --/$BIN/netns -- $BIN/cgroupns --memory 64m --pids-limit 64 --cpus 0.5 --}"
else
    missing chain-limits "chain with cgroupns limits" "" "$(missing_tools netns userns ipcns utsns pidns mntns cgroupns)"
fi
# what exists of the chain, for orientation while tools are missing
partial=() partial_names=()
for t in netns userns ipcns utsns pidns; do
    have "$t" || continue
    case $t in
        userns) partial+=("$BIN/userns --map-root --") ;;
        utsns) partial+=("$BIN/utsns --hostname b --") ;;
        *) partial+=("$BIN/$t --") ;;
    esac
    partial_names+=("$t")
done
if [[ -n $(missing_tools netns userns ipcns utsns pidns mntns) && ${#partial[@]} -gt 0 ]]; then
    hf chain-partial "partial chain: ${partial_names[*]}" "${partial[*]} true" \
        "unshare with the same namespaces" "unshare -f -$(for t in "${partial_names[@]}"; do
            case $t in netns) printf n ;; userns) printf Ur ;; ipcns) printf i ;; utsns) printf u ;; pidns) printf p ;; esac
        done) true"
fi

# --- 3. the rootless chain ----------------------------------------------------------------------
section 3 "rootless chain"
CHAIN_NOBODY="$BIN/userns --map-root -- $BIN/netns -- $BIN/ipcns -- $BIN/utsns --hostname b -- $BIN/pidns -- $BIN/mntns --rootfs $ROOTFS -- /bin/true"
fact chain_rootless "${NOBODY[*]} $CHAIN_NOBODY"
ROW=()
row rootless "nschain chain (uid 65534)" "${NOBODY[*]} $CHAIN_NOBODY" userns netns ipcns utsns pidns mntns
[[ -n $FLOOR ]] && ROW+=("floor (uid 65534)" "${NOBODY[*]} $FLOOR $ROOTFS /bin/true")
# uid 65534's own state directories for the whole table (the other rows ignore them): an
# `env` in the chain's command would be one more exec in its row only.
NSCHAIN_RUN_DIR=$RUN/run-nobody NSCHAIN_DATA_DIR=$WORK/state-nobody hf rootless "${ROW[@]}" \
    "bwrap --unshare-all --unshare-user (uid 65534)" "${NOBODY[*]} bwrap --unshare-all --unshare-user --hostname b --bind $ROOTFS / --proc /proc --dev /dev /bin/true" \
    "unshare -Urmuinp -f --mount-proc (uid 65534)" "${NOBODY[*]} unshare -Urmuinp -f --mount-proc true"

# --- 4. bridge networking, in a throwaway "host" network namespace ---------------------------------
section 4 "bridge networking"
# Everything of this row runs in a new network and mount namespace: the bridge, the veths, the
# nft table and /run/netns of the ip script exist only there and die with it.
NETHOST=(unshare -n -m --propagation private sh -c 'ip link set lo up && mount -t tmpfs tmpfs /run && exec "$@"' sh)
cat >"$WORK/ip-bridge.sh" <<'EOF'
#!/bin/sh
# What netns --bridge does, with ip commands: a netns, a veth into it, the bridge, an address,
# lo up, a default route, the command, then the cleanup. Bridge created once (first run).
set -e
n=c$$
ip link show nsbip0 >/dev/null 2>&1 || {
    ip link add nsbip0 type bridge && ip addr add 10.231.0.1/16 dev nsbip0 && ip link set nsbip0 up
}
ip netns add $n
ip link add v$n type veth peer name eth0 netns $n
ip link set v$n master nsbip0 up
ip -n $n addr add 10.231.$(($$ % 250 + 1)).$(($$ / 250 % 250 + 2))/16 dev eth0
ip -n $n link set eth0 up
ip -n $n link set lo up
ip -n $n route add default via 10.231.0.1
ip netns exec $n true
ip netns del $n
EOF
chmod 755 "$WORK/ip-bridge.sh"
ROW=()
if help_has netns --bridge; then
    row bridge "netns --bridge true" "$BIN/netns --bridge=nsbench0 true" netns
else
    missing bridge "netns --bridge true" "netns --bridge=nsbench0 true" \
        "$(have netns && echo 'netns has no --bridge yet' || echo 'not built: netns')"
fi
row bridge "netns true (lo up only)" "$BIN/netns true" netns
HF_WRAP=("${NETHOST[@]}")
hf bridge "${ROW[@]}" \
    "unshare -n true" "unshare -n true" \
    "ip commands (sh script)" "$WORK/ip-bridge.sh" \
    "sh -c true (the script's shell alone)" "sh -c true"
HF_WRAP=()
if [[ -f bench/netns-setup.sh ]] && have netns; then
    log "bench/netns-setup.sh"
    { timeout 300 env RUNS="$RUNS" bash bench/netns-setup.sh "$BIN/netns" 2>/dev/null || echo "(exit $?)"; } | text netns-setup
fi

# --- 6. sizes, memory, static vs dynamic, profile -------------------------------------------------
section 6 "sizes, memory, static exec, profile"
for t in "${TOOLS[@]}" nsps nschain-floor; do
    [[ -x $BIN/$t ]] && fact "size_$t" "$(stat -c %s "$BIN/$t") $(file -b "$BIN/$t" | grep -o 'not stripped\|stripped' | head -1)"
done
fact size_ref_busybox "$(stat -c %s "$(command -v busybox)")"
fact size_ref_bwrap "$(stat -c %s "$(command -v bwrap)")"
fact size_ref_crun "$(stat -c %s "$(command -v crun)")"
fact size_ref_unshare "$(stat -c %s "$(command -v unshare)")"

# pidns monitor and init: resident memory while the payload sleeps
if have pidns; then
    "$BIN/pidns" -- sleep 1000 &
    monitor=$!
    for _ in $(seq 100); do
        init=$(cat /proc/$monitor/task/$monitor/children 2>/dev/null | awk '{print $1}')
        payload=""
        [[ -n $init ]] && payload=$(cat /proc/$init/task/$init/children 2>/dev/null | awk '{print $1}')
        [[ -n $payload ]] && break
        sleep 0.05
    done
    for role in monitor init payload; do
        pid=${!role}
        [[ -n $pid && -r /proc/$pid/smaps_rollup ]] || continue
        fact "mem_pidns_$role" "$(awk '/^Rss:/ {r=$2} /^Pss:/ {p=$2} END {print r, p}' /proc/$pid/smaps_rollup) $(cat /proc/$pid/comm)"
    done
    # TERM is what a user sends; KILL of the monitor also ends the container (pidns --help)
    kill -TERM "$monitor" 2>/dev/null || true
    for _ in $(seq 40); do kill -0 "$monitor" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$monitor" 2>/dev/null; then
        fact mem_pidns_note "SIGTERM to the monitor did not end \`pidns -- sleep\` within 2 s (SIGKILL used)"
        kill -KILL "$monitor" 2>/dev/null || true
    fi
    wait "$monitor" 2>/dev/null || true
fi
if [[ -f bench/pidns-rss.sh ]] && have pidns; then
    log "bench/pidns-rss.sh"
    { timeout 120 env PIDNS="$BIN/pidns" bash bench/pidns-rss.sh 2>&1 || echo "(exit $?)"; } | text pidns-rss
fi

# static vs dynamic: the same utsns, linked with crt-static (built at the start)
if [[ -n $STATIC ]]; then
    fact size_utsns_static "$(stat -c %s "$STATIC/utsns") $(file -b "$STATIC/utsns" | grep -o 'static-pie linked\|statically linked' | head -1)"
    hf static "utsns (static)" "$STATIC/utsns true" "utsns (dynamic)" "$BIN/utsns true"
    # the exec of a static program vs a dynamic one, nothing else: busybox vs coreutils
    hf static-true "busybox true (static)" "$ROOTFS/bin/busybox true" "/bin/true (dynamic)" "/bin/true"
fi

# where the chain's time goes: per-link step trace, syscall counts, page faults
if [[ -z $(missing_tools netns userns ipcns utsns pidns mntns) ]]; then
    for _ in 1 2 3; do
        NSCHAIN_DEBUG=1 $CHAIN 2>&1 | head -80 | text debug-chain || true
        grep -q 'exec /bin/true' "$DATA/text-debug-chain.txt" && break
    done
    strace -f -c -S calls -o "$DATA/strace-chain.txt" $CHAIN >/dev/null 2>&1 || true
    strace -f -c -S calls -o "$DATA/strace-bwrap.txt" $row_bwrap >/dev/null 2>&1 || true
    [[ -n $FLOOR ]] && { strace -f -c -S calls -o "$DATA/strace-floor.txt" $FLOOR "$ROOTFS" /bin/true >/dev/null 2>&1 || true; }
    strace -f -o "$DATA/strace-chain-full.txt" $CHAIN >/dev/null 2>&1 || true
    # kernel log lines a chain run makes (a printk to the console is slow, and noise): between
    # two markers written to /dev/kmsg (the ring buffer is full, counting lines would not do)
    marker="nschain-bench-$$-$RANDOM"
    if echo "$marker start" >/dev/kmsg 2>/dev/null; then
        for _ in $(seq 20); do $CHAIN >/dev/null 2>&1 || true; done
        echo "$marker end" >/dev/kmsg
        dmesg 2>/dev/null | sed -n "/$marker start/,/$marker end/p" | grep -v "$marker" >"$WORK/kmsg" || true
        fact kmsg_per_chain "$(awk 'END {printf "%.1f", NR / 20}' "$WORK/kmsg")"
        sed 's/^\[[ 0-9.]*\] //' "$WORK/kmsg" | sort | uniq -c | sort -rn | head -5 | text kmsg-chain
    fi
    if command -v perf >/dev/null; then
        # where the CPU goes over 100 chain runs: per program, per symbol (kernel and user)
        for _ in $(seq 100); do echo "$CHAIN"; done >"$WORK/loop.sh"
        if perf record -q -o "$WORK/perf.data" -g -- bash "$WORK/loop.sh" >/dev/null 2>&1; then
            perf report -i "$WORK/perf.data" --no-children --sort comm,dso --stdio -g none 2>/dev/null \
                | grep -v '^#' | grep -v '^$' | head -20 | text perf-dso || true
            perf report -i "$WORK/perf.data" --no-children --sort comm,sym --stdio -g none 2>/dev/null \
                | grep -v '^#' | grep -v '^$' | head -30 | text perf-sym || true
            perf report -i "$WORK/perf.data" --children --sort sym --stdio -g none 2>/dev/null \
                | grep -v '^#' | grep -v '^$' | grep '\[k\]' | head -30 | text perf-kernel-children || true
        fi
        for name in chain bwrap floor; do
            case $name in
                chain) cmd=$CHAIN ;;
                bwrap) cmd=$row_bwrap ;;
                floor) [[ -n $FLOOR ]] || continue; cmd="$FLOOR $ROOTFS /bin/true" ;;
            esac
            perf stat -r 50 -x, -e task-clock,page-faults,context-switches,cpu-migrations \
                -o "$DATA/perf-$name.csv" $cmd >/dev/null 2>&1 || rm -f "$DATA/perf-$name.csv"
        done
    fi
fi

# --- 5. scale (run last: the teardown of 1000 namespaces keeps the kernel busy a while) ------
if ((SCALE > 0)); then
    section 5 "scale: $SCALE containers"
    if help_has netns --bridge; then
        scale_chain=("$BIN/netns" --bridge=nsscale0 --)
        have userns && scale_chain+=("$BIN/userns" --map-root --)
        have ipcns && scale_chain+=("$BIN/ipcns" --)
        have utsns && scale_chain+=("$BIN/utsns" --hostname c --)
        have pidns && scale_chain+=("$BIN/pidns" --)
        have mntns && scale_chain+=("$BIN/mntns" --rootfs "$ROOTFS" --)
        fact scale_chain "${scale_chain[*]} /bin/sh -c 'echo up; exec sleep 1000'"
        # The run dir on the throwaway /run tmpfs, as installed (/run/nschain): on the ext4
        # of $WORK, inode creation of the lease and registration files was half of netns's time.
        "${NETHOST[@]}" env NSCHAIN_RUN_DIR=/run/nschain-scale NSCHAIN_DATA_DIR="$WORK/state-scale" \
            python3 bench/scale.py "$SCALE" "$DATA/scale.json" "${scale_chain[@]}" \
            || log "scale.py failed (exit $?)"
    else
        fact scale_skipped "$(have netns && echo 'netns has no --bridge yet' || echo 'not built: netns')"
    fi
fi

fact load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
fact finished "$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
python3 bench/report.py "$DATA" "$OUT"
# Image pull (issue 16): its own section of $OUT, written by bench/pull.sh.
for fs in disk ext4 tmpfs; do
    NSCHAIN_BENCH_BIN=$BIN NSCHAIN_BENCH_OUT=$OUT NSCHAIN_BENCH_PULL_FS=$fs bash bench/pull.sh >/dev/null ||
        log "bench/pull.sh ($fs) failed (exit $?)"
done
# nsoci vs runc and crun, podman with either (issue 17): its own section, bench/oci.sh.
NSCHAIN_BENCH_BIN=$BIN NSCHAIN_BENCH_OUT=$OUT bash bench/oci.sh >/dev/null || log "bench/oci.sh failed (exit $?)"
cat "$OUT"
