"""``make demo``: the whole product in about a minute, on this machine, with real clients.

Starts a private stack in a temporary directory, builds a small image, pushes it with
skopeo as ``admin``, pulls it back as ``reader``, shows that ``reader`` may not push, then
loads the stack for 60 seconds with ``keelhaul load`` and the default mix
(``pull=8,push=1,login=1,browse=1``), prints its summary table and where the HTML report
is (``.keelhaul/demo/load-report.html``), and always stops the stack again. Passwords never
appear on a command line or in the output (skopeo reads an auth file; ``keelhaul load``
reads the stack's ``stack.json``).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from keelhaul.client import write_image
from keelhaul.errors import KeelhaulError, LoadError, RegistryClientError
from keelhaul.stack import Stack, StackState, load_stack_settings
from keelhaul.stack.stack import resolve_binary

__all__ = ["REPORT_DIR", "main"]

REPO = "demo/app"
LOAD_SECONDS = 60.0
REPORT_DIR = Path(".keelhaul/demo")
"""Where the load test's reports stay after the demo (the stack's directory does not)."""


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


def _load_test(stack_dir: Path, seconds: float, say: Callable[[str], None]) -> None:
    """``keelhaul load`` on the running stack, as its own process (Locust monkey-patches
    the process it runs in), its summary straight to this terminal."""
    html = (REPORT_DIR / "load-report.html").absolute()  # keelhaul load prints where
    report = (REPORT_DIR / "load-report.json").absolute()
    say(f"load test: {seconds:g} s, default mix, 10 users (keelhaul load) ...")
    argv = [
        sys.executable, "-m", "keelhaul", "load", "--stack-dir", str(stack_dir),
        "--run-time", f"{seconds:g}s", "--html", str(html), "--json", str(report),
        "--check", "fail_ratio<0.01",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEELHAUL_LOAD_")}
    done = subprocess.run(argv, env=env, timeout=seconds + 600, check=False)
    if done.returncode != 0:
        raise LoadError(f"the load test failed (keelhaul load exited {done.returncode})")


def _run(workdir: Path, say: Callable[[str], None], seconds: float) -> None:
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

        _load_test(stack.layout.root, seconds, say)
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
    parser.add_argument("--load-seconds", type=float, default=LOAD_SECONDS)
    args = parser.parse_args(argv)
    started = time.monotonic()
    lock = threading.Lock()

    def say(msg: str) -> None:
        with lock:
            print(f"[{time.monotonic() - started:5.1f}s] {msg}", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="keelhaul-demo-"))
    try:
        _run(workdir, say, args.load_seconds)
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
