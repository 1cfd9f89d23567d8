#!/usr/bin/env bash
# bench/pull.sh: `nsimage pull` (fetch, verify, unpack) vs `podman pull` and `skopeo copy` +
# `umoci unpack` of the same images from the same local registry (Debian's docker-registry on
# 127.0.0.1 in a throwaway network namespace), side by side in one hyperfine run per image,
# each store emptied before every run. Writes the "Image pull" section of bench/RESULTS.md
# (between its markers; the rest of the file is left as it is) and prints it.
#
# Images (built from this machine's files, gzip layers): small = busybox-static alone (1 layer,
# ~1 MiB); big = busybox + /usr/lib/python3.11 + /usr/share/perl (3 layers, ~20 MiB gzip).
# Knobs: NSCHAIN_BENCH_BIN (default target/release), NSCHAIN_BENCH_PULL_RUNS (default 5),
# NSCHAIN_BENCH_OUT (default bench/RESULTS.md), NSCHAIN_BENCH_PULL_FS: where the three stores
# live, each its own section of RESULTS.md: `disk` (default; /var/tmp's filesystem as it is),
# `tmpfs` (what the tools do, without any disk's allocator), `ext4` (a fresh journaled ext4 on
# a loop file: a user's ordinary disk, free of this machine's history of deleted files).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
export BIN=${NSCHAIN_BENCH_BIN:-$REPO/target/release}
export RUNS=${NSCHAIN_BENCH_PULL_RUNS:-5}
export FS=${NSCHAIN_BENCH_PULL_FS:-disk}
case $FS in disk | tmpfs | ext4) ;; *) echo "bench/pull.sh: NSCHAIN_BENCH_PULL_FS must be disk, tmpfs or ext4, not $FS" >&2; exit 1 ;; esac
OUT=${NSCHAIN_BENCH_OUT:-$REPO/bench/RESULTS.md}

if [[ ${1:-} != --inside ]]; then
    [[ $(id -u) == 0 ]] || { echo "bench/pull.sh: must run as root" >&2; exit 1; }
    for p in hyperfine docker-registry skopeo podman umoci python3 curl; do
        command -v "$p" >/dev/null || { echo "bench/pull.sh: $p is missing (make deps)" >&2; exit 1; }
    done
    [[ -x $BIN/nsimage ]] || { echo "bench/pull.sh: $BIN/nsimage is not built" >&2; exit 1; }
    export WORK
    WORK=$(mktemp -d /var/tmp/nschain-bench-pull.XXXXXX)
    trap 'rm -rf "$WORK"' EXIT
    unshare --net --mount --propagation private --pid --fork --mount-proc \
        bash "$0" --inside
    python3 - "$WORK" "$OUT" "$FS" <<'PY'
import json, os, sys
work, out, fs = sys.argv[1], sys.argv[2], sys.argv[3]
tag = "" if fs == "disk" else " " + fs
begin, finish = f"<!-- bench/pull.sh{tag} -->", f"<!-- /bench/pull.sh{tag} -->"
where = {"disk": ")", "tmpfs": ", stores on a tmpfs)", "ext4": ", stores on a fresh ext4)"}[fs]
facts = dict(l.rstrip("\n").split("=", 1) for l in open(os.path.join(work, "facts")))
rows, targets = [], []
for image in ("small", "big"):
    res = json.load(open(os.path.join(work, f"{image}.json")))["results"]
    med = {r["command"].split()[0].rsplit("/", 1)[-1]: sorted(r["times"])[len(r["times"]) // 2] for r in res}
    ns, pod, sk = med["nsimage"], med["podman"], med["bash"]
    rows.append(f"| {image} ({facts[image + '_size']}) | **{ns*1000:.0f} ms** | {pod*1000:.0f} ms | {sk*1000:.0f} ms | **{ns/pod:.2f}** | {ns/sk:.2f} |")
    targets.append(f"| nsimage pull {image} ≤ 0.3 × podman pull | {ns*1000:.0f} / {pod*1000:.0f} ms = **{ns/pod:.2f}** | ≤ 0.30 | {'met' if ns/pod <= 0.3 else '**NOT met**'} |")
section = "\n".join([
    begin,
    "## Image pull (bench/pull.sh" + where,
    "",
    f"Run {facts['date']}, commit `{facts['commit']}`, load average at the start {facts['load']}; "
    f"{facts['runs']} runs per command (hyperfine, medians), each store emptied before every run; "
    f"registry: docker-registry on 127.0.0.1 in a throwaway network namespace; stores on {facts['fs']}; {facts['versions']}.",
    "Each command fetches every blob, verifies it and unpacks the layers: `nsimage pull -q` into its store, "
    "`podman pull` into an overlay store of its own (`--root`), `skopeo copy docker:// oci:` then `umoci unpack`.",
    "",
    "| image | nsimage pull | podman pull | skopeo copy + umoci unpack | nsimage / podman | nsimage / skopeo+umoci |",
    "|---|---|---|---|---|---|",
    *rows,
    "",
    "| target (issue 16) | measured | limit | status |",
    "|---|---|---|---|",
    *targets,
    finish,
])
text = open(out).read() if os.path.exists(out) else ""
start, end = text.find(begin), text.find(finish)
if start >= 0 and end >= 0:
    text = text[:start] + section + text[end + len(finish):]
else:
    text = text.rstrip("\n") + ("\n\n" if text else "") + section + "\n"
open(out, "w").write(text)
print(section)
PY
    exit 0
fi

# --- inside the throwaway network namespace --------------------------------------------------
ip link set lo up
wait_for() { for _ in $(seq 200); do if "$@" >/dev/null 2>&1; then return 0; fi; sleep 0.05; done; return 1; }
. "$REPO/tests/tests/registry/lib.sh"
start_registry 5000
r=$WORK/rootfs
mkdir -p "$r/bin" "$WORK/py/usr/lib" "$WORK/perl/usr/share"
cp /bin/busybox "$r/bin/busybox"; ln -s busybox "$r/bin/sh"
tar_dir "$r" "$WORK/base.tar"
cp -a /usr/lib/python3.11 "$WORK/py/usr/lib/"; tar_dir "$WORK/py" "$WORK/py.tar"
cp -a /usr/share/perl "$WORK/perl/usr/share/"; tar_dir "$WORK/perl" "$WORK/perl.tar"
mk="python3 $REPO/tests/tests/registry/mkimage.py image $WORK/layout"
$mk small "$WORK/base.tar"
$mk big "$WORK/base.tar" "$WORK/py.tar" "$WORK/perl.tar"
for t in small big; do push "$WORK/layout" "$t" "127.0.0.1:5000/bench/$t:1"; done
{
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "commit=$(git -C "$REPO" log -1 --format='%h %s' 2>/dev/null || echo unknown)"
    echo "load=$(cut -d' ' -f1 /proc/loadavg)"
    echo "runs=$RUNS"
    echo "versions=$(podman --version), $(skopeo --version), $(umoci --version)"
    python3 - "$WORK/layout" <<'PY'
import json, os, sys
layout = sys.argv[1]
blob = lambda d: json.load(open(os.path.join(layout, "blobs/sha256", d[7:])))
for m in json.load(open(os.path.join(layout, "index.json")))["manifests"]:
    layers = blob(m["digest"])["layers"]
    tag = m["annotations"]["org.opencontainers.image.ref.name"]
    size = sum(l["size"] for l in layers) / 1048576
    print(f"{tag}_size={size:.1f} MiB gzip, {len(layers)} layer{'s' if len(layers) > 1 else ''}")
PY
} >"$WORK/facts"
S=$WORK/stores
mkdir -p "$S"
case $FS in
tmpfs) mount -t tmpfs tmpfs "$S" ;;
ext4)
    truncate -s 4G "$WORK/ext4.img"
    mkfs.ext4 -q -F "$WORK/ext4.img"
    mount -o loop "$WORK/ext4.img" "$S"
    ;;
esac
echo "fs=$(findmnt -no FSTYPE -T "$S") ($(df -h --output=pcent "$S" | tail -1 | tr -d ' ') full)" >>"$WORK/facts"
export NSCHAIN_DATA_DIR=$S/ns NSCHAIN_RUN_DIR=$S/nsrun
pod=(podman --root "$S/pod" --runroot "$S/podrun" --storage-driver overlay --events-backend none)
for t in small big; do
    ref=127.0.0.1:5000/bench/$t:1
    hyperfine -N --runs "$RUNS" --export-json "$WORK/$t.json" \
        --prepare "rm -rf $S/ns" "$BIN/nsimage pull -q --tls-verify=false $ref" \
        --prepare "rm -rf $S/pod $S/podrun" "${pod[*]} pull -q --tls-verify=false $ref" \
        --prepare "rm -rf $S/oci $S/bundle" \
        "bash -c 'skopeo copy -q --src-tls-verify=false docker://$ref oci:$S/oci:$t && umoci unpack --image $S/oci:$t $S/bundle'" \
        >&2
done
