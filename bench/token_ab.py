"""Before/after in one run: the token service of an earlier commit against this checkout's.

On a shared machine, figures from two runs an hour apart compare nothing; this program
runs both token services side by side on one stack (same config, keys, users, Redis),
each on its own free port, and loads them alternately with wrk (warm path, --runs rounds
of --seconds each), recording req/s, latency and the server CPU-seconds per 1,000 tokens
(the gunicorn process tree, from /proc). The earlier code is taken with ``git archive
COMMIT src`` into a temp dir and put first on ``PYTHONPATH``; the dependencies are this
checkout's (the lock did not change).

With ``--workers A,B`` the same program loads this checkout's token service with A workers
against B workers instead (``server.workers``; with ``--half-rate`` also at half of each
one's max rate), for the default worker count; that writes token_workers_ab.json.

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
from loadgen import hey, wrk
from token_bench import tree_cpu

RESULTS = Path(__file__).parent / "results" / "token_ab.json"
ROOT = Path(__file__).resolve().parent.parent


def _start(
    name: str,
    config: str,
    workdir: Path,
    pythonpath: str | None,
    extra_env: dict[str, str] | None = None,
) -> tuple[Any, int]:
    port = free_port()
    metrics = workdir / f"metrics-{name}"
    metrics.mkdir()
    env = {
        **os.environ,
        "KEELHAUL_AUTH_SERVER__BIND": f"127.0.0.1:{port}",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        **(extra_env or {}),
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
    """Load each service in turn, the order rotating from round to round; with
    ``--half-rate``, each is loaded by hey at half the rate wrk just got from it, too."""
    names = list(servers)
    for run in range(args.runs):
        for name in names[run % len(names) :] + names[: run % len(names)]:
            proc, port = servers[name]
            url = f"http://127.0.0.1:{port}/token?{query}"
            cpu = tree_cpu([proc.pid])
            load = wrk(url, seconds=args.seconds, connections=args.connections, headers=auth)
            spent = tree_cpu([proc.pid]) - cpu
            per_1000 = spent / load.requests * 1000 if load.requests else float("nan")
            row: dict[str, Any] = {**load.row(), "server_cpu_s_per_1000": per_1000}
            line = (
                f"{name:10} run {run}: {load.rps:7.0f} req/s  p99 {load.p99_ms:7.1f} ms  "
                f"server CPU {per_1000:.3f} s/1k"
            )
            if args.half_rate:
                cpu = tree_cpu([proc.pid])
                half = hey(url, seconds=args.seconds, rate=load.rps / 2, headers=auth)
                spent = tree_cpu([proc.pid]) - cpu
                row["half_rps"] = half.rps
                row["half_p99_ms"] = half.p99_ms
                row["half_server_cpu_s_per_1000"] = (
                    spent / half.requests * 1000 if half.requests else float("nan")
                )
                line += (
                    f" | half rate {half.rps:6.0f} req/s  p99 {half.p99_ms:6.1f} ms  "
                    f"CPU {row['half_server_cpu_s_per_1000']:.3f} s/1k"
                )
            results[name].append(row)
            print(line, flush=True)


def _report(
    results: dict[str, list[dict[str, Any]]],
    names: list[str],
    counts: list[int],
    args: argparse.Namespace,
) -> int:
    def median(name: str, key: str) -> float:
        return statistics.median(float(r[key]) for r in results[name])

    keys = ["rps", "p50_ms", "p99_ms", "server_cpu_s_per_1000"]
    if args.half_rate:
        keys += ["half_rps", "half_p99_ms", "half_server_cpu_s_per_1000"]
    summary = {name: {key: median(name, key) for key in keys} for name in results}
    first, second = names
    ratios = {
        f"rps {second} / {first}": summary[second]["rps"] / summary[first]["rps"],
        f"cpu per token {second} / {first}": summary[second]["server_cpu_s_per_1000"]
        / summary[first]["server_cpu_s_per_1000"],
    }
    if args.half_rate:
        ratios[f"half-rate p99 {second} / {first}"] = (
            summary[second]["half_p99_ms"] / summary[first]["half_p99_ms"]
        )
    ratios[f"max-rate p99 {second} / {first}"] = (
        summary[second]["p99_ms"] / summary[first]["p99_ms"]
    )
    print(f"\nload average at the end: {os.getloadavg()}")
    for name, row in summary.items():
        print(f"{name:10} median: " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()))
    for key, value in ratios.items():
        print(f"{key} = {value:.2f}")
    document = {
        "benchmark": "token_ab",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "base": args.base,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "note": "measured on a shared 2-core machine (~6 engineers at work): compare ratios",
        "settings": {
            "seconds": args.seconds,
            "connections": args.connections,
            "runs": args.runs,
            "workers": counts or None,
            "half_rate": args.half_rate,
        },
        "runs": results,
        "median": summary,
        "ratios": ratios,
    }
    out = RESULTS.with_name("token_workers_ab.json") if counts else RESULTS
    write_text(out, json.dumps(document, indent=2) + "\n")
    print(f"\nwritten to {out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="29781f8", help="the earlier commit (default 29781f8)")
    parser.add_argument("--runs", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--workers",
        help="A,B: this checkout with A workers against B workers (instead of --base)",
    )
    parser.add_argument(
        "--half-rate", action="store_true", help="also load each at half its max rate (hey)"
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")] if args.workers else []
    names = [f"{n} workers" for n in counts] if counts else ["before", "after"]
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
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
            if counts:
                for name, n in zip(names, counts, strict=True):
                    env = {"KEELHAUL_AUTH_SERVER__WORKERS": str(n)}
                    servers[name] = _start(name.replace(" ", "-"), config, workdir, None, env)
            else:
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

    return _report(results, names, counts, args)


if __name__ == "__main__":
    sys.exit(main())
