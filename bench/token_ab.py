"""Before/after in one run: the token service of an earlier commit against this checkout's.

On a shared machine, figures from two runs an hour apart compare nothing; this program
runs both token services side by side on one stack (same config, keys, users, Redis),
each on its own free port, and loads them alternately with wrk (warm path, --runs rounds
of --seconds each), recording req/s, latency and the server CPU-seconds per 1,000 tokens
(the gunicorn process tree, from /proc). The earlier code is taken with ``git archive
COMMIT src`` into a temp dir and put first on ``PYTHONPATH``; the dependencies are this
checkout's (the lock did not change).

Writes bench/results/token_ab.json and prints a table.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from keelhaul.atomicfile import write_text
from keelhaul.netutil import free_port, wait_for_port
from keelhaul.stack.stack import Stack
from loadgen import wrk
from token_bench import tree_cpu

RESULTS = Path(__file__).parent / "results" / "token_ab.json"
ROOT = Path(__file__).resolve().parent.parent


def _start(name: str, config: str, workdir: Path, pythonpath: str | None) -> tuple[Any, int]:
    port = free_port()
    metrics = workdir / f"metrics-{name}"
    metrics.mkdir()
    env = {
        **os.environ,
        "KEELHAUL_AUTH_SERVER__BIND": f"127.0.0.1:{port}",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
    }
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    log = (workdir / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "keelhaul", "auth", "serve", "--config", config],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return proc, port


def _rounds(
    servers: dict[str, tuple[Any, int]],
    query: str,
    auth: dict[str, str],
    args: argparse.Namespace,
    results: dict[str, list[dict[str, Any]]],
) -> None:
    """Load each service in turn, the order alternating from round to round."""
    for run in range(args.runs):
        order = ("before", "after") if run % 2 == 0 else ("after", "before")
        for name in order:
            proc, port = servers[name]
            url = f"http://127.0.0.1:{port}/token?{query}"
            cpu = tree_cpu([proc.pid])
            load = wrk(url, seconds=args.seconds, connections=args.connections, headers=auth)
            spent = tree_cpu([proc.pid]) - cpu
            per_1000 = spent / load.requests * 1000 if load.requests else float("nan")
            results[name].append({**load.row(), "server_cpu_s_per_1000": per_1000})
            print(
                f"{name:6} run {run}: {load.rps:7.0f} req/s  p50 {load.p50_ms:7.1f} ms  "
                f"p99 {load.p99_ms:7.0f} ms  server CPU {per_1000:.3f} s/1k tokens",
                flush=True,
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="29781f8", help="the earlier commit (default 29781f8)")
    parser.add_argument("--runs", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    results: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="keelhaul-token-ab-") as tmp:
        workdir = Path(tmp)
        base = workdir / "base"
        base.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.base, "src"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        stack = Stack(workdir / "stack")
        state = stack.up()
        servers: dict[str, tuple[Any, int]] = {}
        try:
            config = state.config["auth"]
            servers["before"] = _start("before", config, workdir, str(base / "src"))
            servers["after"] = _start("after", config, workdir, None)
            for name, (_, port) in servers.items():
                if not wait_for_port("127.0.0.1", port, 30):
                    raise SystemExit(f"the {name} token service did not start; see {workdir}")
            time.sleep(2.0)  # every worker booted
            secret = state.users["reader"].get_secret_value()
            auth = {
                "Authorization": "Basic " + base64.b64encode(f"reader:{secret}".encode()).decode()
            }
            query = f"service={state.service}&scope=repository:bench/app:pull"
            _rounds(servers, query, auth, args, results)
        finally:
            for proc, _ in servers.values():
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            stack.down()

    def median(name: str, key: str) -> float:
        return statistics.median(float(r[key]) for r in results[name])

    summary = {
        name: {
            key: median(name, key) for key in ("rps", "p50_ms", "p99_ms", "server_cpu_s_per_1000")
        }
        for name in results
    }
    ratios = {
        "rps_after_over_before": summary["after"]["rps"] / summary["before"]["rps"],
        "cpu_per_token_after_over_before": summary["after"]["server_cpu_s_per_1000"]
        / summary["before"]["server_cpu_s_per_1000"],
    }
    print()
    for name, row in summary.items():
        print(
            f"{name:6} median: {row['rps']:7.0f} req/s  p50 {row['p50_ms']:7.1f} ms  "
            f"p99 {row['p99_ms']:7.0f} ms  server CPU {row['server_cpu_s_per_1000']:.3f} s/1k"
        )
    for key, value in ratios.items():
        print(f"{key} = {value:.2f}")
    document = {
        "benchmark": "token_ab",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "base": args.base,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "note": "measured on a shared 2-core machine (~6 engineers at work): compare ratios",
        "settings": {"seconds": args.seconds, "connections": args.connections, "runs": args.runs},
        "runs": results,
        "median": summary,
        "ratios": ratios,
    }
    write_text(RESULTS, json.dumps(document, indent=2) + "\n")
    print(f"\nwritten to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
