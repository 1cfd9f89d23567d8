#!/usr/bin/env python3
"""Writes common/src/seccomp_policy/table.rs: the x86_64 system call names and numbers, from
the kernel's uapi header (Debian's linux-libc-dev) plus the calls newer kernels added since
(numbers from 425 up are the same on every architecture). Run it again when the header grows."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
HEADER = pathlib.Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
# Added after the header Debian 12 ships (Linux 6.1): name, number.
NEWER = [
    ("cachestat", 451), ("fchmodat2", 452), ("map_shadow_stack", 453), ("futex_wake", 454),
    ("futex_wait", 455), ("futex_requeue", 456), ("statmount", 457), ("listmount", 458),
    ("lsm_get_self_attr", 459), ("lsm_set_self_attr", 460), ("lsm_list_modules", 461),
    ("mseal", 462), ("setxattrat", 463), ("getxattrat", 464), ("listxattrat", 465),
    ("removexattrat", 466), ("open_tree_attr", 467), ("file_getattr", 468),
    ("file_setattr", 469),
]

calls = {}
for line in HEADER.read_text().splitlines():
    m = re.match(r"#define __NR_(\w+)\s+(\d+)", line)
    if m:
        calls[m.group(1)] = int(m.group(2))
for name, nr in NEWER:
    calls.setdefault(name, nr)
rows = "\n".join(f'    ("{n}", {nr}),' for n, nr in sorted(calls.items(), key=lambda c: c[1]))
out = f"""//! x86_64 system call numbers by name (made by scripts/gen-syscalls.py from the kernel's
//! uapi header; do not edit by hand).

/// `(name, number)`, in number order.
pub const X86_64: &[(&str, u32)] = &[
{rows}
];
"""
(ROOT / "common/src/seccomp_policy/table.rs").write_text(out)
print(f"{len(calls)} system calls")
