"""Print the part of a pip-compile lock file that builds keelhaul: the build backend
(``build-system.requires``) and everything it needs, with their hashes.

The token service image installs its build backend from these lines rather than from an
unpinned ``pip wheel``, so the image is built only from hashes in ``locks/``.
Usage: python deploy/lock_subset.py locks/dev.txt > build.txt   (standard library only)
"""

from __future__ import annotations

import re
import sys

_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==")


def blocks(text: str) -> dict[str, tuple[str, set[str]]]:
    """Lock entry name -> (its lines, the names it is required via)."""
    found: dict[str, tuple[str, set[str]]] = {}
    name = ""
    lines: list[str] = []
    via: set[str] = set()

    def close() -> None:
        if name:
            found[name] = ("".join(lines), via)

    in_via = False
    for line in text.splitlines(keepends=True):
        match = _NAME.match(line)
        if match:
            close()
            name, lines, via, in_via = match.group(1).lower(), [line], set(), False
            continue
        if not name:
            continue
        stripped = line.strip()
        if stripped.startswith("--hash") or stripped.endswith("\\"):
            lines.append(line)
        elif stripped.startswith("# via"):
            rest = stripped.removeprefix("# via").strip()
            in_via = not rest
            if rest:
                via.add(rest)
        elif in_via and stripped.startswith("#"):
            via.add(stripped.lstrip("#").strip())
    close()
    return found


def build_closure(text: str) -> list[str]:
    entries = blocks(text)
    chosen = {n for n, (_, via) in entries.items() if any("build-system" in v for v in via)}
    while True:
        more = {
            n
            for n, (_, via) in entries.items()
            if n not in chosen and any(v.split(" ")[0].lower() in chosen for v in via)
        }
        if not more:
            return sorted(chosen)
        chosen |= more


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: lock_subset.py LOCKFILE", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as fh:
        text = fh.read()
    entries = blocks(text)
    names = build_closure(text)
    if "hatchling" not in names:
        print(f"{argv[1]}: no build backend pinned (re-run make lock)", file=sys.stderr)
        return 1
    sys.stdout.write("".join(entries[n][0] for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
