"""make bench-client: keelhaul's registry client against curl and skopeo.

On a fresh stack in a temp dir, with a 256 MiB single-layer image (incompressible data):

  pull   keelhaul pull REF into an OCI layout (manifest + blob, sha256-verified, written to
         disk), against curl fetching the same blob URL with the same bearer token into a
         file (no verification; target: keelhaul >= 0.85 x curl's bytes/s), and against
         skopeo copy docker://REF oci:DIR (verifies digests, like keelhaul; the peer:
         keelhaul faster).
  push   keelhaul push of the layout, against skopeo copy oci:LAYOUT docker://REF, each into
         a repository that lacks the blob. Target: keelhaul >= 1.2 x skopeo. For
         information, the registry's floor: the layer blob alone in one ``curl -T`` PUT.

Two rows are for information: keelhaul's pull without verification, and curl followed by
sha256sum (the like-for-like comparison: what it takes to know curl's bytes are right).
The push rows also give the registry's CPU-seconds per push (its process, from /proc).
``--push-only`` runs the push rows alone (a short A/B) and writes
bench/results/client_push.json.

Each run uses an image (pushes) or output file (pulls) of its own so that no tool finds
its work already done; the figure is the median of --runs runs, alternating the tools.
Every row also gives the client's CPU-seconds (user + system; the registry's are not
counted), which survive a busy machine better than wall time. Every tool shares the
machine's cores with the registry, so only ratios measured in one run matter.
Writes bench/results/client.json and prints a table.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from keelhaul.atomicfile import write_text
from keelhaul.client.httpx_transport import HttpxTransport
from keelhaul.client.layout import LayoutWriter, read_layout, write_image
from keelhaul.client.registry import RegistryClient
from keelhaul.client.tokens import Credentials, repository_scope
from keelhaul.stack.stack import Stack

sys.path.insert(0, str(Path(__file__).parent))
from token_bench import tree_cpu

RESULTS = Path(__file__).parent / "results" / "client.json"
PUSH_RESULTS = Path(__file__).parent / "results" / "client_push.json"
PUSH = "keelhaul push"
CURL_PUSH = "curl upload"
MIB = 1 << 20


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "missing"
    return (out.stdout or out.stderr).strip().splitlines()[0] if out.stdout or out.stderr else ""


_CPU_SPENT = [0.0]
"""CPU-seconds of the timed actions since the caller last reset it (one row, one run)."""


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed(action: Callable[[], object]) -> float:
    cpu = _cpu()
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    _CPU_SPENT[0] += _cpu() - cpu
    return seconds


def _recycle_pages(workdir: Path, size: int) -> None:
    """Write ``size`` bytes to a file and delete it, untimed, before each timed step.

    On this VM a large write into memory the kernel had left free for a while copies several
    times slower (perf: 66 % of a slow pull's samples in ``copy_folio_from_iter_atomic``,
    the copy into page-cache pages; the same pull 0.27-0.31 s once pages had just been
    freed by the step before); probably the host taking back free guest pages (virtio
    balloon), not verified. Whichever tool ran first after the pushes paid for it. Freeing
    just-written pages right before every step gives each tool the same start. Resets the
    step's CPU count."""
    scratch = workdir / "page-recycle"
    block = b"\0" * MIB
    with scratch.open("wb") as fh:
        for _ in range(max(1, size // MIB)):
            fh.write(block)
    scratch.unlink()
    _CPU_SPENT[0] = 0.0  # the step's CPU starts now


def _client(host: str, user: str, password: str) -> RegistryClient:
    return RegistryClient(
        HttpxTransport(timeout=120),
        host,
        credentials=Credentials(user, password, source="bench"),
        plain_http=True,
    )


def _authfile(workdir: Path, host: str, user: str, password: str) -> Path:
    path = workdir / "skopeo-auth.json"
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    write_text(path, json.dumps({"auths": {host: {"auth": token}}}), mode=0o600)
    return path


def _push_keelhaul(host: str, password: str, layout: Path, repo: str) -> float:
    image = read_layout(layout)
    with _client(host, "admin", password) as client:
        client.ping()  # connection and challenge outside the timing, as skopeo's startup is in
        return _timed(lambda: client.push_image(repo, "1", image))


def _push_curl(host: str, password: str, layout: Path, repo: str, workdir: Path) -> float:
    """The floor of a push: the layer blob alone, one ``curl -T`` PUT (a monolithic upload;
    the upload's POST and the token are fetched before the timing; no config, no manifest)."""
    curl = shutil.which("curl") or "/usr/bin/curl"
    layer = read_layout(layout).root.layers[0]
    algorithm, hexdigest = layer.digest.split(":", 1)
    with _client(host, "admin", password) as client:
        token = client.get_token((repository_scope(repo, "pull", "push"),), reuse=False)
    auth = {"Authorization": f"Bearer {token}"}
    started = httpx.post(f"http://{host}/v2/{repo}/blobs/uploads/", headers=auth, timeout=30)
    started.raise_for_status()
    location = urljoin(f"http://{host}/", started.headers["Location"])
    url = f"{location}{'&' if '?' in location else '?'}digest={layer.digest}"
    blob = layout / "blobs" / algorithm / hexdigest
    headers = f"Authorization: Bearer {token}\nContent-Type: application/octet-stream\n"
    return _curl_run(curl, ["-X", "PUT", "-T", str(blob), url], headers, workdir)


def _run(argv: list[str], env: dict[str, str] | None = None) -> float:
    return _timed(
        lambda: subprocess.run(argv, check=True, capture_output=True, env=env, timeout=600)
    )


def _curl_run(curl: str, args: list[str], headers: str, workdir: Path) -> float:
    """Seconds of ``curl args`` sending these header lines, read from a 0600 file so that
    the token stays off the command line."""
    path = workdir / "curl-headers"
    write_text(path, headers, mode=0o600)
    try:
        return _run([curl, "-sS", "-f", "-H", f"@{path}", *args])
    finally:
        path.unlink()


def _curl(curl: str, url: str, token: str, workdir: Path, target: Path) -> float:
    return _curl_run(curl, ["-o", str(target), url], f"Authorization: Bearer {token}\n", workdir)


def _push_runs(
    workdir: Path,
    host: str,
    password: str,
    authfile: Path,
    skopeo_env: dict[str, str],
    size: int,
    runs: int,
    times: dict[str, list[float]],
    cpu: dict[str, list[float]],
    registry_pid: int,
) -> None:
    """Every run pushes an image of its own into a repository of its own. ``cpu`` gets,
    under ``"<tool> (registry)"``, what each push cost the registry too."""
    skopeo = shutil.which("skopeo") or "/usr/bin/skopeo"
    tools = [PUSH, "skopeo copy", CURL_PUSH]
    for run in range(runs):
        for tool in tools if run % 2 == 0 else tools[::-1]:  # neither always goes first
            seed = 1000 + len(tools) * run + tools.index(tool)
            layout = workdir / f"push-{seed}"
            write_image(layout, layers=1, layer_size=size, seed=seed)
            repo = f"admin/bench-push-{seed}"
            _recycle_pages(workdir, size)
            registry_cpu = tree_cpu([registry_pid])
            if tool == PUSH:
                times.setdefault(tool, []).append(_push_keelhaul(host, password, layout, repo))
            elif tool == CURL_PUSH:
                seconds = _push_curl(host, password, layout, repo, workdir)
                times.setdefault(tool, []).append(seconds)
            else:
                argv = [
                    skopeo, "--insecure-policy", "copy", "--dest-tls-verify=false",
                    "--dest-authfile", str(authfile), f"oci:{layout}:latest",
                    f"docker://{host}/{repo}:1",
                ]  # fmt: skip
                times.setdefault(tool, []).append(_run(argv, skopeo_env))
            cpu.setdefault(tool, []).append(_CPU_SPENT[0])
            cpu.setdefault(f"{tool} (registry)", []).append(tree_cpu([registry_pid]) - registry_cpu)
            shutil.rmtree(layout)


def bench(workdir: Path, *, size: int, runs: int, push_only: bool = False) -> dict[str, Any]:
    stack = Stack(workdir / "stack")
    state = stack.up()
    host = state.registry.removeprefix("http://")
    password = state.users["admin"].get_secret_value()
    skopeo = shutil.which("skopeo") or "/usr/bin/skopeo"
    curl = shutil.which("curl") or "/usr/bin/curl"
    sha256sum = shutil.which("sha256sum") or "/usr/bin/sha256sum"
    authfile = _authfile(workdir, host, "admin", password)
    skopeo_env = {**os.environ, "HOME": str(workdir)}
    times: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    try:
        _push_runs(
            workdir, host, password, authfile, skopeo_env, size, runs, times, cpu,
            state.pids["registry"],
        )  # fmt: skip
        if push_only:
            return {"times": times, "cpu": cpu, "blob_bytes": size, "settings": state.settings}
        # --- pull: the first pushed image, into fresh files each time; the order of the
        # tools alternates from run to run so that none always follows the same one
        repo = "admin/bench-push-1000"
        with _client(host, "admin", password) as client:
            (layer,) = client.get_manifest(repo, "1").layers
            url = f"{state.registry}/v2/{repo}/blobs/{layer.digest}"

            def keelhaul_pull(run: int, verify: bool) -> float:
                writer = LayoutWriter(workdir / f"pull-{run}")
                try:
                    return _timed(
                        lambda: client.pull_image(repo, "1", layout=writer, verify=verify)
                    )
                finally:
                    shutil.rmtree(writer.root)

            def curl_pull(run: int, then_hash: bool) -> float:
                token = client.get_token((repository_scope(repo, "pull"),), reuse=False)
                target = workdir / f"curl-{run}.blob"
                try:
                    seconds = _curl(curl, url, token or "", workdir, target)
                    if target.stat().st_size != layer.size:
                        raise SystemExit("curl fetched a short blob")
                    if then_hash:
                        seconds += _run([sha256sum, str(target)])
                    return seconds
                finally:
                    target.unlink(missing_ok=True)

            def skopeo_pull(run: int) -> float:
                target = workdir / f"skopeo-pull-{run}"
                argv = [
                    skopeo, "--insecure-policy", "copy", "--src-tls-verify=false",
                    "--src-authfile", str(authfile), f"docker://{host}/{repo}:1",
                    f"oci:{target}:latest",
                ]  # fmt: skip
                try:
                    return _run(argv, skopeo_env)
                finally:
                    shutil.rmtree(target, ignore_errors=True)

            steps: list[tuple[str, Callable[[int], float]]] = [
                ("keelhaul pull", lambda run: keelhaul_pull(run, True)),
                ("curl", lambda run: curl_pull(run, False)),
                ("skopeo pull", skopeo_pull),
                ("keelhaul pull, unverified", lambda run: keelhaul_pull(run, False)),
                ("curl + sha256sum", lambda run: curl_pull(run, True)),
            ]
            for run in range(runs):
                for name, step in steps if run % 2 == 0 else steps[::-1]:
                    _recycle_pages(workdir, layer.size)
                    times.setdefault(name, []).append(step(run))
                    cpu.setdefault(name, []).append(_CPU_SPENT[0])
    finally:
        stack.down()
    return {
        "times": times,
        "cpu": cpu,
        "blob_bytes": layer.size,
        "settings": state.settings,
    }


def _rate(size: int, seconds: float) -> float:
    return size / seconds / MIB


def _push_report(
    measured: dict[str, Any],
    medians: dict[str, float],
    rates: dict[str, float],
    cpu: dict[str, float],
    runs: int,
    load: tuple[float, float, float],
) -> int:
    print(f"\npush only, median of {runs} runs; load average before: {load}\n")
    for tool in (PUSH, "skopeo copy", CURL_PUSH):
        each = ", ".join(f"{t:.2f}" for t in measured["times"][tool])
        print(
            f"{tool:<28} {medians[tool]:>6.2f} s {rates[tool]:>7.1f} MiB/s "
            f"{cpu[tool]:>5.2f} CPU s, registry {cpu[f'{tool} (registry)']:>5.2f}  [{each}]"
        )
    ratios = {"push_keelhaul_over_skopeo": rates[PUSH] / rates["skopeo copy"]}
    for key, value in ratios.items():
        print(f"{key:32} = {value:.3f}")
    document = {
        "benchmark": "client_push",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_before": load,
        "blob_bytes": measured["blob_bytes"],
        "runs": runs,
        "seconds": measured["times"],
        "mib_per_second": {k: round(v, 1) for k, v in rates.items()},
        "median_cpu_seconds": {k: round(v, 3) for k, v in cpu.items()},
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "note": "short A/B on a shared 2-core machine: compare the ratios of one run",
    }
    write_text(PUSH_RESULTS, json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {PUSH_RESULTS}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256, help="layer size (default 256)")
    parser.add_argument("--runs", type=int, default=5, help="runs per tool (default 5)")
    parser.add_argument(
        "--push-only",
        action="store_true",
        help=f"only the push rows (a short A/B), written to {PUSH_RESULTS.name}",
    )
    args = parser.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="keelhaul-client-bench-") as tmp:
        measured = bench(
            Path(tmp), size=args.size_mib * MIB, runs=args.runs, push_only=args.push_only
        )
    size = measured["blob_bytes"]
    medians = {tool: statistics.median(ts) for tool, ts in measured["times"].items()}
    rates = {tool: _rate(size, s) for tool, s in medians.items()}
    cpu = {tool: statistics.median(cs) for tool, cs in measured["cpu"].items()}
    if args.push_only:
        return _push_report(measured, medians, rates, cpu, args.runs, load)
    pull_ratio = rates["keelhaul pull"] / rates["curl"]
    peer_ratio = rates["keelhaul pull"] / rates["skopeo pull"]
    push_ratio = rates["keelhaul push"] / rates["skopeo copy"]
    print(f"\nkeelhaul client bench: one {size / MIB:.0f} MiB layer, median of {args.runs} runs\n")
    print(f"{'':<8} {'tool':<26} {'median s':>8} {'MiB/s':>8} {'CPU s':>6}   what [runs, s]")
    rows = (
        ("pull", "keelhaul pull", "verified, into an OCI layout"),
        ("pull", "curl", "same blob URL and token, into a file"),
        ("pull", "skopeo pull", "docker:// to oci: (verifies digests)"),
        ("push", "keelhaul push", "OCI layout to a repository without the blob"),
        ("push", "skopeo copy", "the same, oci: to docker://"),
        ("(info)", CURL_PUSH, "the layer blob alone, one PUT: the registry's floor"),
        ("(info)", "keelhaul pull, unverified", "what the sha256 costs keelhaul"),
        ("(info)", "curl + sha256sum", "curl, then verifying as keelhaul does"),
    )
    for op, tool, note in rows:
        runs = ", ".join(f"{t:.2f}" for t in measured["times"][tool])
        print(
            f"{op:<8} {tool:<26} {medians[tool]:>8.2f} {rates[tool]:>8.1f} {cpu[tool]:>6.2f}"
            f"   {note} [{runs}]"
        )
    pull_ok = pull_ratio >= 0.85
    peer_ok = peer_ratio > 1.0
    push_ok = push_ratio >= 1.2
    verdict = {True: "met", False: "MISSED"}
    print()
    print(f"pull: keelhaul / curl        = {pull_ratio:.2f}  (target >= 0.85: {verdict[pull_ok]})")
    print(f"pull: keelhaul / skopeo pull = {peer_ratio:.2f}  (target > 1: {verdict[peer_ok]})")
    print(f"push: keelhaul / skopeo      = {push_ratio:.2f}  (target >= 1.2: {verdict[push_ok]})")
    document = {
        "benchmark": "client",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "tools": {
            "curl": _version(["curl", "--version"]),
            "skopeo": _version(["skopeo", "--version"]),
            "registry": _version(["docker-registry", "--version"]),
        },
        "blob_bytes": size,
        "runs": args.runs,
        "seconds": measured["times"],
        "median_seconds": medians,
        "mib_per_second": {k: round(v, 1) for k, v in rates.items()},
        "cpu_seconds": measured["cpu"],
        "median_cpu_seconds": {k: round(v, 3) for k, v in cpu.items()},
        "ratios": {
            "pull_keelhaul_over_curl": round(pull_ratio, 3),
            "pull_keelhaul_over_skopeo_pull": round(peer_ratio, 3),
            "push_keelhaul_over_skopeo": round(push_ratio, 3),
            "push_keelhaul_over_curl_upload": round(rates[PUSH] / rates[CURL_PUSH], 3),
        },
        "targets": {
            "pull": {"min_ratio": 0.85, "met": pull_ok},
            "pull_vs_skopeo": {"min_ratio": 1.0, "met": peer_ok},
            "push": {"min_ratio": 1.2, "met": push_ok},
        },
        "note": "2 cores shared by the registry and the tools: compare ratios of one run",
        "load_average_before": load,
        "stack_settings": measured["settings"],
    }
    write_text(RESULTS, json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
