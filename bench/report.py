#!/usr/bin/env python3
"""bench/report.py DATA_DIR OUT.md: turns what bench/run.sh collected into bench/RESULTS.md.

Inputs in DATA_DIR: rows.tsv (group, label, command, ok|failed|missing, reason), hf-GROUP.json
(hyperfine --export-json), facts.tsv (key, value), scale.json (bench/scale.py), text-*.txt
(verbatim blocks), strace-*.txt, perf-*.csv. Every number printed comes from these files; a row
without a measurement says why instead.
"""

import json
import os
import statistics
import sys

DATA, OUT = sys.argv[1], sys.argv[2]
HERE = os.path.dirname(os.path.abspath(__file__))


def read_facts():
    facts = {}
    try:
        with open(os.path.join(DATA, "facts.tsv")) as f:
            for line in f:
                key, _, value = line.rstrip("\n").partition("\t")
                facts[key] = value
    except FileNotFoundError:
        pass
    return facts


def read_rows():
    rows = {}
    try:
        with open(os.path.join(DATA, "rows.tsv")) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                parts += [""] * (5 - len(parts))
                group, label, command, status, reason = parts[:5]
                rows.setdefault(group, []).append(
                    {"label": label, "command": command, "status": status, "reason": reason}
                )
    except FileNotFoundError:
        pass
    return rows


def quantile(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    pos = (len(values) - 1) * q
    low = int(pos)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (pos - low)


def read_results(group):
    """label -> {median, p25, p75, min, mean, runs, user, system} in milliseconds."""
    # one JSON per round (hf-GROUP.rN.json): the times of every round are pooled
    paths = sorted(
        os.path.join(DATA, name)
        for name in os.listdir(DATA)
        if name.startswith(f"hf-{group}.r") and name.endswith(".json")
    )
    pooled = {}
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        for r in data.get("results", []):
            entry = pooled.setdefault(r["command"], {"times": [], "user": [], "system": []})
            entry["times"] += [t * 1000 for t in r.get("times", [])]
            entry["user"].append(r.get("user", 0) * 1000)
            entry["system"].append(r.get("system", 0) * 1000)
    out = {}
    for command, entry in pooled.items():
        times = entry["times"]
        if not times:
            continue
        out[command] = {
            "median": statistics.median(times),
            "p25": quantile(times, 0.25),
            "p75": quantile(times, 0.75),
            "min": min(times),
            "mean": statistics.mean(times),
            "runs": len(times),
            "user": statistics.mean(entry["user"]),
            "system": statistics.mean(entry["system"]),
        }
    return out


FACTS = read_facts()
ROWS = read_rows()
RESULTS = {group: read_results(group) for group in ROWS}
LINES = []


def emit(text=""):
    LINES.append(text)


def ms(value):
    return f"{value:.2f}"


def median_of(group, label=None, prefix=None):
    for name, r in RESULTS.get(group, {}).items():
        if (label is not None and name == label) or (prefix is not None and name.startswith(prefix)):
            return name, r["median"]
    return None, None


def why_missing(group, label=None, prefix=None):
    for row in ROWS.get(group, []):
        if (label is not None and row["label"] == label) or (
            prefix is not None and row["label"].startswith(prefix)
        ):
            if row["status"] == "missing":
                return f"not measured: {row['reason'] if ' ' in row['reason'] else 'not built: ' + row['reason']}"
            if row["status"] == "failed":
                return f"not measured: the command failed ({row['reason'][:160]})"
        if row["label"] == "*" and row["status"] == "failed":
            return f"not measured: {row['reason'][:160]}"
    return "not measured: no row (section skipped)"


def group_table(group, ref_label=None, ref_prefix=None, title_ref=None):
    """One hyperfine run as a table: median, IQR, min, ratio and difference to the reference."""
    results = RESULTS.get(group, {})
    ref_name, ref = median_of(group, ref_label, ref_prefix)
    ref_title = title_ref or ref_name or ref_label or ref_prefix or "reference"
    emit(f"| command | median ms | IQR ms | min ms | user+sys ms | ÷ {ref_title} | Δ ms |")
    emit("|---|---:|---:|---:|---:|---:|---:|")
    for row in ROWS.get(group, []):
        if row["label"] == "*":
            continue
        r = results.get(row["label"])
        if r is None:
            reason = row["reason"] if row["status"] != "ok" else "hyperfine failed"
            if row["status"] == "missing":
                reason = reason if " " in reason else f"not built: {reason}"
            else:
                reason = f"failed: {reason[:200]}"
            emit(f"| {row['label']} | — | — | — | — | — | **not measured** ({reason}) |")
            continue
        ratio = f"{r['median'] / ref:.2f}" if ref else "—"
        delta = f"{r['median'] - ref:+.2f}" if ref else "—"
        emit(
            f"| {row['label']} | {ms(r['median'])} | {ms(r['p25'])}–{ms(r['p75'])} | {ms(r['min'])} "
            f"| {ms(r['user'] + r['system'])} | {ratio} | {delta} |"
        )
    failed = [row for row in ROWS.get(group, []) if row["label"] == "*"]
    for row in failed:
        emit(f"\nhyperfine failed for this group: {row['reason']}")
    emit()


# ----------------------------------------------------------------------------------------------
TARGETS = []  # (target, measured, limit, margin, status)
PERF = {}
PER_PROGRAM = {}


def ratio_target(name, group, a, b, limit, a_prefix=False, b_prefix=False):
    an, av = median_of(group, **({"prefix": a} if a_prefix else {"label": a}))
    bn, bv = median_of(group, **({"prefix": b} if b_prefix else {"label": b}))
    if av is None or bv is None:
        missing_a = why_missing(group, **({"prefix": a} if a_prefix else {"label": a})) if av is None else ""
        missing_b = why_missing(group, **({"prefix": b} if b_prefix else {"label": b})) if bv is None else ""
        TARGETS.append((name, "—", f"≤ {limit:.2f}", "—", (missing_a or missing_b)))
        return
    ratio = av / bv
    margin = limit - ratio
    met = ratio <= limit
    how = (
        f"{margin:.2f} under"
        if met
        else f"{-margin:.2f} over ({(ratio / limit - 1) * 100:.0f}% over the limit; "
        f"{av - limit * bv:.2f} ms too slow)"
    )
    TARGETS.append(
        (name, f"{ms(av)} / {ms(bv)} ms = **{ratio:.2f}**", f"≤ {limit:.2f}", how, "met" if met else "**NOT met**")
    )


# Issue 14's targets (they replace issue 8's).
ratio_target("full chain ≤ 1.0 × bwrap", "chain", "nschain chain", "bwrap --unshare-all", 1.0)
ratio_target("full chain ≤ 0.6 × crun", "chain", "nschain chain", "crun run", 0.6)
ratio_target("full chain ≤ 1.3 × floor (stretch)", "chain", "nschain chain", "floor", 1.3)
ratio_target(
    "rootless chain ≤ 1.0 × bwrap",
    "rootless",
    "nschain chain (uid 65534)",
    "bwrap --unshare-all --unshare-user (uid 65534)",
    1.0,
)
for tool, anchor in [
    ("utsns", "unshare -u true"),
    ("ipcns", "unshare -i true"),
    ("netns", "unshare -n true"),
    ("pidns", "unshare -pf true"),
    ("mntns", "unshare -m true"),
    ("userns", "unshare -Ur true (uid 65534)"),
]:
    label = "userns --map-root true (uid 65534)" if tool == "userns" else f"{tool} true"
    ratio_target(f"{tool} ≤ 1.1 × `{anchor}`", f"tool-{tool}", label, anchor, 1.1)
ratio_target("timens ≤ 1.1 × `unshare -T true`", "tool-timens", "timens true", "unshare -T true", 1.1)
ratio_target("cgroupns ≤ 1.1 × `unshare -C true`", "tool-cgroupns", "cgroupns true", "unshare -C true", 1.1)
ratio_target(
    "timens --boottime ≤ 1.1 × `unshare -T --boottime`",
    "tool-timens",
    "timens --boottime 1000 true",
    "unshare -T --boottime 1000 true",
    1.1,
)

# bridge: absolute difference
bn, bv = median_of("bridge", "netns --bridge true")
un, uv = median_of("bridge", "unshare -n true")
if bv is not None and uv is not None:
    d = bv - uv
    TARGETS.append(
        (
            "bridge setup ≤ 1.5 ms over `unshare -n`",
            f"{ms(bv)} − {ms(uv)} ms = **{d:+.2f} ms**",
            "≤ 1.50 ms",
            f"{1.5 - d:.2f} ms under" if d <= 1.5 else f"{d - 1.5:.2f} ms over",
            "met" if d <= 1.5 else "**NOT met**",
        )
    )
else:
    TARGETS.append(
        ("bridge setup ≤ 1.5 ms over `unshare -n`", "—", "≤ 1.50 ms", "—",
         why_missing("bridge", "netns --bridge true" if bv is None else "unshare -n true"))
    )

SCALE = None
scale_path = os.path.join(DATA, "scale.json")
if os.path.exists(scale_path):
    with open(scale_path) as f:
        SCALE = json.load(f)
scale_why = (
    f"not measured: {FACTS['scale_skipped']}" if "scale_skipped" in FACTS else "not measured: section 5 skipped or failed"
)


def scale_target(name, value, limit, unit, shown=None):
    """One of issue 14's per-container or N=1000 targets, from section 5's scale.json."""
    if value is None:
        TARGETS.append((name, "—", f"≤ {limit}{f' {unit}' if unit else ''}", "—", scale_why))
        return
    met = value <= limit
    unit = f" {unit}" if unit else ""
    margin = f"{limit - value:.2f}{unit} under" if met else f"{value - limit:.2f}{unit} over"
    TARGETS.append((name, shown or f"**{value:.2f}{unit}**", f"≤ {limit}{unit}", margin,
                    "met" if met else "**NOT met**"))


sc = SCALE or {}
at_1000 = sc.get("n") == 1000 and sc.get("up_count") == 1000
rss = sc.get("overhead_rss_kib_per_container")
pss = sc.get("overhead_pss_kib_per_container")
procs = sc.get("processes_per_container")
scale_target("1000 bridged containers up in ≤ 8 s", sc.get("up_seconds") if at_1000 else None, 8, "s")
scale_target("all gone ≤ 5 s after SIGKILL", sc.get("clean_seconds") if at_1000 else None, 5, "s")
scale_target("processes of ours per idle container ≤ 2", procs - 1 if procs else None, 2, "",
             f"**{procs - 1:.1f}** (payload excluded)" if procs else None)
scale_target("RSS of ours per idle container ≤ 1.5 MiB", rss / 1024 if rss is not None else None, 1.5, "MiB")
scale_target("PSS of ours per idle container ≤ 0.3 MiB", pss / 1024 if pss is not None else None, 0.3, "MiB")

# ----------------------------------------------------------------------------------------------
emit("# nschain benchmark results")
emit()
emit(
    f"Written by `make bench` (bench/run.sh → bench/report.py), run {FACTS.get('started', '?')} – "
    f"{FACTS.get('finished', '?')}, commit `{FACTS.get('commit', '?')}`."
)
emit()
emit(f"- machine: {FACTS.get('machine', '?')}")
emit(f"- versions: {FACTS.get('versions', '?')}")
emit(
    f"- method: every table is measured side by side with `hyperfine -N` (no shell in between): "
    f"{FACTS.get('runs', '?')} timed runs per command, split into {FACTS.get('rounds', '?')} rounds whose "
    f"command order alternates (forward, reversed, ...) so that load that comes and goes falls on every "
    f"command alike; {FACTS.get('warmup', '?')} warm-up runs in the first round, half as many in the others; "
    "medians of wall time from fork to exit as hyperfine sees it; IQR = 25th–75th percentile; "
    "release binaries of `target/release` (LTO, stripped)."
)
sections = [(k[len("load_section_"):], v) for k, v in FACTS.items() if k.startswith("load_section_")]
emit(
    f"- load average (1 min) at the start: {FACTS.get('load_start', '?').split(' ')[0]}; before each section: "
    + ", ".join(f"{n}: {v}" for n, v in sections)
    + f"; at the end: {FACTS.get('load_end', '?').split(' ')[0]} (section 5 itself starts hundreds of processes)"
)
try:
    timed = [float(FACTS.get("load_start", "0").split()[0])] + [float(v) for n, v in sections if n in "1234"]
    busy = max(timed) > 2.0  # the bench itself keeps about one of the two CPUs busy
except (ValueError, IndexError):
    busy = False
if busy:
    emit("  - **the machine was busy during the timed sections** (other work was running): wall times are "
         "inflated and noisier; the ratios inside one table (measured in alternating rounds) stay comparable")
emit(f"- tools built: {FACTS.get('tools_present', '').strip() or 'none'}")
missing_tools = FACTS.get("tools_missing", "").strip()
emit(f"- tools NOT built (their rows say *not measured*): {missing_tools or 'none'}")
emit()
emit("## Targets (issue 14)")
emit()
emit("| target | measured | limit | margin | status |")
emit("|---|---|---|---|---|")
for t in TARGETS:
    emit("| " + " | ".join(t) + " |")
emit()

emit("## 1. Each tool alone vs its `unshare` equivalent")
emit()
emit(
    "`netns` brings `lo` up, `unshare -n` leaves it down: the third row of the netns table "
    "(`unshare -n ip link set lo up`) is the functional equivalent; the target compares with plain "
    "`unshare -n true`. `userns` rows run as uid 65534 through `setpriv`, whose own cost is the "
    "last row."
)
emit()
for tool in ["utsns", "ipcns", "netns", "pidns", "mntns", "userns", "timens", "cgroupns"]:
    emit(f"### {tool}")
    emit()
    group_table(f"tool-{tool}", ref_prefix="unshare -")

if "limits" in ROWS:
    emit("### The cost of limits")
    emit()
    emit("`cgroupns` with limits makes the chain's cgroup in every hierarchy it needs (on this "
         "v1 hybrid host: memory, pids, cpu, cpuacct, freezer and the unified mount), writes the "
         "limits, moves itself in and spawns the watcher that removes the cgroup afterwards (off "
         "the timed path); the last row does the v1 part by hand in a shell:")
    emit()
    group_table("limits", ref_label="cgroupns true (namespace only)")

if "links" in ROWS:
    emit("### The price of one link")
    emit()
    emit("Chains of `utsns --` links (the cheapest setup: one `unshare`, no hostname) ending in "
         "`/bin/true`; the difference between 6 links and 1, divided by 5, is what one more exec'd "
         "link costs, dynamic and static:")
    emit()
    group_table("links", ref_label="/bin/true alone")
    r = RESULTS.get("links", {})
    for kind, one, six in [("dynamic", "1 link: utsns -- true", "6 links: utsns -- ×6 true"),
                           ("static", "1 static link", "6 static links")]:
        if one in r and six in r:
            per = (r[six]["median"] - r[one]["median"]) / 5
            FACTS[f"per_link_{kind}"] = f"{per:.2f}"
            emit(f"- one more {kind} link: **{per:.2f} ms**")
    emit()

emit("## 2. The full rootful chain (six namespaces, busybox root, /proc, /dev)")
emit()
emit(f"- chain: `{FACTS.get('chain_rootful', '?')}`")
emit(
    "- floor: `nschain-floor ROOT /bin/true` (bench/floor): one process, one `unshare` of all six "
    "namespaces, maps, lo up, hostname, one fork, `/` private, root bound, /proc, tmpfs /dev with 6 "
    "bound device nodes, `pivot_root`, exec — the kernel's price of the same work."
)
emit(
    "- crun: `crun run` of a `crun spec` bundle over the same root with the user namespace added "
    "(root → root, as the chain), `terminal: false`, no cgroup mount, `--cgroup-manager=disabled`; "
    "crun 1.8 rejects this host's hybrid cgroup layout, so this table ran in a private mount "
    "namespace with `/sys/fs/cgroup/unified` unmounted (same for every row)."
)
emit("- `unshare -muinpU -f --mount-proc` has no new root: it is the issue's anchor, not equivalent work.")
emit()
group_table("chain", ref_label="floor")
_, floor_ms = median_of("chain", "floor")
_, bwrap_ms = median_of("chain", "bwrap --unshare-all")
_, crun_ms = median_of("chain", "crun run")
if floor_ms and "per_link_dynamic" in FACTS:
    emit("What an exec chain can reach at best on this machine: the floor's work plus five more "
         "exec'd programs (a six-link chain execs six tools where the floor execs one):")
    emit()
    for kind in ["dynamic", "static"]:
        if f"per_link_{kind}" not in FACTS:
            continue
        bound = floor_ms + 5 * float(FACTS[f"per_link_{kind}"])
        parts = [f"floor {ms(floor_ms)} + 5 × {FACTS[f'per_link_{kind}']} = **{ms(bound)} ms**"]
        if bwrap_ms:
            parts.append(f"{bound / bwrap_ms:.2f} × bwrap")
        if crun_ms:
            parts.append(f"{bound / crun_ms:.2f} × crun")
        parts.append(f"{bound / floor_ms:.2f} × floor")
        emit(f"- {kind} links: " + ", ".join(parts))
    emit()
if "chain-limits" in ROWS:
    emit("The same chain bounded by `cgroupns` after `netns` (what limits cost a whole container):")
    emit()
    group_table("chain-limits", ref_label="nschain chain")
if "chain-partial" in ROWS:
    emit("Partial chain (what is built; NOT the full chain, for orientation only):")
    emit()
    group_table("chain-partial", ref_prefix="unshare")

emit("## 3. The rootless chain (uid 65534)")
emit()
emit(f"- chain: `{FACTS.get('chain_rootless', '?')}`")
emit()
group_table("rootless", ref_prefix="floor")

emit("## 4. Bridge networking")
emit()
emit(
    "All rows run inside a throwaway network + mount namespace that plays the host (fresh `lo`, "
    "tmpfs `/run`); nothing of the machine's interfaces or firewall is touched. The `ip` script "
    "makes a netns, a veth into it, attaches it to a bridge, sets address, lo, route, runs `true` "
    "and deletes the netns; it includes one `/bin/sh` start (last row)."
)
emit()
group_table("bridge", ref_label="unshare -n true")
path = os.path.join(DATA, "text-netns-setup.txt")
if os.path.exists(path):
    emit("Output of `bench/netns-setup.sh` (the netns tool's own benchmark, a separate hyperfine run "
         "in its own throwaway host namespace; Markdown as it prints it):")
    emit()
    emit(open(path).read().rstrip().replace("\n## ", "\n#### ").replace("## netns", "#### netns", 1))
    emit()
else:
    emit("`bench/netns-setup.sh` does not exist (yet): no additional bridge measurements.")
    emit()

emit("## 5. Scale: containers in bridge mode started at once")
emit()
if SCALE:
    emit(f"- chain per container: `{FACTS.get('scale_chain', '?')}`")
    emit(
        "- method: bench/scale.py in a throwaway network namespace (the \"host\"), a child subreaper so "
        "nothing a container leaves behind escapes the count; all N launched without waiting; "
        "\"up\" = the payload printed `up` on the shared pipe; memory = RSS and PSS from "
        "/proc/PID/smaps_rollup of every process alive per container, payload (`sleep`) shown apart; "
        "stop = SIGKILL to every payload; \"clean\" = no process, no veth, no lease file left."
    )
    emit()
    emit("| figure | value |")
    emit("|---|---|")
    order = [
        ("n", "containers"),
        ("up_count", "came up"),
        ("failed", "failed before up"),
        ("launch_seconds", "time to launch all (s)"),
        ("up_seconds", "time until all running (s)"),
        ("overhead_rss_kib_per_container", "our processes: RSS per container (KiB)"),
        ("overhead_pss_kib_per_container", "our processes: PSS per container (KiB)"),
        ("payload_rss_kib_per_container", "payload: RSS per container (KiB)"),
        ("payload_pss_kib_per_container", "payload: PSS per container (KiB)"),
        ("memavailable_kib_per_container", "MemAvailable drop per container, kernel included (KiB)"),
        ("processes_per_container", "processes alive per container (payload included)"),
        ("veths_while_up", "veth devices while up"),
        ("run_files_while_up", "files under the run dir while up"),
        ("exit_seconds", "time from SIGKILL of the payloads until every chain exited (s)"),
        ("clean_seconds", "time from SIGKILL until nothing is left (s)"),
        ("left_veths", "veths left"),
        ("left_processes", "processes left"),
        ("left_lease_files", "lease files left"),
    ]
    for key, title in order:
        if key in SCALE and SCALE[key] is not None:
            value = SCALE[key]
            if isinstance(value, float):
                value = f"{value:.3f}" if value < 100 else f"{value:.0f}"
            emit(f"| {title} | {value} |")
    emit()
    if SCALE.get("by_process"):
        emit("Alive per container while idle, by program:")
        emit()
        emit("| program | processes | RSS KiB each (mean) | PSS KiB each (mean) |")
        emit("|---|---:|---:|---:|")
        for name, v in sorted(SCALE["by_process"].items()):
            emit(f"| {name} | {v['count']} | {v['rss_kib'] / v['count']:.0f} | {v['pss_kib'] / v['count']:.0f} |")
        emit()
    if SCALE.get("up_curve"):
        emit("Containers up over time (count: seconds since the first launch): "
             + ", ".join(f"{c}: {t:.2f}" for c, t in SCALE["up_curve"]))
        emit()
    if SCALE.get("debug_last"):
        emit("`NSCHAIN_DEBUG=1` trace of the last container started (N−1 already running or starting):")
        emit()
        emit("```")
        emit("\n".join(SCALE["debug_last"]))
        emit("```")
        emit()
    if SCALE.get("left_files"):
        emit("Files left under the run dir after cleanup: " + ", ".join(f"`{p}`" for p in SCALE["left_files"][:10]))
        emit()
    if SCALE.get("errors"):
        emit("First errors from the containers:")
        emit()
        emit("```")
        emit("\n".join(SCALE["errors"][:10]))
        emit("```")
        emit()
    if SCALE.get("note"):
        emit(SCALE["note"])
        emit()
else:
    emit(scale_why)
    emit()

emit("## 6. Sizes, memory, static vs dynamic exec")
emit()
emit("Sizes of the release binaries (`strip = true` in the release profile), with the anchors for scale:")
emit()
emit("| binary | bytes | note |")
emit("|---|---:|---|")
for key, value in FACTS.items():
    if key.startswith("size_"):
        name = key[5:].replace("ref_", "")
        size, _, note = value.partition(" ")
        if key.startswith("size_ref_"):
            note = "anchor (Debian)"
        emit(f"| {name} | {int(size):,} | {note} |")
emit()
mem = [(k[10:], v) for k, v in FACTS.items() if k.startswith("mem_pidns_") and k != "mem_pidns_note"]
if mem:
    emit("`pidns -- sleep 1000`, resident memory of each process (from /proc/PID/smaps_rollup; RSS counts "
         "shared library pages in full, PSS divides them among their users):")
    emit()
    emit("| process | comm | RSS KiB | PSS KiB |")
    emit("|---|---|---:|---:|")
    for role, value in mem:
        parts = value.split(" ", 2)
        emit(f"| {role} | {parts[2] if len(parts) > 2 else ''} | {parts[0]} | {parts[1]} |")
    emit()
    if "mem_pidns_note" in FACTS:
        emit(f"Note: {FACTS['mem_pidns_note']}.")
        emit()
elif "pidns" not in FACTS.get("tools_present", ""):
    emit("pidns memory: not measured: pidns not built.")
    emit()
path = os.path.join(DATA, "text-pidns-rss.txt")
if os.path.exists(path):
    emit("Output of `bench/pidns-rss.sh` (the pidns tool's own measurement, with tini and catatonit; "
         "kB; Markdown as it prints it):")
    emit()
    emit(open(path).read().rstrip())
    emit()
emit("Static vs dynamic: the same `utsns` linked with `-C target-feature=+crt-static`, and the exec of "
     "a static program alone (busybox `true`) vs a dynamic one (coreutils `/bin/true`):")
emit()
if "static" in ROWS:
    group_table("static", ref_label="utsns (dynamic)")
    group_table("static-true", ref_label="/bin/true (dynamic)")
else:
    emit(f"not measured: {FACTS.get('static_failed', 'static build skipped (NSCHAIN_BENCH_STATIC=0 or utsns not built)')}")
    emit()

emit("## 7. Where the chain's time goes")
emit()
perf = {}
for name in ["chain", "bwrap", "floor"]:
    path = os.path.join(DATA, f"perf-{name}.csv")
    if not os.path.exists(path):
        continue
    values = {}
    for line in open(path):
        parts = line.strip().split(",")
        if len(parts) >= 3 and parts[0] and not line.startswith("#"):
            try:
                values[parts[2]] = float(parts[0])
            except ValueError:
                pass
    perf[name] = values
PERF = perf
if perf:
    emit("`perf stat -r 50` (per run, all processes of the run):")
    emit()
    emit("| command | task-clock ms | page faults | context switches | cpu migrations |")
    emit("|---|---:|---:|---:|---:|")
    for name, v in perf.items():
        emit(
            f"| {name} | {v.get('task-clock', float('nan')):.2f} | {v.get('page-faults', float('nan')):.0f} "
            f"| {v.get('context-switches', float('nan')):.0f} | {v.get('cpu-migrations', float('nan')):.0f} |"
        )
    emit()
for name in ["chain", "bwrap", "floor"]:
    path = os.path.join(DATA, f"strace-{name}.txt")
    if not os.path.exists(path):
        continue
    lines = [l.rstrip() for l in open(path) if l.strip()]
    # header (2 lines) + top 15 syscalls + total
    body = lines[:2] + lines[2:17] + [l for l in lines if "total" in l]
    emit(f"`strace -f -c -S calls` of one {name} run (top 15 by number of calls; strace inflates every "
         "syscall's time, read the counts):")
    emit()
    emit("```")
    emit("\n".join(body))
    emit("```")
    emit()
path = os.path.join(DATA, "text-debug-chain.txt")
if os.path.exists(path):
    emit("`NSCHAIN_DEBUG=1` step trace of one chain run (each link's steps with their durations):")
    emit()
    emit("```")
    emit(open(path).read().rstrip())
    emit("```")
    emit()
if "kmsg_per_chain" in FACTS:
    emit(f"Kernel log lines written per chain run (20 runs between two /dev/kmsg markers): "
         f"{FACTS['kmsg_per_chain']}.")
    path = os.path.join(DATA, "text-kmsg-chain.txt")
    if FACTS["kmsg_per_chain"] not in ("0.0", "") and os.path.exists(path):
        emit()
        emit("```")
        emit(open(path).read().rstrip())
        emit("```")
    emit()
for name, title in [
    ("perf-dso", "`perf record -g` over 100 chain runs: share of CPU samples by program and object"),
    ("perf-sym", "the same samples by program and symbol (self time)"),
    ("perf-kernel-children", "kernel functions with their callees (children time), all programs"),
]:
    path = os.path.join(DATA, f"text-{name}.txt")
    if os.path.exists(path) and os.path.getsize(path) > 0:
        emit(title + ":")
        emit()
        emit("```")
        emit(open(path).read().rstrip())
        emit("```")
        emit()
path = os.path.join(DATA, "strace-chain-full.txt")
if os.path.exists(path):
    import collections
    import re

    program = {}
    per_program = collections.defaultdict(collections.Counter)
    order = []
    parent_of = {}
    for line in open(path, errors="replace"):
        m = re.match(r"(\d+)\s+(?:<\.\.\. )?(clone3?|fork|vfork)\b.*= (\d+)$", line.rstrip())
        if m:
            parent_of[m.group(3)] = m.group(1)
    for line in open(path, errors="replace"):
        m = re.match(r"(\d+)\s+(?:<\.\.\. )?(\w+)[( ]", line)
        if not m:
            continue
        pid, call = m.groups()
        if call == "execve" and "resumed" not in line:
            e = re.search(r'execve\("([^"]+)"', line)
            if e and not line.rstrip().endswith(("ENOENT (No such file or directory)",)):
                program[pid] = os.path.basename(e.group(1))
        if "resumed" in line:
            continue
        name = program.get(pid)
        if name is None:
            # a forked child that has not exec'd: name it after its parent's program
            name = "fork of " + program.get(parent_of.get(pid, ""), "a parent in another pid namespace")
            program[pid] = name
        if name not in order:
            order.append(name)
        per_program[name][call] += 1
    PER_PROGRAM.update(per_program)
    if per_program:
        emit("Syscalls of one chain run per program (from `strace -f`; a forked child is named after "
             "the program it was forked from until it execs):")
        emit()
        emit("| program | syscalls | top calls |")
        emit("|---|---:|---|")
        for name in order:
            c = per_program[name]
            top = ", ".join(f"{k} {v}" for k, v in c.most_common(6))
            emit(f"| {name} | {sum(c.values())} | {top} |")
        total = sum(sum(c.values()) for c in per_program.values())
        emit(f"| **total** | **{total}** | |")
        emit()

def fill_findings(text):
    """Fills the findings' placeholders from this run's data ("n/a" when not measured)."""
    import re

    def med(group, label):
        return median_of(group, label)[1]

    def fmt(value, digits=2):
        return "n/a" if value is None else f"{value:.{digits}f}"

    values = {"RUNFIGURES": f"run of {FACTS.get('started', '?')}", "BELOWBOUND": "the bound is not measured"}
    values["PERLINKDYN"] = FACTS.get("per_link_dynamic", "n/a")
    values["PERLINKSTATIC"] = FACTS.get("per_link_static", "n/a")
    floor_v, bwrap_v = med("chain", "floor"), med("chain", "bwrap --unshare-all")
    for kind, key in [("static", "BOUNDSTATIC"), ("dynamic", "BOUNDDYN")]:
        per = FACTS.get(f"per_link_{kind}")
        bound = floor_v + 5 * float(per) if (floor_v and per) else None
        values[key] = fmt(bound)
        if kind == "static":
            values["BOUNDSTATICBW"] = fmt(bound / bwrap_v if bound and bwrap_v else None)
            crun_v = med("chain", "crun run")
            below, above = [], []
            for name, limit, anchor in [("≤ 1.0 × bwrap", 1.0, bwrap_v), ("≤ 0.6 × crun", 0.6, crun_v),
                                        ("≤ 1.3 × floor", 1.3, floor_v)]:
                if bound is None or anchor is None:
                    continue
                (below if limit * anchor < bound else above).append(f"{name} ({limit * anchor:.2f} ms)")
            if below:
                values["BELOWBOUND"] = ("the targets " + ", ".join(below) + " lie below that bound"
                                        + (f" (and {', '.join(above)} above it)" if above else ""))
            else:
                values["BELOWBOUND"] = "no full-chain target lies below that bound (" + ", ".join(above) + ")"
    dyn, sta = med("static", "utsns (dynamic)"), med("static", "utsns (static)")
    values["STATICGAIN"] = f"−{dyn - sta:.2f} ms" if dyn and sta else "n/a"
    chain_v, chain_s = med("chain", "nschain chain"), med("chain", "variant: chain of static binaries")
    values["CHAINSTATICGAIN"] = f"−{chain_v - chain_s:.2f} ms" if chain_v and chain_s else "n/a"
    values["PIDNSINIT"] = fmt(med("tool-pidns", "pidns true"))
    values["PIDNSNOINIT"] = fmt(med("tool-pidns", "pidns --no-init true"))
    b, u = med("bridge", "netns --bridge true"), med("bridge", "unshare -n true")
    values["BRIDGEDELTA"] = fmt(b - u if b and u else None)
    sc = SCALE or {}
    values["UPSECONDS"] = fmt(sc.get("up_seconds"), 1)
    values["CLEANSECONDS"] = fmt(sc.get("clean_seconds"), 1)
    lock = None
    for line in sc.get("debug_last") or []:
        m = re.search(r"lock leases \(([0-9.]+) ms\)", line)
        if m:
            lock = float(m.group(1)) / 1000
    values["LASTLOCK"] = fmt(lock * 1000 if lock is not None else None, 0)
    curve = sc.get("up_curve") or []
    steps = [b[1] - a[1] for a, b in zip(curve, curve[1:])]
    values["STEPFIRST"] = fmt(steps[0] if steps else None, 1)
    values["STEPLAST"] = fmt(steps[-1] if steps else None, 1)
    watch = (sc.get("by_process") or {}).get("netns-gc-watch")
    values["WATCHRSS"] = fmt(watch["rss_kib"] / watch["count"] / 1024 if watch else None, 1)
    for role, key in [("monitor", "MONRSS"), ("init", "INITRSS")]:
        fact = FACTS.get(f"mem_pidns_{role}", "").split(" ")
        values[key] = fmt(int(fact[0]) / 1024 if fact and fact[0].isdigit() else None, 1)
    rss, pss = sc.get("overhead_rss_kib_per_container"), sc.get("overhead_pss_kib_per_container")
    values["RSSMIB"] = fmt(rss / 1024 if rss is not None else None)
    values["PSSMIB"] = fmt(pss / 1024 if pss is not None else None)
    values["SCALEN"] = str(sc.get("n", "n/a"))
    for name, key in [("chain", "PFCHAIN"), ("floor", "PFFLOOR"), ("bwrap", "PFBWRAP")]:
        pf = PERF.get(name, {}).get("page-faults")
        values[key] = f"{pf:.0f}" if pf is not None else "n/a"
    mntns_calls = PER_PROGRAM.get("mntns")
    values["MNTNSCALLS"] = str(sum(mntns_calls.values())) if mntns_calls else "n/a"
    floor_calls = "n/a"
    path = os.path.join(DATA, "strace-floor.txt")
    if os.path.exists(path):
        for line in open(path):
            if line.strip().endswith("total"):
                parts = line.split()
                floor_calls = parts[3] if len(parts) >= 6 else parts[-2]
    values["FLOORCALLS"] = floor_calls
    misses = [t[0].split(" ")[0] for t in TARGETS if "≤ 1.1 ×" in t[0] and "NOT met" in t[4]]
    values["TOOLMISSES"] = ", ".join(misses) if misses else "none"
    met = [t[0] for t in TARGETS if t[4] == "met"]
    values["METLIST"] = "; ".join(met) if met else "no target"
    if sc:
        values["LEFTOVERS"] = (
            f"{sc.get('left_veths')} veths, {sc.get('left_lease_files')} leases, "
            f"{sc.get('left_processes')} processes left"
        )
    else:
        values["LEFTOVERS"] = "not measured"
    for key in sorted(values, key=len, reverse=True):
        text = text.replace(key, str(values[key]))
    return text


findings = os.path.join(HERE, "findings.md")
if os.path.exists(findings):
    emit(fill_findings(open(findings).read().rstrip()))
    emit()

# The OCI conformance section comes from `make oci-validation` (too long for make bench).
conformance = os.path.join(HERE, "oci-conformance.md")
if os.path.exists(conformance):
    emit(open(conformance).read().rstrip())
    emit()

# Hand-written sections (and the sections bench/pull.sh and bench/oci.sh keep between their own
# markers) live below this line in OUT: regenerating the report keeps them.
KEEP_MARK = "<!-- make bench keeps everything below this line (bench/report.py) -->"
kept = ""
if os.path.exists(OUT):
    old = open(OUT).read()
    if KEEP_MARK in old:
        kept = old[old.index(KEEP_MARK):]
with open(OUT, "w") as f:
    f.write("\n".join(LINES) + "\n")
    if kept:
        f.write("\n" + kept.rstrip("\n") + "\n")
