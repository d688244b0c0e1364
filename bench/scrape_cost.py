"""What one Prometheus scrape costs each part of a ``stack up --monitoring`` stack.

``python bench/scrape_cost.py [--scrapes 30]``: starts a monitored local stack, stops its
Prometheus (SIGSTOP: nobody else scrapes), then fetches each scrape target ``--scrapes``
times and divides the CPU-seconds of the processes that answer (the tier, and the exporter
where one stands between) by the count. At the stack's 1 s scrape interval, CPU-ms per
scrape is CPU-ms per second: the direct bound on what monitoring takes from the tiers,
which a throughput A/B (``bench/diagnose_bench.py --only monitoring``) cannot resolve on a
noisy host. Results in bench/results/scrape_cost.json. The stack is stopped by pid.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from keelhaul.stack import Stack
from keelhaul.stack.settings import StackSettings

RESULTS = Path(__file__).resolve().parent / "results" / "scrape_cost.json"

# target -> (port name in stack.json, path, the components whose CPU answers it)
TARGETS = {
    "token service /metrics": ("auth", "/metrics", ("auth",)),
    "registry /metrics": ("registry_debug", "/metrics", ("registry",)),
    "nginx-exporter (stub_status)": ("nginx_exporter", "/metrics", ("nginx", "nginx_exporter")),
    "redis-exporter": ("redis_exporter", "/metrics", ("redis", "redis_exporter")),
    "process-exporter": ("process_exporter", "/metrics", ("process_exporter",)),
    "node-exporter": ("node_exporter", "/metrics", ("node_exporter",)),
}


def tree_cpu(pid: int) -> float:
    proc = psutil.Process(pid)
    times = proc.cpu_times()
    total = times.user + times.system
    for child in proc.children(recursive=True):
        try:
            t = child.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=30)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="keelhaul-bench-scrape-"))
    stack = Stack(workdir / "stack", StackSettings(monitoring=True))
    state = stack.up()
    rows: dict[str, dict[str, object]] = {}
    load = [round(os.getloadavg()[0], 2)]
    try:
        pids, ports = dict(state.pids), dict(state.ports)
        os.kill(pids["prometheus"], signal.SIGSTOP)
        try:
            with httpx.Client(timeout=30) as client:
                for name, (port, path, components) in TARGETS.items():
                    url = f"http://127.0.0.1:{ports[port]}{path}"
                    client.get(url).raise_for_status()
                    before = {c: tree_cpu(pids[c]) for c in components}
                    t0 = time.monotonic()
                    for _ in range(args.scrapes):
                        client.get(url).raise_for_status()
                    wall = (time.monotonic() - t0) / args.scrapes
                    cpu = {c: (tree_cpu(pids[c]) - before[c]) / args.scrapes for c in components}
                    rows[name] = {
                        "wall_ms": round(wall * 1000, 2),
                        "cpu_ms": {c: round(v * 1000, 2) for c, v in cpu.items()},
                    }
                    shown = ", ".join(f"{c} {v * 1000:.1f}" for c, v in cpu.items())
                    print(f"{name:30} {wall * 1000:6.1f} ms a scrape; CPU ms a scrape: {shown}")
        finally:
            os.kill(pids["prometheus"], signal.SIGCONT)
    finally:
        stack.down()
    load.append(round(os.getloadavg()[0], 2))
    tiers = sum(
        float(v)
        for row in rows.values()
        for c, v in row["cpu_ms"].items()  # type: ignore[attr-defined]
        if not c.endswith("exporter")
    )
    exporters = sum(
        float(v)
        for row in rows.values()
        for c, v in row["cpu_ms"].items()  # type: ignore[attr-defined]
        if c.endswith("exporter")
    )
    print(
        f"at one scrape a second: the tiers {tiers:.1f} CPU-ms/s ({tiers / 20:.2f} % of the "
        f"host's 2 CPUs), the exporters {exporters:.1f} CPU-ms/s ({exporters / 20:.2f} %); "
        f"Prometheus' own work not included; load average {load[0]} -> {load[1]}"
    )
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "scrape_cost",
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "scrapes": args.scrapes,
                "load_avg_1m": load,
                "targets": rows,
                "tiers_cpu_ms_per_s": round(tiers, 2),
                "exporters_cpu_ms_per_s": round(exporters, 2),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
