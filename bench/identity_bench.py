"""make bench-token's identity rows (bench/identity_bench.py): an LDAP user against an htpasswd
user on the same token service, warm and cold.

  warm   credential cache on: a cache hit, whatever the backend (the directory is not asked)
  cold   cache off: htpasswd pays bcrypt 10 per request; LDAP a bind per request against the
         local slapd (the search result is kept ``lookup_ttl``, as in production)
  cold, search + bind   LDAP with ``lookup_ttl: 0``: a search and a bind per request

One ``keelhaul auth serve`` (gunicorn, the token service's gevent worker, 2 x CPU workers)
per cache setting serves both users, so each pair is measured on the same server, in
alternating rounds (htpasswd, LDAP, htpasswd, LDAP, ...), and compared as a ratio. Server
CPU is the token service's process tree plus slapd's, per 1,000 requests. The target from
issue 12: warm LDAP within 10 % of warm htpasswd. wrk shares the machine with the servers,
so the program also measures the authenticator alone, in this process (CPU microseconds per
warm login: backends' lookups and the credential cache, no HTTP), which neighbours on a
shared machine do not inflate. Writes bench/results/identity.json and prints a table.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from keelhaul.atomicfile import write_text
from keelhaul.auth.authn.authenticator import Authenticator
from keelhaul.auth.authn.htpasswd import HtpasswdFile, hash_password
from keelhaul.auth.authn.ldap import LdapDirectory
from keelhaul.auth.authn.options import LdapOptions
from keelhaul.auth.credcache import CredentialCache, LocalCache
from keelhaul.auth.keygen import generate_keypair
from keelhaul.netutil import free_port, wait_for_port

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from loadgen import wrk
from support.slapd import PASSWORDS, SlapdServer, start_slapd
from token_bench import WORKERS, Row, basic, measured

RESULTS = Path(__file__).parent / "results" / "identity.json"
BCRYPT_COST = 10
LDAP_USER = "alice"  # in a group (developers, nested engineering): the group search runs too


@contextmanager
def token_service(
    workdir: Path, slapd: SlapdServer, password: str, *, cache: bool, lookup_ttl: float
) -> Iterator[tuple[str, int]]:
    """``keelhaul auth serve`` with an htpasswd user and the LDAP directory; (URL, pid)."""
    workdir.mkdir()
    pair = generate_keypair(workdir / "keys")
    (workdir / "htpasswd").write_text(f"reader:{hash_password(password, BCRYPT_COST)}\n")
    port = free_port()
    config = {
        "secret": os.urandom(24).hex(),
        "token": {
            "issuer": "bench",
            "service": "bench",
            "keys": [{"key": str(pair.key), "cert": str(pair.cert)}],
        },
        "users": [
            {"kind": "htpasswd", "path": str(workdir / "htpasswd")},
            slapd.backend(lookup_ttl=lookup_ttl),
        ],
        "acl": [{"match": {"account": "/.+/", "name": "bench/**"}, "actions": ["pull"]}],
        "cache": {"enabled": cache},
        "audit": {"enabled": False},
        "server": {"bind": f"127.0.0.1:{port}", "workers": WORKERS, "worker_class": "gevent"},
    }
    (workdir / "auth.yml").write_text(yaml.safe_dump(config))
    config_file = workdir / "auth.yml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEELHAUL_")}
    with (workdir / "serve.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "keelhaul", "auth", "serve", "--config", str(config_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )  # fmt: skip
    try:
        if not wait_for_port("127.0.0.1", port, 60):
            raise SystemExit(f"the token service did not start; see {workdir / 'serve.log'}")
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def pair_rounds(
    url: str,
    servers: list[int],
    users: dict[str, tuple[str, str]],
    *,
    rounds: int,
    seconds: int,
    connections: int,
    warmup: int,
) -> dict[str, list[Row]]:
    """Each user's rows, measured in alternation; every request is checked once first, then
    each user is sent ``warmup`` seconds of unmeasured load: every worker's first LDAP login
    (its search, its first connections, lazy imports) took over a second on this machine."""
    query = "/token?service=bench&scope=repository:bench/app:pull"
    headers = {label: {"Authorization": basic(*cred)} for label, cred in users.items()}
    for label, h in headers.items():
        r = httpx.get(url + query, headers=h, timeout=30)  # primes the cache (warm server)
        if r.status_code != 200:
            raise SystemExit(f"{label}: the token service answered {r.status_code}: {r.text}")
    for h in headers.values():
        wrk(url + query, seconds=warmup, connections=connections, headers=h)
    out: dict[str, list[Row]] = {label: [] for label in users}
    for _ in range(rounds):
        for label, h in headers.items():
            run = functools.partial(
                wrk, url + query, seconds=seconds, connections=connections, headers=h
            )
            out[label].append(measured(servers, run))
    return out


def summary(rows: list[Row]) -> dict[str, Any]:
    """Rounds folded: req/s over the whole time, worst p99, CPU per 1,000 over all requests."""
    requests = sum(r.load.requests for r in rows)
    seconds = sum(r.load.seconds for r in rows)
    server = sum(r.server_cpu_s for r in rows)
    loadgen = sum(r.loadgen_cpu_s for r in rows)
    return {
        "rps": requests / seconds if seconds else 0.0,
        "p50_ms": sorted(r.load.p50_ms for r in rows)[len(rows) // 2],
        "p99_ms": max(r.load.p99_ms for r in rows),
        "errors": sum(r.load.errors for r in rows),
        "requests": requests,
        "server_cpu_s_per_1000": server / requests * 1000 if requests else float("nan"),
        "loadgen_cpu_s_per_1000": loadgen / requests * 1000 if requests else float("nan"),
        "rounds": [r.row() for r in rows],
    }


def in_process(
    workdir: Path, slapd: SlapdServer, users: dict[str, tuple[str, str]], logins: int
) -> dict[str, float]:
    """CPU microseconds per warm login in the authenticator alone (no HTTP, no load
    generator): process time, which other processes on the machine do not inflate."""
    htpasswd = workdir / "htpasswd"
    htpasswd.write_text(f"reader:{hash_password(users['htpasswd'][1], 4)}\n")
    ldap = LdapDirectory(LdapOptions.model_validate(slapd.backend(lookup_ttl=3600)))
    cache = CredentialCache(os.urandom(32), ttl=3600, local=LocalCache(1000))
    authenticator = Authenticator([HtpasswdFile(htpasswd), ldap], cache, dummy_cost=4)
    try:
        spent = dict.fromkeys(users, 0.0)
        for user, password in users.values():
            authenticator.authenticate(user, password)  # verified once: warm from now on
        for _ in range(3):  # alternating, as the HTTP rows
            for label, (user, password) in users.items():
                started = time.process_time()
                for _ in range(logins):
                    authenticator.authenticate(user, password)
                spent[label] += time.process_time() - started
        return {label: cpu / (3 * logins) * 1e6 for label, cpu in spent.items()}
    finally:
        ldap.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per pair")
    parser.add_argument("--connections", type=int, default=64, help="warm rows")
    parser.add_argument("--cold-connections", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured seconds per user")
    parser.add_argument("--logins", type=int, default=20000, help="per round, in-process rows")
    args = parser.parse_args()
    s, n = args.seconds, args.rounds
    password = "bench-" + os.urandom(9).hex()
    users = {"htpasswd": ("reader", password), "ldap": (LDAP_USER, PASSWORDS[LDAP_USER])}
    load_before = os.getloadavg()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="keelhaul-bench-identity-") as tmp:
        root = Path(tmp)
        slapd = start_slapd(root / "slapd")
        try:
            print("authenticator alone, warm ...", flush=True)
            alone = in_process(root, slapd, users, args.logins)
            shapes = (
                ("warm", True, 30.0, args.connections, users),
                ("cold", False, 30.0, args.cold_connections, users),
                ("cold_search", False, 0.0, args.cold_connections, {"ldap": users["ldap"]}),
            )
            for shape, cache, ttl, connections, who in shapes:
                state = "on" if cache else "off"
                print(f"{shape}: cache {state}, lookup_ttl {ttl} ...", flush=True)
                serving = token_service(root / shape, slapd, password, cache=cache, lookup_ttl=ttl)
                with serving as (url, pid):
                    rows = pair_rounds(
                        url, [pid, slapd.proc.pid], who,
                        rounds=n, seconds=s, connections=connections, warmup=args.warmup,
                    )  # fmt: skip
                for label, measured_rows in rows.items():
                    results[f"{shape}_{label}"] = summary(measured_rows)
        finally:
            slapd.stop()
    load_after = os.getloadavg()

    def ratio(a: str, b: str, key: str = "rps") -> float:
        return float(results[a][key] / results[b][key]) if results[b][key] else float("nan")

    ratios = {
        "warm_ldap_over_warm_htpasswd": ratio("warm_ldap", "warm_htpasswd"),
        "cold_ldap_over_cold_htpasswd": ratio("cold_ldap", "cold_htpasswd"),
        "cold_search_ldap_over_cold_htpasswd": ratio("cold_search_ldap", "cold_htpasswd"),
        "warm_over_cold_ldap": ratio("warm_ldap", "cold_ldap"),
        "cpu_per_token_warm_ldap_over_warm_htpasswd": ratio(
            "warm_ldap", "warm_htpasswd", "server_cpu_s_per_1000"
        ),
        "cpu_per_warm_login_in_process_ldap_over_htpasswd": alone["ldap"] / alone["htpasswd"],
    }
    targets = {
        "warm LDAP within 10 % of warm htpasswd": ratios["warm_ldap_over_warm_htpasswd"] >= 0.9
    }
    names = {
        "warm_htpasswd": "htpasswd user, warm (cache hit)",
        "warm_ldap": "LDAP user, warm (cache hit)",
        "cold_htpasswd": "htpasswd user, cold (bcrypt 10)",
        "cold_ldap": "LDAP user, cold (a bind each)",
        "cold_search_ldap": "LDAP user, cold (search + bind each)",
    }
    print(
        f"\n{'measurement':38} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>8} {'errors':>6} "
        f"{'srv CPU s/1k':>12} {'gen CPU s/1k':>12}"
    )
    for key, title in names.items():
        x = results[key]
        print(
            f"{title:38} {x['rps']:8.1f} {x['p50_ms']:7.2f} {x['p99_ms']:8.2f} {x['errors']:6d} "
            f"{x['server_cpu_s_per_1000']:12.3f} {x['loadgen_cpu_s_per_1000']:12.3f}"
        )
    for label, micros in alone.items():
        print(f"{'authenticator alone, warm, ' + label:38} {micros:8.2f} CPU us per login")
    print()
    for key, value in ratios.items():
        print(f"{key:44} = {value:.3f}")
    for key, ok in targets.items():
        print(f"target {key}: {'met' if ok else 'NOT met'}")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")
    doc = {
        "benchmark": "identity",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
        },
        "settings": {
            "seconds": s,
            "rounds": n,
            "connections": args.connections,
            "cold_connections": args.cold_connections,
            "warmup_seconds": args.warmup,
            "workers": WORKERS,
            "worker_class": "gevent",
            "bcrypt_cost": BCRYPT_COST,
            "ldap_user": LDAP_USER,
        },
        "note": "one token service per cache setting serves both users; compare ratios",
        "results": results,
        "in_process_cpu_us_per_warm_login": {k: round(v, 3) for k, v in alone.items()},
        "ratios": ratios,
        "targets": targets,
    }
    write_text(RESULTS, json.dumps(doc, indent=2) + "\n")
    print(f"\nwritten to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
