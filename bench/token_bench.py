"""make bench-token: what the token service sustains, against what bounds it.

  (a) warm path: token requests whose password was verified before (credential cache)
  (b) cold path: the same with the cache off, bcrypt cost 10 on every request
  (c) the registry's own htpasswd basic auth, same bcrypt-10 user, manifest GET
  (d) the serving floor: a constant-200 WSGI app on the same gunicorn/gevent settings

Every figure comes from one run on this machine, load generator included (wrk/hey share
the 2 cores with the servers), so only the ratios measured together mean much.
Writes bench/results/token.json and prints a table.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from keelhaul.auth.authn.htpasswd import hash_password
from keelhaul.client.layout import write_image
from keelhaul.netutil import free_port, wait_for_port
from keelhaul.stack import procs
from keelhaul.stack.settings import StackSettings
from keelhaul.stack.stack import Stack

sys.path.insert(0, str(Path(__file__).parent))
from loadgen import LoadResult, hey, wrk

RESULTS = Path(__file__).parent / "results" / "token.json"
WORKERS = 2 * (os.cpu_count() or 1)  # the token service's default, used for (d) too


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def token_run(
    workdir: Path, *, cache: bool, seconds: int, connections: int, half_rate: bool
) -> dict[str, LoadResult]:
    stack = Stack(workdir, StackSettings(credential_cache=cache, bcrypt_cost=10))
    state = stack.up()
    try:
        url = f"{state.token_url}?service={state.service}&scope=repository:bench/app:pull"
        auth = {"Authorization": basic("reader", state.users["reader"].get_secret_value())}
        r = httpx.get(url, headers=auth, timeout=10)  # primes the cache on the warm path
        r.raise_for_status()
        out = {"max": wrk(url, seconds=seconds, connections=connections, headers=auth)}
        if half_rate:
            out["half"] = hey(url, seconds=seconds, rate=out["max"].rps / 2, headers=auth)
        return out
    finally:
        stack.down()


def registry_htpasswd_run(workdir: Path, *, seconds: int, connections: int) -> LoadResult:
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
        return wrk(url, seconds=seconds, connections=connections, headers=headers)
    finally:
        procs.stop_all([ident], timeout=10)


def floor_run(workdir: Path, *, seconds: int, connections: int) -> LoadResult:
    port = free_port()
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    pid = procs.spawn(
        [
            gunicorn,
            "-k",
            "gevent",
            "-w",
            str(WORKERS),
            "--worker-connections",
            "1000",
            "-t",
            "180",
            "-b",
            f"127.0.0.1:{port}",
            "--chdir",
            str(Path(__file__).parent),
            "--no-control-socket",
            "floor_app:app",
        ],
        log=workdir / "floor.log",
        env={"PATH": os.environ.get("PATH", "")},
    )
    ident = procs.identity(pid, ["gunicorn"])
    try:
        if not wait_for_port("127.0.0.1", port, 20):
            raise SystemExit("floor app did not start; see " + str(workdir / "floor.log"))
        time.sleep(1.0)  # let every worker boot
        return wrk(f"http://127.0.0.1:{port}/token", seconds=seconds, connections=connections)
    finally:
        procs.stop_all([ident], timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10, help="per measurement")
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    s, c = args.seconds, args.connections
    with tempfile.TemporaryDirectory(prefix="keelhaul-bench-") as tmp:
        root = Path(tmp)
        for sub in ("warm", "cold", "htpasswd", "floor"):
            (root / sub).mkdir()
        print("(a) warm path ...", flush=True)
        warm = token_run(root / "warm", cache=True, seconds=s, connections=c, half_rate=True)
        print("(b) cold path ...", flush=True)
        cold = token_run(root / "cold", cache=False, seconds=s, connections=16, half_rate=False)[
            "max"
        ]
        print("(c) registry htpasswd ...", flush=True)
        htp = registry_htpasswd_run(root / "htpasswd", seconds=s, connections=16)
        print("(d) serving floor ...", flush=True)
        floor = floor_run(root / "floor", seconds=s, connections=c)

    a = warm["max"]
    half = warm["half"]
    ratios = {
        "a_over_c": a.rps / htp.rps if htp.rps else None,
        "a_over_d": a.rps / floor.rps,
        "a_over_b": a.rps / cold.rps if cold.rps else None,
    }
    targets = {
        "a_over_c >= 100": ratios["a_over_c"] is not None and ratios["a_over_c"] >= 100,
        "a_over_d >= 0.7": ratios["a_over_d"] >= 0.7,
        "warm p99 <= 10 ms at half max rate": half.p99_ms <= 10.0,
    }
    rows = [
        ("(a) token, warm (cache hit)", a),
        ("(a') token, warm, at half max rate", half),
        ("(b) token, cold (bcrypt 10)", cold),
        ("(c) registry htpasswd, manifest GET", htp),
        ("(d) constant 200, same gunicorn", floor),
    ]
    print(
        f"\n{'measurement':40} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'errors':>7}"
    )
    for name, r in rows:
        print(
            f"{name:40} {r.rps:9.1f} {r.p50_ms:8.2f} {r.p90_ms:8.2f} {r.p99_ms:8.2f} {r.errors:7d}"
        )
    print()
    for key, value in ratios.items():
        print(f"{key:10} = {value:.2f}" if value is not None else f"{key} = n/a")
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
            "worker_class": "gevent",
            "worker_connections": 1000,
            "bcrypt_cost": 10,
        },
        "results": {
            "warm": a.row(),
            "warm_half_rate": half.row(),
            "cold": cold.row(),
            "registry_htpasswd": htp.row(),
            "floor": floor.row(),
        },
        "ratios": ratios,
        "targets": targets,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwritten to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
