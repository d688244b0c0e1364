"""``make demo``: the whole product in one minute, on this machine, with real clients.

Starts a private stack in a temporary directory, builds a small image, pushes it with
skopeo as ``admin``, pulls it back as ``reader``, shows that ``reader`` may not push,
measures token throughput for a few seconds, and always stops the stack again.
Passwords never appear on a command line or in the output (skopeo reads an auth file).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from keelhaul.client import write_image
from keelhaul.errors import KeelhaulError, RegistryClientError
from keelhaul.stack import Stack, StackState, load_stack_settings
from keelhaul.stack.stack import resolve_binary

__all__ = ["Throughput", "main", "measure_tokens", "percentile"]

REPO = "demo/app"


@dataclass(frozen=True)
class Throughput:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, round(q / 100 * len(sorted_values) + 0.5))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def measure_tokens(
    state: StackState, *, user: str, seconds: float = 3.0, threads: int = 8
) -> Throughput:
    """``threads`` clients asking for pull tokens as fast as they can for ``seconds``."""
    params = {"service": state.service, "scope": f"repository:{REPO}:pull"}
    auth = (user, state.password(user))
    start = time.monotonic()
    deadline = start + seconds

    def client_loop() -> tuple[list[float], int]:
        latencies: list[float] = []
        errors = 0
        with httpx.Client(timeout=5.0, trust_env=False, auth=auth) as client:
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                try:
                    ok = client.get(state.token_url, params=params).status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1
        return latencies, errors

    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = [f.result() for f in [pool.submit(client_loop) for _ in range(threads)]]
    elapsed = time.monotonic() - start
    latencies = sorted(lat for lats, _ in results for lat in lats)
    return Throughput(
        requests=len(latencies),
        errors=sum(errors for _, errors in results),
        seconds=elapsed,
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
    )


class _Skopeo:
    def __init__(self, binary: str, workdir: Path, state: StackState) -> None:
        self.binary = binary
        self.workdir = workdir
        self.state = state
        self.host = state.registry.removeprefix("http://")

    def _authfile(self, user: str) -> Path:
        path = self.workdir / f"auth-{user}.json"
        token = base64.b64encode(f"{user}:{self.state.password(user)}".encode()).decode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"auths": {self.host: {"auth": token}}}, fh)
        return path

    def copy(self, src: str, dest: str, *, src_user: str | None = None, dest_user: str | None = None
             ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        args = [self.binary, "--insecure-policy", "copy", "--src-tls-verify=false",
                "--dest-tls-verify=false"]  # fmt: skip
        if src_user is not None:
            args += ["--src-authfile", str(self._authfile(src_user))]
        if dest_user is not None:
            args += ["--dest-authfile", str(self._authfile(dest_user))]
        return subprocess.run(
            [*args, src, dest],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={**os.environ, "HOME": str(self.workdir)},
        )


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def _run(workdir: Path, say: Callable[[str], None]) -> None:
    skopeo_bin = resolve_binary("skopeo", "skopeo", os.environ.get("PATH"))
    stack = Stack(workdir / "stack", load_stack_settings())
    try:
        state = stack.up(progress=lambda msg: say(f"  {msg}"))
        say(f"registry {state.registry}  token service {state.token_url}")
        skopeo = _Skopeo(skopeo_bin, workdir, state)
        host = skopeo.host

        layout = workdir / "image"
        digest = write_image(layout, layers=3, layer_size=2 << 20, seed=2024)
        say(f"built a 3-layer image (3 x 2 MiB), manifest {digest[:19]}...")

        t0 = time.monotonic()
        push = skopeo.copy(f"oci:{layout}:latest", f"docker://{host}/{REPO}:1", dest_user="admin")
        if push.returncode != 0:
            raise RegistryClientError(f"push as admin failed: {_last_line(push.stderr)}")
        say(f"admin pushed {REPO}:1 in {time.monotonic() - t0:.2f} s")

        pulled = workdir / "pulled"
        t0 = time.monotonic()
        pull = skopeo.copy(f"docker://{host}/{REPO}:1", f"oci:{pulled}:1", src_user="reader")
        if pull.returncode != 0:
            raise RegistryClientError(f"pull as reader failed: {_last_line(pull.stderr)}")
        index = json.loads((pulled / "index.json").read_text(encoding="utf-8"))
        got = index["manifests"][0]["digest"]
        if got != digest:
            raise RegistryClientError(f"pulled manifest {got} differs from pushed {digest}")
        say(f"reader pulled {REPO}:1 in {time.monotonic() - t0:.2f} s; digest matches")

        denied = skopeo.copy(
            f"oci:{layout}:latest", f"docker://{host}/{REPO}:by-reader", dest_user="reader"
        )
        if denied.returncode == 0:
            raise RegistryClientError("reader could push to demo/app; the ACL is not enforced")
        say("reader's push to demo/app was refused, as the ACL says")

        say("measuring token throughput: 8 threads for 3 s as reader ...")
        result = measure_tokens(state, user="reader")
        say(
            f"  {result.per_second:,.0f} tokens/s ({result.requests} in {result.seconds:.1f} s, "
            f"{result.errors} errors); p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms"
        )
    finally:
        report = stack.down()
        if report.found:
            say("stack stopped")


def _failed(message: str, workdir: Path) -> None:
    print(f"keelhaul demo failed: {message}", file=sys.stderr)
    print(f"logs kept in {workdir / 'stack' / 'logs'}", file=sys.stderr)


def main() -> int:
    """Run the demo; 0 on success, a keelhaul exit code (with a message) on failure."""
    started = time.monotonic()
    lock = threading.Lock()

    def say(msg: str) -> None:
        with lock:
            print(f"[{time.monotonic() - started:5.1f}s] {msg}", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="keelhaul-demo-"))
    try:
        _run(workdir, say)
    except KeyboardInterrupt:
        shutil.rmtree(workdir, ignore_errors=True)
        say("interrupted; the stack was stopped")
        return 130
    except KeelhaulError as exc:
        _failed(str(exc), workdir)
        return exc.exit_code
    except (OSError, subprocess.SubprocessError) as exc:
        _failed(f"{type(exc).__name__}: {exc}", workdir)
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    say("demo finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
