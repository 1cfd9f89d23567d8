#!/usr/bin/env python3
"""bench/scale.py N OUT.json CHAIN...: N containers started at once, then stopped.

Run by bench/run.sh inside a throwaway network namespace that plays the host. Each container is
`CHAIN... /bin/sh -c 'echo up; exec sleep 1000'` with stdout on one shared pipe: a container is
"up" when its `up` line arrived (every link ran and the payload started). This process is a child
subreaper, so helpers that daemonize stay in its process tree and are counted and waited for.

Measures: time to launch and to have all N up; RSS/PSS (smaps_rollup) of every process alive per
container, payload apart; MemAvailable drop; then SIGKILL to every payload and the time until every
chain exited and until nothing is left (no process, no veth, no lease file under NSCHAIN_RUN_DIR).
"""

import ctypes
import ipaddress
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
PAYLOAD = ["/bin/sh", "-c", "echo up; exec sleep 1000"]
PAYLOAD_COMM = "sleep"
UP_TIMEOUT = 150.0
CLEAN_TIMEOUT = 120.0


def meminfo(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def processes():
    """pid -> (ppid, comm) for every process."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(name)] = (int(fields[1]), comm)
    return out


def descendants(root):
    procs = processes()
    children = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            out.append((child, procs[child][1]))
            todo.append(child)
    return out


def cpu_seconds(pids):
    """CPU time of the processes `pids` (/proc/PID/schedstat, in ns: utime and stime in
    /proc/PID/stat are whole ticks, 0 for each of a thousand short starts) and of the children
    they waited for (cutime, cstime: summed in ns before the rounding)."""
    ns = ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/schedstat") as f:
                ns += int(f.read().split()[0])
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks += int(fields[13]) + int(fields[14])  # cutime cstime
    return ns / 1e9 + ticks / os.sysconf("SC_CLK_TCK")


def rollup(pid):
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        return None
    return rss, pss


def veths():
    out = subprocess.run(["ip", "-o", "link", "show", "type", "veth"], capture_output=True, text=True)
    return len([l for l in out.stdout.splitlines() if l.strip()])


def run_files(run_dir):
    out = []
    for base, _, files in os.walk(run_dir):
        for name in files:
            out.append(os.path.relpath(os.path.join(base, name), run_dir))
    return sorted(out)


def lease_files(run_dir):
    """What a container leaves behind under the run dir: netns leases (netns/bridge-NAME/ADDR),
    anything named like a lease, chain registrations."""
    out = []
    for path in run_files(run_dir):
        name = os.path.basename(path)
        try:
            ipaddress.ip_address(name)
            out.append(path)
            continue
        except ValueError:
            pass
        if "lease" in name or path.startswith("chains/"):
            out.append(path)
    return out


def poll(pid, statuses):
    """Whether the chain `pid` ended; its status goes to `statuses` when it does."""
    if pid in statuses:
        return True
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        statuses[pid] = None
        return True
    if done == 0:
        return False
    statuses[pid] = os.waitstatus_to_exitcode(status)
    return True


class Ups:
    """The "up" lines on the shared pipe, counted as they arrive, and the curve: (count, seconds
    after the start) each time 2 % more are up. Read during the launch loop too, so that the
    curve is not held back until the last container is launched."""

    def __init__(self, fd, n, start):
        self.fd, self.n, self.start = fd, n, start
        self.count = 0
        self.curve = []
        self.milestones = sorted({max(1, n * k // 50) for k in range(1, 51)})
        self.eof = False

    def read(self, timeout):
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return
        chunk = os.read(self.fd, 65536)
        if not chunk:
            self.eof = True
        self.count += chunk.count(b"\n")  # each line is "up" (the payload's only output)
        now = round(time.monotonic() - self.start, 3)
        while self.milestones and self.count >= self.milestones[0]:
            self.curve.append([self.milestones.pop(0), now])


def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main():
    n = int(sys.argv[1])
    out_path = sys.argv[2]
    chain = sys.argv[3:]
    run_dir = os.environ.get("NSCHAIN_RUN_DIR", "/run/nschain")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    me = os.getpid()
    result = {"n": n, "chain": chain}

    read_end, write_end = os.pipe()
    err_path = out_path + ".stderr"
    err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    avail_before = meminfo("MemAvailable")

    start = time.monotonic()
    ups = Ups(read_end, n, start)
    procs = []
    debug_path = out_path + ".debug"
    debug_err = os.open(debug_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC, 0o644)
    debug_env = dict(os.environ, NSCHAIN_DEBUG="1")
    null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    argv = chain + PAYLOAD
    program = shutil.which(argv[0]) or argv[0]
    # os.posix_spawn (glibc: clone(CLONE_VM | CLONE_VFORK) + exec), not subprocess.Popen: the
    # loop competes for the same 2 CPUs as the containers it starts, and Popen's own work per
    # child (error pipe, close_fds, its bookkeeping) doubled its share.
    for i in range(n):
        last = i == n - 1  # the last container traces its steps: what a start costs at N-1
        actions = [
            (os.POSIX_SPAWN_DUP2, null, 0),
            (os.POSIX_SPAWN_DUP2, write_end, 1),
            (os.POSIX_SPAWN_DUP2, debug_err if last else err, 2),
        ]
        try:
            procs.append(os.posix_spawn(program, argv, debug_env if last else os.environ, file_actions=actions))
        except OSError as e:
            result["note"] = f"launch stopped after {len(procs)} containers: {e}"
            break
        if i % 25 == 24:
            ups.read(0)
    launched = time.monotonic()
    os.close(write_end)
    os.close(debug_err)
    result["launch_seconds"] = launched - start

    statuses = {}  # pid -> exit code (or -signal) of every chain that ended
    deadline = start + UP_TIMEOUT
    up_at = None
    last_check = 0.0
    while ups.count < n and not ups.eof and time.monotonic() < deadline:
        ups.read(0.5)
        if ups.count >= n:
            up_at = time.monotonic()
            break
        now = time.monotonic()
        if now - last_check > 1.0:
            last_check = now
            failed = sum(1 for p in procs if poll(p, statuses))
            if failed + ups.count >= len(procs):
                break
    up = ups.count
    curve = ups.curve
    result["up_count"] = up
    result["up_curve"] = curve
    result["up_seconds"] = (up_at or time.monotonic()) - start
    result["failed"] = sum(1 for p in procs if poll(p, statuses))
    # how the chains that ended before the stop ended (exit code, or -signal)
    result["failed_statuses"] = sorted(statuses.values())

    # idle: let the last containers settle, then count what stays alive
    time.sleep(1.0)
    avail_up = meminfo("MemAvailable")
    alive = descendants(me)
    # CPU spent to bring them up (less sensitive than the wall time to what else runs on the
    # machine): this process (the launch loop), every live process of the containers (with
    # the children they waited for), and the orphans this subreaper reaped.
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    result["launcher_cpu_seconds"] = own.ru_utime + own.ru_stime
    result["containers_cpu_seconds"] = (
        cpu_seconds(pid for pid, _ in alive) + reaped.ru_utime + reaped.ru_stime
    )
    by_process = {}
    overhead_rss = overhead_pss = payload_rss = payload_pss = 0
    for pid, comm in alive:
        if comm == "exe":  # re-executed through /proc/self/exe: name it after its binary
            try:
                comm = "exe → " + os.path.basename(os.readlink(f"/proc/{pid}/exe"))
            except OSError:
                pass
        usage = rollup(pid)
        if usage is None:
            continue
        rss, pss = usage
        entry = by_process.setdefault(comm, {"count": 0, "rss_kib": 0, "pss_kib": 0})
        entry["count"] += 1
        entry["rss_kib"] += rss
        entry["pss_kib"] += pss
        if comm == PAYLOAD_COMM:
            payload_rss += rss
            payload_pss += pss
        else:
            overhead_rss += rss
            overhead_pss += pss
    running = max(up, 1)
    result["by_process"] = by_process
    result["processes_per_container"] = round(len(alive) / running, 2)
    result["overhead_rss_kib_per_container"] = overhead_rss / running
    result["overhead_pss_kib_per_container"] = overhead_pss / running
    result["payload_rss_kib_per_container"] = payload_rss / running
    result["payload_pss_kib_per_container"] = payload_pss / running
    result["memavailable_kib_per_container"] = (avail_before - avail_up) / running
    result["veths_while_up"] = veths()
    result["run_files_while_up"] = len(run_files(run_dir))

    # stop: kill every payload, wait for the chains, then for the leftovers to go
    stop = time.monotonic()
    for pid, comm in alive:
        if comm == PAYLOAD_COMM:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    # chains gone over time: (count, seconds after the SIGKILL) each time 2 % more exited
    gone_curve = []
    pending = list(procs)
    step = max(1, len(procs) // 50)
    while pending and time.monotonic() < stop + CLEAN_TIMEOUT:
        pending = [p for p in pending if not poll(p, statuses)]
        gone = len(procs) - len(pending)
        if gone and (not gone_curve or gone >= gone_curve[-1][0] + step or not pending):
            gone_curve.append([gone, round(time.monotonic() - stop, 3)])
        time.sleep(0.02)
    for p in pending:
        os.kill(p, signal.SIGKILL)
        os.waitpid(p, 0)
    result["gone_curve"] = gone_curve
    result["exit_seconds"] = time.monotonic() - stop
    clean_at = net_clean_at = None
    while time.monotonic() < stop + CLEAN_TIMEOUT:
        reap()
        if not descendants(me) and veths() == 0:
            left = lease_files(run_dir)
            if net_clean_at is None and not [p for p in left if not p.startswith("chains/")]:
                net_clean_at = time.monotonic()
            if not left:
                clean_at = time.monotonic()
                break
        time.sleep(0.05)
    result["clean_seconds"] = (clean_at - stop) if clean_at else None
    # the same without the chain registrations: processes, veths and address leases gone
    result["net_clean_seconds"] = (net_clean_at - stop) if net_clean_at else None
    left = descendants(me)
    result["left_processes"] = len(left)
    result["left_veths"] = veths()
    result["left_lease_files"] = len(lease_files(run_dir))
    result["left_files"] = run_files(run_dir)
    if clean_at is None:
        result["note"] = (result.get("note", "") + f" Not clean after {CLEAN_TIMEOUT:.0f} s.").strip()
        for pid, _ in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.5)
        reap()
    os.close(err)
    with open(err_path, errors="replace") as f:
        lines = [l.rstrip() for l in f if l.strip()]
    # one line per distinct message, most frequent first
    counts = {}
    for line in lines:
        counts[line] = counts.get(line, 0) + 1
    result["errors"] = [f"{c} × {l}" for l, c in sorted(counts.items(), key=lambda kv: -kv[1])]
    try:
        with open(debug_path, errors="replace") as f:
            result["debug_last"] = [l.rstrip() for l in f if l.strip()][:60]
    except OSError:
        pass
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)
    print(
        f"scale: {up}/{n} up in {result['up_seconds']:.2f} s, "
        f"{result['overhead_rss_kib_per_container']:.0f} KiB RSS per container (payload excluded), "
        f"clean in {result['clean_seconds']}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
