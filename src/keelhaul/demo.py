"""``make demo``: the field report's journey, retold on this machine in a few minutes.

Starts a private stack in the shape the field report's team started from: one nginx worker
with few connections, two blocking (sync) token-service workers, no credential cache,
bcrypt cost 12, and (their staging service on the production Redis) a Redis shared with
another workload that keeps it busy: a second redis-server on loopback, blocked by a
neighbour thread with ``DEBUG SLEEP`` most of the time. It checks the stack with real
clients (skopeo pushes as ``admin``, pulls as ``reader``, ``reader`` may not push), then
runs ``keelhaul tune`` on it: the same load every step, a diagnosis of each run, the knob
the verdict names changed and kept only if the stack got measurably faster. The journey is
printed step by step, then the before/after line and the HTML report's path
(``.keelhaul/demo/tune/journey.html``). The stack and the shared Redis are always stopped.
Passwords never appear on a command line or in the output.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import redis

from keelhaul.client import write_image
from keelhaul.errors import ComponentError, KeelhaulError, RegistryClientError, TuneError
from keelhaul.netutil import free_port
from keelhaul.stack import Stack, StackState
from keelhaul.stack.settings import StackSettings
from keelhaul.stack.stack import resolve_binary

__all__ = ["REPORT_DIR", "main"]

REPO = "demo/app"
STEP_SECONDS = 8.0
USERS = 20
BUDGET = 5
REPORT_DIR = Path(".keelhaul/demo")
"""Where the journey's reports stay after the demo (the stack's directory does not)."""

FIELD_REPORT_SHAPE = StackSettings(
    proxy_workers=1,
    proxy_connections=48,
    auth_worker_class="sync",
    auth_workers=2,
    credential_cache=False,
    bcrypt_cost=12,
)
"""Where the field report's team started (every one of these is a knob tune may turn,
except the bcrypt cost: a slow hash is answered by the cache, never by a weaker hash)."""

STORY = (
    "the field report's starting point: nginx with 1 worker and 48 connections, 2 sync "
    "token-service workers, no credential cache, bcrypt cost 12",
    "and, like their staging service, it uses a 'production' Redis that another workload "
    "keeps busy (a second redis-server here, blocked about 80 % of the time)",
    "they blamed the Python code; let keelhaul measure, diagnose and change one knob at a time",
)

NEIGHBOUR_BUSY = 0.04
NEIGHBOUR_IDLE = 0.01
"""The other workload on the shared Redis: ``DEBUG SLEEP`` 40 ms, then 10 ms of quiet. It
blocks Redis' one thread as a long script or an O(N) command would, without burning a CPU
of the 2 that the stack and the load generator share."""


@contextlib.contextmanager
def _shared_redis(workdir: Path, say: Callable[[str], None]) -> Iterator[str]:
    """A redis-server on a free loopback port and a thread keeping it busy; both stopped
    (the server by pid) when the block ends. Yields the URL the stack is pointed at."""
    binary = resolve_binary("redis-server", "redis-server", os.environ.get("PATH"))
    port = free_port()
    directory = workdir / "production-redis"
    directory.mkdir()
    argv = [
        binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
        "--dir", str(directory), "--enable-debug-command", "local",
    ]  # fmt: skip
    log = (directory / "redis.log").open("wb")
    server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    stop = threading.Event()
    neighbour: threading.Thread | None = None
    try:
        client = redis.Redis(port=port, socket_timeout=5)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise ComponentError(
                        "redis", f"the shared Redis did not start on port {port}"
                    ) from None
                time.sleep(0.05)

        def busy() -> None:
            while not stop.is_set():
                with contextlib.suppress(redis.RedisError):
                    client.execute_command("DEBUG", "SLEEP", f"{NEIGHBOUR_BUSY:g}")
                stop.wait(NEIGHBOUR_IDLE)

        neighbour = threading.Thread(target=busy, name="demo-neighbour", daemon=True)
        neighbour.start()
        say(f"shared 'production' Redis on 127.0.0.1:{port}, kept busy by another workload")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop.set()
        if neighbour is not None:
            neighbour.join(timeout=5)
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        log.close()


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


def _journey(stack_dir: Path, seconds: float, say: Callable[[str], None]) -> None:
    """``keelhaul tune`` on the running stack, as its own process, straight to this terminal."""
    out = (REPORT_DIR / "tune").absolute()
    say(f"keelhaul tune: {USERS} users, default mix, {seconds:g} s per step ...")
    argv = [
        sys.executable, "-m", "keelhaul", "tune", "--dir", str(stack_dir),
        "--users", str(USERS), "--duration", f"{seconds:g}", "--budget", str(BUDGET),
        "--out", str(out),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEELHAUL_")}
    done = subprocess.run(argv, env=env, timeout=seconds * 3 * (BUDGET + 3) + 600, check=False)
    if done.returncode != 0:
        raise TuneError(f"the journey failed (keelhaul tune exited {done.returncode})")


def _run(workdir: Path, say: Callable[[str], None], seconds: float) -> None:
    skopeo_bin = resolve_binary("skopeo", "skopeo", os.environ.get("PATH"))
    for line in STORY:
        say(line)
    with _shared_redis(workdir, say) as shared:
        shape = FIELD_REPORT_SHAPE.model_copy(update={"redis_url": shared})
        _on_stack(Stack(workdir / "stack", shape), skopeo_bin, workdir, say, seconds)


def _on_stack(
    stack: Stack, skopeo_bin: str, workdir: Path, say: Callable[[str], None], seconds: float
) -> None:
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

        _journey(stack.layout.root, seconds, say)
    finally:
        report = stack.down()
        if report.found:
            say("stack stopped")


def _failed(message: str, workdir: Path) -> None:
    print(f"keelhaul demo failed: {message}", file=sys.stderr)
    print(f"logs kept in {workdir / 'stack' / 'logs'}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; 0 on success, a keelhaul exit code (with a message) on failure."""
    parser = argparse.ArgumentParser(prog="python -m keelhaul.demo", description=__doc__)
    parser.add_argument("--step-seconds", type=float, default=STEP_SECONDS)
    args = parser.parse_args(argv)
    started = time.monotonic()
    lock = threading.Lock()

    def say(msg: str) -> None:
        with lock:
            print(f"[{time.monotonic() - started:5.1f}s] {msg}", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="keelhaul-demo-"))
    try:
        _run(workdir, say, args.step_seconds)
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
