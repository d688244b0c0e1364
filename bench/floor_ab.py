"""The serving floor, worker class against worker class, in one run.

Starts the constant-200 app (``bench/floor_app.py``) once per variant, each on its own
gunicorn with the same settings, and loads them alternately with wrk on loopback
(--rounds rounds of --seconds each, the variants' order rotated every round), so that the
machine's other load falls on every variant alike. Reports the median req/s and p99 of
each, its server CPU-seconds per 1,000 requests (the gunicorn process tree, from /proc),
and each ratio to the first variant. Variants: ``NAME=WORKER_CLASS[:WORKERS]``.

Writes bench/results/floor_ab.json (or --out) and prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from keelhaul.atomicfile import write_text
from loadgen import wrk
from token_bench import WORKERS, Row, gunicorn_app, measured

RESULTS = Path(__file__).parent / "results" / "floor_ab.json"
DEFAULT_VARIANTS = [
    "stock=gevent",
    "keelhaul=keelhaul.auth.workers.JsonGeventWorker",
    "conditional-yield=floor_workers.ConditionalYield",
    "no-yield=floor_workers.NoYield",
]


def _variant(text: str) -> tuple[str, str, int]:
    name, _, spec = text.partition("=")
    cls, _, workers = spec.partition(":")
    if not name or not cls:
        raise SystemExit(f"floor_ab: variant {text!r}: expected NAME=WORKER_CLASS[:WORKERS]")
    return name, cls, int(workers) if workers else WORKERS


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("variants", nargs="*", default=DEFAULT_VARIANTS)
    parser.add_argument("--app", default="floor_app:app")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    variants = [_variant(v) for v in args.variants]
    runs: dict[str, list[Row]] = {name: [] for name, _, _ in variants}
    load = os.getloadavg()
    with (
        tempfile.TemporaryDirectory(prefix="keelhaul-floor-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        served = {
            name: stack.enter_context(
                gunicorn_app(Path(tmp), app=args.app, worker_class=cls, workers=workers)
            )
            for name, cls, workers in variants
        }
        names = list(served)
        for r in range(args.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                pid, url = served[name]
                runs[name].append(
                    measured(
                        [pid],
                        lambda url=url: wrk(  # type: ignore[misc]
                            url, seconds=args.seconds, connections=args.connections
                        ),
                    )
                )
    summary: dict[str, dict[str, Any]] = {}
    for name, cls, workers in variants:
        rows = runs[name]
        summary[name] = {
            "worker_class": cls,
            "workers": workers,
            "rps": statistics.median(x.load.rps for x in rows),
            "p99_ms": statistics.median(x.load.p99_ms for x in rows),
            "server_cpu_s_per_1000": statistics.median(x.per_1000(x.server_cpu_s) for x in rows),
            "loadgen_cpu_s_per_1000": statistics.median(x.per_1000(x.loadgen_cpu_s) for x in rows),
            "errors": sum(x.load.errors for x in rows),
            "rounds": [x.row() for x in rows],
        }
    base = summary[variants[0][0]]
    print(f"load average before the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(
        f"\n{'variant':18} {'workers':>7} {'req/s':>8} {'x base':>7} {'p99 ms':>8} "
        f"{'srv CPU s/1k':>12} {'x base':>7} {'errors':>6}"
    )
    for name, s in summary.items():
        s["rps_over_base"] = s["rps"] / base["rps"]
        s["cpu_over_base"] = s["server_cpu_s_per_1000"] / base["server_cpu_s_per_1000"]
        print(
            f"{name:18} {s['workers']:7d} {s['rps']:8.0f} {s['rps_over_base']:7.3f} "
            f"{s['p99_ms']:8.2f} {s['server_cpu_s_per_1000']:12.4f} {s['cpu_over_base']:7.3f} "
            f"{s['errors']:6d}"
        )
    doc = {
        "benchmark": "floor_ab",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_before": load,
        "settings": {
            "app": args.app,
            "rounds": args.rounds,
            "seconds": args.seconds,
            "connections": args.connections,
        },
        "note": "shared 2-core machine: compare the ratios of one run",
        "variants": summary,
    }
    write_text(args.out, json.dumps(doc, indent=2) + "\n")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
