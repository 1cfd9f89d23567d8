#!/usr/bin/env python3
"""Lists the dependencies a workspace crate declares but never names in its code, and
fails if there is one (run by `make check`). A dependency is used when its crate name
(dashes as underscores, or the name it is renamed to) appears as a path or in a `use`.
Normal dependencies are looked for in src/, dev-dependencies also in tests/ and benches/."""
import pathlib
import re
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def members():
    workspace = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["members"]
    for pattern in workspace:
        for path in sorted(ROOT.glob(pattern)):
            if (path / "Cargo.toml").exists():
                yield path


def sources(crate, dirs):
    for d in dirs:
        for f in (crate / d).rglob("*.rs") if (crate / d).exists() else []:
            yield f.read_text(errors="replace")


def used(name, texts):
    ident = name.replace("-", "_")
    pattern = re.compile(rf"(?<![\w:]){re.escape(ident)}(::|\s*;|\s+as\s|!)")
    return any(pattern.search(t) for t in texts)


def main():
    unused = []
    for crate in members():
        manifest = tomllib.loads((crate / "Cargo.toml").read_text())
        src = list(sources(crate, ["src"]))
        everything = src + list(sources(crate, ["tests", "benches", "examples"]))
        for table, texts in (("dependencies", src), ("dev-dependencies", everything)):
            for name in manifest.get(table, {}):
                if not used(name, texts if table == "dev-dependencies" else src):
                    unused.append(f"{crate.relative_to(ROOT)}: [{table}] {name}")
    for line in unused:
        print(f"unused dependency: {line}")
    return 1 if unused else 0


if __name__ == "__main__":
    sys.exit(main())
