"""Run Debian's wrk (closed loop, maximum rate) and hey (rate-limited) and parse their output.

Credentials go to wrk through a Lua script file (mode 0600), not the command line.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LoadResult", "hey", "wrk"]

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


@dataclass
class LoadResult:
    tool: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int

    def row(self) -> dict[str, float | int | str]:
        return self.__dict__.copy()


def _dur(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"unparsable duration {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> LoadResult:
    pct = {m.group(1): _dur(m.group(2)) for m in re.finditer(r"^\s+(\d+)%\s+(\S+)\s*$", out, re.M)}
    total = re.search(r"(\d+) requests in ([\d.]+\w+),", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if not (total and rps and {"50", "90", "99"} <= set(pct)):
        raise ValueError("wrk output not understood:\n" + out)
    errors = int(non2xx.group(1)) if non2xx else 0
    if sock:
        errors += sum(int(x) for x in sock.groups())
    return LoadResult(
        "wrk",
        int(total.group(1)),
        _dur(total.group(2)),
        float(rps.group(1)),
        pct["50"] * 1e3,
        pct["90"] * 1e3,
        pct["99"] * 1e3,
        errors,
    )


def wrk(
    url: str,
    *,
    seconds: int,
    connections: int,
    threads: int = 2,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    lua = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in (headers or {}).items())
    fd, script = tempfile.mkstemp(suffix=".lua")
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, lua.encode())
        os.close(fd)
        out = subprocess.run(
            [
                "wrk",
                "--latency",
                "-t",
                str(threads),
                "-c",
                str(connections),
                "-d",
                f"{seconds}s",
                "-s",
                script,
                url,
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        ).stdout
    finally:
        Path(script).unlink(missing_ok=True)
    return parse_wrk(out)


def parse_hey(out: str) -> LoadResult:
    pct = {
        m.group(1): float(m.group(2))
        for m in re.finditer(r"(\d+)%% in ([\d.]+) secs".replace("%%", "%"), out)
    }
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total_t = re.search(r"Total:\s+([\d.]+) secs", out)
    codes = {int(c): int(n) for c, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)}
    errs = re.search(r"Error distribution:\n((?:\s+\[\d+\].*\n?)+)", out)
    err_n = sum(int(n) for n in re.findall(r"\[(\d+)\]", errs.group(1))) if errs else 0
    if not (rps and total_t and pct):
        raise ValueError("hey output not understood:\n" + out)
    ok = codes.get(200, 0)
    return LoadResult(
        "hey",
        sum(codes.values()),
        float(total_t.group(1)),
        float(rps.group(1)),
        pct["50"] * 1e3,
        pct["90"] * 1e3,
        pct["99"] * 1e3,
        sum(codes.values()) - ok + err_n,
    )


def hey(
    url: str, *, seconds: int, rate: float, workers: int = 16, headers: dict[str, str] | None = None
) -> LoadResult:
    """Open-ish loop: ``workers`` each limited to rate/workers queries per second."""
    argv = ["hey", "-z", f"{seconds}s", "-c", str(workers), "-q", f"{max(rate / workers, 0.1):.2f}"]
    for k, v in (headers or {}).items():
        argv += ["-H", f"{k}: {v}"]
    out = subprocess.run(
        [*argv, url], check=True, capture_output=True, text=True, timeout=seconds + 60
    ).stdout
    return parse_hey(out)
