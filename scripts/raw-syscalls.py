#!/usr/bin/env python3
"""Fails if a raw system call or a kernel constant of common/src/sys is found outside it (run by
`make check`; issue 14: one syscall module, one error and fallback policy).

Checked in every .rs file of common/, tools/, nschain/ and tests/ outside common/src/sys:
- a raw call: `libc::syscall(`, or the libc function of a call common::sys wraps
  (`libc::flock(`, `libc::close_range(`, `libc::pidfd_*`, `libc::capset`, a seccomp install);
- a constant defined in common/src/sys defined again (`const NAME`), or any constant of the
  kernel families common::sys owns (MOUNT_ATTR_*, OPEN_TREE_*, MOVE_MOUNT_*, FSCONFIG_*, ...).

bench/floor is left out on purpose: it measures the kernel's own price of a chain, with no
nschain code between the program and the kernel.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCANNED = ["common", "tools", "nschain", "tests"]
SYS = ROOT / "common" / "src" / "sys"

RAW_CALLS = [
    (re.compile(r"\blibc::syscall\s*\("), "raw libc::syscall"),
    (re.compile(r"\blibc::flock\s*\("), "flock (common::sys::fs)"),
    (re.compile(r"\blibc::close_range\s*\("), "close_range (common::sys::fs)"),
    (re.compile(r"\blibc::pidfd_\w+\s*\("), "pidfd (common::sys::process)"),
    (re.compile(r"\blibc::capset\s*\("), "capset (common::sys::process)"),
    (re.compile(r"\bPR_SET_SECCOMP\b"), "seccomp install (common::sys::bpf)"),
    (re.compile(r"\bSO_ATTACH_FILTER\b"), "socket filter (common::sys::bpf)"),
]
OWNED_FAMILIES = re.compile(
    r"^(MOUNT_ATTR_\w+|OPEN_TREE_\w+|MOVE_MOUNT_\w+|FSCONFIG_\w+|FSOPEN_\w+|FSMOUNT_\w+|"
    r"FSPICK_\w+|AT_RECURSIVE|CLOSE_RANGE_\w+|PIDFD_\w+|KEYCTL_\w+|KEY_SPEC_\w+|AUDIT_ARCH\w*|"
    r"X32_SYSCALL_BIT|TIOC\w+)$"
)
CONST = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?const\s+([A-Z][A-Z0-9_]*)\s*:")


def code_lines(path):
    """(number, line) of every line that is not a comment."""
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("//") or stripped.startswith("*"):
            continue
        yield number, line.split("//", 1)[0] if "\"" not in line else line


def in_sys(path):
    return SYS in path.parents


def main():
    owned = set()
    for path in SYS.rglob("*.rs"):
        for _, line in code_lines(path):
            m = CONST.match(line)
            if m:
                owned.add(m.group(1))
    problems = []
    for top in SCANNED:
        base = ROOT / top
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*.rs")):
            if in_sys(path) or "target" in path.relative_to(ROOT).parts:
                continue
            rel = path.relative_to(ROOT)
            for number, line in code_lines(path):
                for pattern, what in RAW_CALLS:
                    if pattern.search(line):
                        problems.append(f"{rel}:{number}: {what} outside common/src/sys")
                m = CONST.match(line)
                if m and (m.group(1) in owned or OWNED_FAMILIES.match(m.group(1))):
                    problems.append(
                        f"{rel}:{number}: const {m.group(1)} duplicates common::sys (use it from there)"
                    )
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(
            f"raw-syscalls: {len(problems)} raw call(s) or constant(s) outside common/src/sys",
            file=sys.stderr,
        )
        return 1
    print("raw-syscalls: every raw system call is in common/src/sys")
    return 0


if __name__ == "__main__":
    sys.exit(main())
