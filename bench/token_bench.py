"""make bench-token: what the token service sustains, against what bounds it.

  (a) warm path: token requests whose password was verified before (credential cache)
  (a') the same at half the maximum rate (hey), for the latency a sane load sees: from
       hey's 16 connections, and again from 4 (the same rate; 16 connections each pacing
       itself arrive in bursts: p50 3.4 against 1.1-1.7 ms, p99 8.2 against 3.0-3.6 ms)
  (a'') the warm path through the stack's nginx entry point (what clients use)
  (b) cold path: the same with the cache off, bcrypt cost 10 on every request
  (c) the registry's own htpasswd basic auth, same bcrypt-10 user, manifest GET
  (d) the serving floor: a constant-200 WSGI app on the same gunicorn settings and worker
  (e) a Flask hello-world on the same gunicorn: how much of a - d is Flask's own

Every row also gives the CPU-seconds per 1,000 requests of the serving processes (the
process tree of gunicorn, plus nginx for a'', the registry for c) and of the load
generator: on a shared machine, CPU per request survives where req/s does not. Every
figure comes from one run on this machine, load generator included (wrk/hey share the 2
cores with the servers), so only the ratios measured together mean much.
Writes bench/results/token.json and prints a table.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from keelhaul.atomicfile import write_text
from keelhaul.auth.authn.htpasswd import hash_password
from keelhaul.auth.serve import WORKER_CLASSES
from keelhaul.client.layout import write_image
from keelhaul.netutil import free_port, wait_for_port
from keelhaul.stack import procs
from keelhaul.stack.settings import StackSettings
from keelhaul.stack.stack import Stack

sys.path.insert(0, str(Path(__file__).parent))
from loadgen import LoadResult, hey, wrk

RESULTS = Path(__file__).parent / "results" / "token.json"
WORKERS = 2 * (os.cpu_count() or 1)  # the token service's default, used for (d) too
WORKER_CLASS = WORKER_CLASSES["gevent"]  # the token service's own gevent worker


def tree_cpu(roots: list[int]) -> float:
    """User + system CPU-seconds of ``roots`` and every live descendant (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    spent: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        pid = int(entry)
        children.setdefault(int(fields[1]), []).append(pid)
        spent[pid] = (int(fields[11]) + int(fields[12])) / tick
    total, todo, seen = 0.0, list(roots), set()
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            total += spent.get(pid, 0.0)
            todo.extend(children.get(pid, ()))
    return total


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Row:
    """A load result with the CPU it cost the servers and the load generator."""

    load: LoadResult
    server_cpu_s: float
    loadgen_cpu_s: float

    def per_1000(self, cpu: float) -> float:
        return cpu / self.load.requests * 1000 if self.load.requests else float("nan")

    def row(self) -> dict[str, Any]:
        return {
            **self.load.row(),
            "server_cpu_s": round(self.server_cpu_s, 3),
            "loadgen_cpu_s": round(self.loadgen_cpu_s, 3),
            "server_cpu_s_per_1000": round(self.per_1000(self.server_cpu_s), 4),
            "loadgen_cpu_s_per_1000": round(self.per_1000(self.loadgen_cpu_s), 4),
        }


def measured(servers: list[int], run: Callable[[], LoadResult]) -> Row:
    server, loadgen = tree_cpu(servers), _children_cpu()
    load = run()
    return Row(load, tree_cpu(servers) - server, _children_cpu() - loadgen)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def token_run(
    workdir: Path, *, cache: bool, seconds: int, connections: int, warm: bool
) -> dict[str, Row]:
    stack = Stack(workdir, StackSettings(credential_cache=cache, bcrypt_cost=10))
    state = stack.up()
    try:
        query = f"?service={state.service}&scope=repository:bench/app:pull"
        url = f"{state.token_url}{query}"
        auth = {"Authorization": basic("reader", state.users["reader"].get_secret_value())}
        r = httpx.get(url, headers=auth, timeout=10)  # primes the cache on the warm path
        r.raise_for_status()
        servers = [state.pids["auth"]]
        out = {
            "max": measured(
                servers, lambda: wrk(url, seconds=seconds, connections=connections, headers=auth)
            )
        }
        if warm:
            rate = out["max"].load.rps / 2
            out["half"] = measured(
                servers, lambda: hey(url, seconds=seconds, rate=rate, headers=auth)
            )
            out["half_c4"] = measured(
                servers, lambda: hey(url, seconds=seconds, rate=rate, workers=4, headers=auth)
            )
            entry = f"{state.entry}/token{query}"
            httpx.get(entry, headers=auth, timeout=10).raise_for_status()
            out["nginx"] = measured(
                [*servers, state.pids["nginx"]],
                lambda: wrk(entry, seconds=seconds, connections=connections, headers=auth),
            )
        return out
    finally:
        stack.down()


def registry_htpasswd_run(workdir: Path, *, seconds: int, connections: int) -> Row:
    password = "bench-" + os.urandom(9).hex()
    (workdir / "htpasswd").write_text(f"reader:{hash_password(password, 10)}\n")
    port = free_port()
    config = {
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(workdir / "data")}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": os.urandom(16).hex()},
        "auth": {"htpasswd": {"realm": "bench", "path": str(workdir / "htpasswd")}},
    }
    (workdir / "registry.yml").write_text(json.dumps(config))  # JSON is YAML
    registry = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    pid = procs.spawn(
        [registry, "serve", str(workdir / "registry.yml")],
        log=workdir / "registry.log",
        env={"PATH": os.environ.get("PATH", "")},
    )
    ident = procs.identity(pid, ["docker-registry"])
    try:
        if not wait_for_port("127.0.0.1", port, 20):
            raise SystemExit(
                "registry (htpasswd) did not start; see " + str(workdir / "registry.log")
            )
        write_image(workdir / "image", layers=1, layer_size=64 * 1024)
        authfile = workdir / "auth.json"
        authfile.write_text(
            json.dumps(
                {
                    "auths": {
                        f"127.0.0.1:{port}": {
                            "auth": base64.b64encode(f"reader:{password}".encode()).decode()
                        }
                    }
                }
            )
        )
        authfile.chmod(0o600)
        subprocess.run(
            [
                "skopeo",
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                "--dest-authfile",
                str(authfile),
                f"oci:{workdir / 'image'}:latest",
                f"docker://127.0.0.1:{port}/bench/app:1",
            ],
            check=True,
            timeout=120,
        )
        url = f"http://127.0.0.1:{port}/v2/bench/app/manifests/1"
        headers = {
            "Authorization": basic("reader", password),
            "Accept": "application/vnd.oci.image.manifest.v1+json",
        }
        httpx.get(url, headers=headers, timeout=10).raise_for_status()
        return measured(
            [pid], lambda: wrk(url, seconds=seconds, connections=connections, headers=headers)
        )
    finally:
        procs.stop_all([ident], timeout=10)


@contextlib.contextmanager
def gunicorn_app(
    workdir: Path, *, app: str, worker_class: str = WORKER_CLASS, workers: int = WORKERS
) -> Iterator[tuple[int, str]]:
    """``app`` (a WSGI app spec, in ``bench/``) on the token service's gunicorn settings:
    (the master's pid, a URL) while the block runs; stopped by pid after it."""
    port = free_port()
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    log = workdir / f"gunicorn-{port}.log"
    pid = procs.spawn(
        [
            gunicorn,
            "-k",
            worker_class,
            "-w",
            str(workers),
            "--worker-connections",
            "1000",
            "-t",
            "180",
            "-b",
            f"127.0.0.1:{port}",
            "--chdir",
            str(Path(__file__).parent),
            "--no-control-socket",
            app,
        ],
        log=log,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(Path(__file__).parent)},
    )
    ident = procs.identity(pid, ["gunicorn"])
    try:
        if not wait_for_port("127.0.0.1", port, 20):
            raise SystemExit(f"{app} did not start; see {log}")
        time.sleep(1.0)  # let every worker boot
        yield pid, f"http://127.0.0.1:{port}/token"
    finally:
        procs.stop_all([ident], timeout=10)


def floor_run(workdir: Path, *, app: str, seconds: int, connections: int) -> Row:
    """``app`` on the token service's gunicorn settings and worker class, loaded by wrk."""
    with gunicorn_app(workdir, app=app) as (pid, url):
        return measured([pid], lambda: wrk(url, seconds=seconds, connections=connections))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10, help="per measurement")
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    s, c = args.seconds, args.connections
    loadavg_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="keelhaul-bench-") as tmp:
        root = Path(tmp)
        for sub in ("warm", "cold", "htpasswd", "floor", "flask"):
            (root / sub).mkdir()
        print("(a) warm path, (a') at half its rate, (a'') through nginx ...", flush=True)
        warm = token_run(root / "warm", cache=True, seconds=s, connections=c, warm=True)
        print("(b) cold path ...", flush=True)
        cold = token_run(root / "cold", cache=False, seconds=s, connections=16, warm=False)
        print("(c) registry htpasswd ...", flush=True)
        htp = registry_htpasswd_run(root / "htpasswd", seconds=s, connections=16)
        print("(d) serving floor ...", flush=True)
        floor = floor_run(root / "floor", app="floor_app:app", seconds=s, connections=c)
        print("(e) Flask hello-world ...", flush=True)
        flask = floor_run(
            root / "flask", app="flask_floor_app:create_app()", seconds=s, connections=c
        )

    a, half, half4 = warm["max"], warm["half"], warm["half_c4"]
    nginx, b = warm["nginx"], cold["max"]
    a_over_d = a.load.rps / floor.load.rps
    ratios: dict[str, float | None] = {
        "a_over_c": a.load.rps / htp.load.rps if htp.load.rps else None,
        "a_over_d": a_over_d,
        "e_over_d": flask.load.rps / floor.load.rps,
        "a_over_e": a.load.rps / flask.load.rps,
        "a_over_b": a.load.rps / b.load.rps if b.load.rps else None,
        "cpu_per_token_a_over_d": a.per_1000(a.server_cpu_s) / floor.per_1000(floor.server_cpu_s),
    }
    targets = {
        "a_over_c >= 100": ratios["a_over_c"] is not None and ratios["a_over_c"] >= 100,
        "a_over_d >= 0.4": a_over_d >= 0.4,
        "warm p99 <= 10 ms at half max rate": half.load.p99_ms <= 10.0,
        "warm p99 <= 10 ms at half max rate, 4 connections": half4.load.p99_ms <= 10.0,
        "warm p99 <= 100 ms at max rate": a.load.p99_ms <= 100.0,
    }
    rows = [
        ("(a) token, warm (cache hit)", a),
        ("(a') token, warm, at half max rate", half),
        ("(a') the same from 4 connections", half4),
        ("(a'') token, warm, through nginx", nginx),
        ("(b) token, cold (bcrypt 10)", b),
        ("(c) registry htpasswd, manifest GET", htp),
        ("(d) constant 200, same gunicorn", floor),
        ("(e) Flask hello-world, same gunicorn", flask),
    ]
    print(
        f"\n{'measurement':38} {'req/s':>8} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>8} "
        f"{'errors':>6} {'srv CPU s/1k':>12} {'gen CPU s/1k':>12}"
    )
    for name, r in rows:
        x = r.load
        print(
            f"{name:38} {x.rps:8.1f} {x.p50_ms:7.2f} {x.p90_ms:7.2f} {x.p99_ms:8.2f} "
            f"{x.errors:6d} {r.per_1000(r.server_cpu_s):12.3f} {r.per_1000(r.loadgen_cpu_s):12.3f}"
        )
    print()
    for key, value in ratios.items():
        print(f"{key:24} = {value:.3f}" if value is not None else f"{key} = n/a")
    for key, ok in targets.items():
        print(f"target {key}: {'met' if ok else 'NOT met'}")
    doc: dict[str, Any] = {
        "benchmark": "token",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
        },
        "settings": {
            "seconds": s,
            "connections": c,
            "workers": WORKERS,
            "worker_class": WORKER_CLASS,
            "worker_connections": 1000,
            "bcrypt_cost": 10,
        },
        "note": "2 cores shared by the servers and the load generator: compare ratios of one run",
        "loadavg": {"start": loadavg_start, "end": os.getloadavg()},
        "results": {
            "warm": a.row(),
            "warm_half_rate": half.row(),
            "warm_half_rate_4_connections": half4.row(),
            "warm_through_nginx": nginx.row(),
            "cold": b.row(),
            "registry_htpasswd": htp.row(),
            "floor": floor.row(),
            "flask_hello": flask.row(),
        },
        "ratios": ratios,
        "targets": targets,
    }
    write_text(RESULTS, json.dumps(doc, indent=2) + "\n")
    print(f"\nwritten to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
