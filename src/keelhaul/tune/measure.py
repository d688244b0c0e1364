"""One measured step: ``keelhaul load --diagnose`` as its own process, its two reports read.

The load kit imports Locust, which monkey-patches the process it runs in with gevent, so
tune never imports it: every step is a subprocess, exactly the command a user would run,
and its JSON reports (``keelhaul.load/v1``, ``keelhaul.diagnose/v1``) are the contract.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keelhaul.errors import TuneError

__all__ = ["LoadShape", "StepReports", "load_argv", "run_step"]

EXIT_CHECKS_FAILED = 6
STOP_TIMEOUT_S = 3.0
"""Flows still running at the end get this long: a slow stack must not stretch each step."""


@dataclass(frozen=True)
class LoadShape:
    """The same load for every step."""

    mix: str | None
    users: int | None
    rate: str | None
    seconds: float
    extra: tuple[str, ...] = ()
    """Target and credential options for a remote stack; ``--prometheus`` for its metrics."""


@dataclass(frozen=True)
class StepReports:
    load: Mapping[str, Any]
    diagnosis: Mapping[str, Any]
    directory: Path


def load_argv(shape: LoadShape, out: Path, stack_dir: Path | None) -> list[str]:
    argv = [sys.executable, "-m", "keelhaul", "load", "--run-time", f"{shape.seconds:g}s",
            "--stop-timeout", f"{STOP_TIMEOUT_S:g}s"]  # fmt: skip
    if stack_dir is not None:
        argv += ["--stack-dir", str(stack_dir), "--keep-stack"]
    if shape.mix:
        argv += ["--mix", shape.mix]
    if shape.users is not None:
        argv += ["--users", str(shape.users)]
    if shape.rate:
        argv += ["--rate", shape.rate]
    argv += [
        "--print-every", "0",  # tune prints its own progress; the step's log stays clean
        "--diagnose",
        "--diagnose-dir", str(out),
        "--json", str(out / "load.json"),
        "--html", str(out / "load.html"),
        *shape.extra,
    ]  # fmt: skip
    return argv


def _read(path: Path, what: str) -> Mapping[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TuneError(f"the step wrote no readable {what} ({path}): {exc}") from None
    if not isinstance(doc, dict):
        raise TuneError(f"{path}: not a {what}")
    return doc


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def run_step(
    shape: LoadShape,
    out: Path,
    *,
    stack_dir: Path | None,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    timeout_margin: float = 180.0,
) -> StepReports:
    """Run the load with its diagnosis; a failed run raises with its last error line."""
    out.mkdir(parents=True, exist_ok=True)
    argv = load_argv(shape, out, stack_dir)
    try:
        done = subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=shape.seconds + timeout_margin,
            env=None if env is None else dict(env),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise TuneError(f"the load step did not finish within {timeout_margin:.0f} s") from None
    (out / "load.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    if done.returncode not in (0, EXIT_CHECKS_FAILED):
        raise TuneError(f"keelhaul load failed (exit {done.returncode}): {_last_line(done.stderr)}")
    return StepReports(
        load=_read(out / "load.json", "load report"),
        diagnosis=_read(out / "diagnosis.json", "diagnosis"),
        directory=out,
    )


def evidence(diagnosis: Mapping[str, Any], limit: int = 2) -> Sequence[str]:
    verdict = diagnosis.get("verdict") or {}
    return list(verdict.get("evidence") or [])[:limit]
