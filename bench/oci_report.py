#!/usr/bin/env python3
"""bench/oci_report.py WORK OUT.md: the "nsoci vs runc and crun" section of bench/RESULTS.md.

Reads what bench/oci.sh left in WORK (facts, RUNTIME.rN.json from hyperfine, strace-*.txt) and
replaces the section between its markers in OUT (appends it the first time); prints it.
Every number comes from those files.
"""

import glob
import os
import re
import statistics
import sys

WORK, OUT = sys.argv[1], sys.argv[2]
BEGIN, END = "<!-- bench/oci.sh -->", "<!-- /bench/oci.sh -->"


def facts():
    with open(os.path.join(WORK, "facts")) as f:
        return dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)


def pooled(name):
    """label -> every run's wall time in ms, over the rounds."""
    import json

    times = {}
    for path in sorted(glob.glob(os.path.join(WORK, f"{name}.r*.json"))):
        with open(path) as f:
            for r in json.load(f)["results"]:
                times.setdefault(r["command"], []).extend(t * 1000 for t in r["times"])
    return times


def table(times, ref):
    rows = ["| command | runs | median ms | IQR ms | min ms | ÷ " + ref + " |", "|---|---:|---:|---:|---:|---:|"]
    base = statistics.median(times[ref])
    for label, t in times.items():
        q = statistics.quantiles(t, n=4)
        med = statistics.median(t)
        rows.append(f"| {label} | {len(t)} | {med:.1f} | {q[0]:.1f}–{q[2]:.1f} | {min(t):.1f} | {med / base:.2f} |")
    return rows


def target(times, name, a, b, limit):
    av, bv = statistics.median(times[a]), statistics.median(times[b])
    ratio = av / bv
    if ratio <= limit:
        status = f"met ({limit - ratio:.2f} under)"
    else:
        status = f"**NOT met**: missed by {ratio - limit:.2f} (nsoci {av - limit * bv:.1f} ms too slow)"
    return f"| {name} | {av:.1f} / {bv:.1f} ms = **{ratio:.2f}** | ≤ {limit:.2f} | {status} |"


def strace_summary(rt):
    """(total seconds, total calls, top 6 'syscall seconds calls') of one strace -c file."""
    path = os.path.join(WORK, f"strace-{rt}.txt")
    if not os.path.exists(path):
        return None
    top, total = [], None
    for line in open(path):
        parts = line.split()
        if len(parts) >= 5 and re.match(r"^[0-9.]+$", parts[0]) and parts[-1] != "total":
            top.append(f"{parts[-1]} {float(parts[1]) * 1000:.1f} ms/{parts[3]}")
        elif parts and parts[-1] == "total":
            total = (float(parts[1]) * 1000, parts[3])
    return total, top[:6]


def perf_line(rt):
    """One table row from perf stat's CSV (-x,): task-clock, page-faults, context-switches."""
    path = os.path.join(WORK, f"perf-{rt}.csv")
    if not os.path.exists(path):
        return None
    values = {}
    for line in open(path):
        parts = line.strip().split(",")
        if len(parts) > 2 and parts[0] and not line.startswith("#"):
            values[parts[2]] = parts[0]
            values[parts[2] + " ±"] = parts[3]
    if "task-clock" not in values:
        return None
    return (
        f"| {rt} | {float(values['task-clock']):.1f} ± {values.get('task-clock ±', '?')} "
        f"| {values.get('page-faults', '—')} "
        f"| {values.get('context-switches', '—')} |"
    )


def procs_write_times(trace):
    """The cgroup.procs writes' durations in ms, also of a write strace split in two because
    another thread ran meanwhile (`<unfinished ...>`, then `<... write resumed>` of its pid):
    runc's first, the one that waits, is such a write."""
    times, pending = [], set()
    for line in trace.splitlines():
        pid = line.split(" ", 1)[0]
        if "cgroup.procs>" in line and line.endswith("<unfinished ...>"):
            pending.add(pid)
            continue
        m = re.search(r"<([0-9.]+)>$", line)
        if m and ("cgroup.procs>, " in line or (pid in pending and "<... write resumed>" in line)):
            pending.discard(pid)
            times.append(float(m.group(1)) * 1000)
    return times


def procs_writes(rt):
    """Median over the runs of the longest and the total cgroup.procs write, in ms."""
    longest, total = [], []
    for path in glob.glob(os.path.join(WORK, f"procs-{rt}.*.txt")):
        times = procs_write_times(open(path).read())
        if times:
            longest.append(max(times))
            total.append(sum(times))
    if not longest:
        return None
    return f"| {rt} | {statistics.median(longest):.1f} | {statistics.median(total):.1f} | {len(longest)} |"


def section():
    f = facts()
    rt, pod = pooled("runtimes"), pooled("podman")
    lines = [
        BEGIN,
        "## nsoci vs runc and crun (bench/oci.sh, issue 17)",
        "",
        f"Run {f['date']}, commit `{f['commit']}`, load average at the start {f['load']}; "
        f"{f['versions']}; nsoci: {f['nsoci']}, its links next to it. Hyperfine medians over 4 "
        f"alternating rounds ({f['runs']} runs per runtime command, {f['podman_runs']} per podman "
        "command), in a throwaway network and mount namespace.",
        "The bundle is `runc spec` (pid, network, ipc, uts, mount namespaces; a deny-all device rule, "
        "so each runtime makes a cgroup) over a read-only busybox root, process `true`; the image "
        "is that root imported into a podman store of the run's own (vfs, `--cgroup-manager=cgroupfs`, "
        "`--network none`, `--ulimit nofile=1024:1024 --ulimit nproc=1024:1024`).",
        "",
    ]
    lines += table(rt, "crun run") + [""]
    lines += table(pod, "podman --runtime runc") + [""]
    lines += [
        "| target (issue 17) | measured | limit | status |",
        "|---|---|---|---|",
        target(rt, "`nsoci run` ≤ 0.5 × `crun run`", "nsoci run", "crun run", 0.5),
        target(pod, "podman with nsoci ≤ 0.8 × podman with runc", "podman --runtime nsoci", "podman --runtime runc", 0.8),
        "",
        "Syscall time of one run of each runtime (`strace -f -c`, every process; strace slows "
        "each call, so only the proportions mean something):",
        "",
        "| runtime | syscall time, calls | the largest |",
        "|---|---|---|",
    ]
    for name in ("nsoci", "runc", "crun"):
        s = strace_summary(name)
        if s and s[0]:
            lines.append(f"| {name} | {s[0][0]:.1f} ms, {s[0][1]} calls | {', '.join(s[1])} |")
    perf = [perf_line(name) for name in ("nsoci", "runc", "crun")]
    if any(perf):
        lines += [
            "",
            "CPU per run (`perf stat -r 30`: the mean, ± its relative spread; every process of the "
            "runtime and the container):",
            "",
            "| runtime | task-clock ms | page faults | context switches |",
            "|---|---:|---:|---:|",
        ] + [p for p in perf if p]
    procs = [procs_writes(name) for name in ("nsoci", "runc", "crun")]
    if any(procs):
        lines += [
            "",
            "Writes to `cgroup.procs` (`strace -f -y -T`, medians over runs): the first one in a v1 "
            "hierarchy waits for an RCU grace period (the kernel's cgroup_threadgroup_rwsem), "
            "whichever runtime writes it:",
            "",
            "| runtime | longest write ms | all writes ms | runs |",
            "|---|---:|---:|---:|",
        ] + [p for p in procs if p]
    lines.append(END)
    return "\n".join(lines)


def main():
    text = section()
    old = open(OUT).read() if os.path.exists(OUT) else ""
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        new = head + text + rest.split(END, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    with open(OUT, "w") as f:
        f.write(new)
    print(text)


main()
