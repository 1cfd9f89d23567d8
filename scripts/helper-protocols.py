#!/usr/bin/env python3
"""Fails if a parent<->helper conversation is built outside common::channel (run by
`make check`): a pipe, a socket pair or a hand-rolled sendmsg/recvmsg in common/ or tools/
other than common/src/channel.rs, unless the file is listed below with the reason."""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PATTERN = re.compile(r"\b(pipe2?|socketpair|UnixStream::pair|sendmsg|recvmsg)\s*(::<[^>]*>)?\(")
ALLOWED = {
    "common/src/channel.rs": "the channel itself",
    # slirp4netns's --ready-fd and --exit-fd are slirp4netns's protocol, not ours.
    "tools/netns/src/rootless.rs": "slirp4netns's own ready and exit pipes",
    # Its conversations (the report, the exec mark's hand-over) use common::channel; the pipes
    # are data: the chain's stdout and stderr into its log, and the exec mark, a close-on-exec
    # pipe whose EOF is COMMAND's exec.
    "common/src/supervisor.rs": "the log's pipes and the close-on-exec exec mark",
    # mntns --ready-fd is a public flag (one "ready" line, as slirp4netns's); nsoci reads it.
    "tools/nsoci/src/create.rs": "the pipe nsoci gives mntns --ready-fd",
    # The same public flags (mntns --ready-fd, pidns --status-fd) for exec and the hooks run
    # inside the container.
    "tools/nsoci/src/exec.rs": "the pipes nsoci gives mntns --ready-fd and pidns --status-fd",
    "tools/nsoci/src/inside.rs": "the pipe nsoci gives pidns --status-fd",
    # runc's --console-socket protocol: the other end is conmon's or containerd's shim's.
    "common/src/console_socket.rs": "runc's console-socket protocol",
}


def main():
    found = []
    roots = [ROOT / "common" / "src", ROOT / "nschain"] + sorted((ROOT / "tools").glob("*/src"))
    for root in roots:
        for path in sorted(root.rglob("*.rs")) if root.exists() else []:
            rel = str(path.relative_to(ROOT))
            if rel in ALLOWED:
                continue
            for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                code = line.split("//", 1)[0]
                if PATTERN.search(code):
                    found.append(f"{rel}:{n}: {line.strip()}")
    for hit in found:
        print(f"helper-protocols: {hit}: talk to helpers through common::channel", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
