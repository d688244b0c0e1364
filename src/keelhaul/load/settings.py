"""``LoadSettings``: every knob of ``keelhaul load``, one frozen, validated object. Pure.

Built once from the command line over ``KEELHAUL_LOAD_*`` variables
(:func:`load_load_settings`); a wrong value stops the run before anything starts, with a
message naming the option and what to write instead. Durations (``90``, ``90s``, ``1m30s``,
``500ms``), rates (``50``, ``50/s``, ``300/m``) and sizes (``512k``, ``1MiB``) are parsed
here too, so the same spellings work on the command line and in the environment.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator

from keelhaul.errors import ConfigError
from keelhaul.load.mix import DEFAULT_MIX, MixEntry, format_mix, parse_mix
from keelhaul.names import is_repository_path
from keelhaul.settings_base import FrozenModel, env_overrides, validation_problems
from keelhaul.units import parse_size

__all__ = [
    "DEFAULT_RUN_TIME_S",
    "DEFAULT_STACK_DIR",
    "LoadSettings",
    "load_load_settings",
    "parse_duration",
    "parse_rate",
    "parse_size",
]

DEFAULT_STACK_DIR = Path(".keelhaul/load-stack")
DEFAULT_RUN_TIME_S = 60.0
"""A headless run given neither ``--run-time`` nor ``--iterations`` stops after this long."""
MAX_SEED_BYTES = 4 << 30
MAX_OPEN_USERS = 1000

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_RATE_UNITS = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 1 / 60, "min": 1 / 60, "h": 1 / 3600}
_URL_RE = re.compile(r"(?P<scheme>https?)://(?P<host>[^/\s?#@]+)/?")


def parse_duration(text: str, *, allow_zero: bool = False) -> float:
    """Seconds in ``90``, ``90s``, ``1m30s``, ``1h``, ``500ms`` (Locust's and k6's spellings)."""
    raw = text.strip().lower()
    if not raw:
        raise ValueError("a duration is empty; write e.g. 30s, 1m30s or 2h")
    try:
        seconds = float(raw)
    except ValueError:
        pos, seconds = 0, 0.0
        for match in _DURATION_PART.finditer(raw):
            if match.start() != pos:
                break
            unit = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[match.group(2)]
            seconds += float(match.group(1)) * unit
            pos = match.end()
        if pos != len(raw):
            raise ValueError(f"{text!r} is not a duration; write e.g. 30s, 1m30s or 2h") from None
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"{text!r}: a duration must be more than 0")
    return seconds


def parse_rate(text: str) -> float:
    """Iterations per second in ``50``, ``50/s``, ``300/m``, ``1000/h``."""
    raw = text.strip().lower()
    number, _, unit = raw.partition("/")
    unit = unit.strip()
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"{text!r} is not a rate; write e.g. 50/s or 300/m") from None
    if unit not in _RATE_UNITS:
        raise ValueError(f"{text!r}: unknown rate unit {unit!r}; use /s, /m or /h")
    rate = value * _RATE_UNITS[unit]
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"{text!r}: a rate must be more than 0")
    return rate


def _check_repository(value: str, key: str) -> str:
    if not is_repository_path(value) or len(value) > 200:
        raise ValueError(
            f"{value!r} is not a repository name; use lowercase a-z, 0-9 and single "
            f"'.', '_', '-' between them, components separated by '/' ({key})"
        )
    return value


class LoadSettings(FrozenModel):
    """One ``keelhaul load`` run (or one ``--worker``: most knobs then come from the master)."""

    # --- what to load -------------------------------------------------------------------
    target: str | None = Field(
        default=None, description="registry URL; none: the local stack in stack_dir"
    )
    stack_dir: Path = DEFAULT_STACK_DIR
    keep_stack: bool = Field(default=False, description="leave a stack this run started running")
    keep_pushes: bool = Field(
        default=False, description="leave what the run pushed (to verify it afterwards)"
    )
    pushed_log: Path | None = Field(
        default=None,
        description="append repo:tag@digest of every push the run reports as successful",
    )
    username: str | None = None
    password: SecretStr | None = None
    authfile: Path | None = None
    insecure: bool = Field(default=False, description="do not verify the target's TLS certificate")
    timeout_s: float = Field(default=60.0, gt=0, le=3600, description="network timeout per request")
    token_method: Literal["get", "post"] = "get"  # noqa: S105 - a method name

    # --- the work -----------------------------------------------------------------------
    mix: tuple[MixEntry, ...] = Field(default=parse_mix(DEFAULT_MIX))
    repo: str = "keelhaul/load"
    images: int = Field(default=3, ge=1, le=100, description="synthetic images seeded in repo")
    layers: int = Field(default=2, ge=1, le=100)
    layer_size: int = Field(default=1 << 20, ge=0, le=1 << 30)
    seed: int = Field(default=0, ge=0, le=2**31, description="same seed, same image digests")
    verify: bool = Field(default=False, description="hash every pulled blob against its digest")
    only_missing: bool = Field(
        default=False, description="each user pulls only the blobs it has not pulled before"
    )
    parallel: int = Field(default=3, ge=1, le=32, description="blobs one user moves at once")
    push_tags: int = Field(
        default=16, ge=1, le=10_000, description="tags pushes reuse when deletes are off"
    )

    # --- the load model -----------------------------------------------------------------
    users: int | None = Field(default=None, ge=1, le=100_000)
    spawn_rate: float | None = Field(default=None, gt=0, le=100_000)
    rate: float | None = Field(default=None, gt=0, le=1_000_000, description="open model")
    late_after_ms: float = Field(default=10.0, ge=0, le=3_600_000)
    drop_after_s: float = Field(default=1.0, gt=0, le=3600)
    run_time_s: float | None = Field(default=None, gt=0, le=30 * 86400)
    iterations: int | None = Field(default=None, ge=1, le=10**12)
    stop_timeout_s: float = Field(default=10.0, ge=0, le=3600)

    # --- processes ----------------------------------------------------------------------
    processes: int | None = Field(default=None, ge=-1, le=1024)
    master: bool = False
    master_bind_host: str = "*"
    master_port: int = Field(default=5557, ge=1, le=65535)
    expect_workers: int = Field(default=1, ge=1, le=10_000)
    expect_workers_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    worker: bool = False
    master_host: str = "127.0.0.1"
    web: bool = False
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8089, ge=0, le=65535)

    # --- results ------------------------------------------------------------------------
    checks: tuple[str, ...] = ()
    json_path: Path | None = None
    html_path: Path | None = None
    worker_stats_dir: Path | None = Field(
        default=None, description="diagnostics: each worker writes its final RunStats here"
    )
    print_every_s: float = Field(
        default=10.0,
        ge=0,
        le=86400,
        description="progress: off a terminal, one line this often; 0: no progress at all",
    )

    @field_validator("mix", mode="before")
    @classmethod
    def _parse_mix(cls, value: Any) -> Any:
        return parse_mix(value) if isinstance(value, str) else value

    @field_validator(
        "run_time_s", "drop_after_s", "timeout_s", "expect_workers_timeout_s", mode="before"
    )
    @classmethod
    def _parse_duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("stop_timeout_s", "print_every_s", mode="before")
    @classmethod
    def _parse_duration_or_zero(cls, value: Any) -> Any:
        return parse_duration(value, allow_zero=True) if isinstance(value, str) else value

    @field_validator("late_after_ms", mode="before")
    @classmethod
    def _parse_millis(cls, value: Any) -> Any:
        return parse_duration(value, allow_zero=True) * 1000.0 if isinstance(value, str) else value

    @field_validator("rate", mode="before")
    @classmethod
    def _parse_rate(cls, value: Any) -> Any:
        return parse_rate(value) if isinstance(value, str) else value

    @field_validator("layer_size", mode="before")
    @classmethod
    def _parse_size(cls, value: Any) -> Any:
        return parse_size(value) if isinstance(value, str) else value

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str) -> str:
        return _check_repository(value, "--repo")

    @field_validator("target")
    @classmethod
    def _target(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value.strip()
        if "://" not in text:
            raise ValueError(
                f"{value!r}: give the registry as a URL, http://HOST:PORT or https://HOST"
            )
        if _URL_RE.fullmatch(text) is None:
            raise ValueError(
                f"{value!r} is not a registry URL; write http(s)://HOST[:PORT] without a "
                "path or credentials"
            )
        return text.rstrip("/")

    @model_validator(mode="after")
    def _consistent(self) -> LoadSettings:
        roles = [
            flag
            for flag, on in (
                ("--worker", self.worker),
                ("--master", self.master),
                ("--processes", self.processes is not None),
            )
            if on
        ]
        if len(roles) > 1:
            raise ValueError(f"{' and '.join(roles)} exclude each other; choose one")
        if self.processes == 0:
            raise ValueError("--processes must be at least 1 (or -1: one per CPU)")
        if self.seed_bytes > MAX_SEED_BYTES:
            raise ValueError(
                f"the seeded images would hold {self.seed_bytes / 2**30:.1f} GiB (images x "
                "layers x layer size), over the 4 GiB kept in memory; use fewer or smaller"
            )
        workers = self.worker_processes
        if workers is not None and self.effective_users < workers:
            raise ValueError(
                f"{self.effective_users} users cannot keep {workers} worker processes busy; "
                "give --users at least the number of processes"
            )
        if self.iterations is not None and workers is not None and self.iterations < workers:
            raise ValueError(
                f"--iterations {self.iterations} is fewer than the {workers} worker processes"
            )
        return self

    # --- derived values ------------------------------------------------------------------

    @property
    def open_model(self) -> bool:
        return self.rate is not None

    @property
    def effective_users(self) -> int:
        """``--users``; by default 10, or in the open model one per iteration per second
        (at least 10, at most 1000): the pool of clients the arrivals are handed to."""
        if self.users is not None:
            return self.users
        if self.rate is None:
            return 10
        return min(MAX_OPEN_USERS, max(10, math.ceil(self.rate)))

    @property
    def effective_spawn_rate(self) -> float:
        """By default every user starts at once (Locust ramps at this many users a second)."""
        if self.spawn_rate is not None:
            return self.spawn_rate
        return float(self.effective_users)

    @property
    def effective_run_time_s(self) -> float | None:
        if self.run_time_s is not None:
            return self.run_time_s
        if self.iterations is None and not self.web:
            return DEFAULT_RUN_TIME_S
        return None

    @property
    def autostart(self) -> bool:
        """The test starts by itself (headless, or ``--web`` with a bound); else the web
        UI's start button starts it."""
        return not self.web or self.run_time_s is not None or self.iterations is not None

    @property
    def worker_processes(self) -> int | None:
        """Local worker processes to start (``--processes``; -1 is one per CPU)."""
        if self.processes is None:
            return None
        if self.processes == -1:
            return os.cpu_count() or 1
        return self.processes

    @property
    def seed_bytes(self) -> int:
        return self.images * self.layers * self.layer_size

    @property
    def mix_text(self) -> str:
        return format_mix(self.mix)


def load_load_settings(
    cli: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> LoadSettings:
    """CLI values (those given) over ``KEELHAUL_LOAD_*`` variables over defaults."""
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = env_overrides("KEELHAUL_LOAD_", env)
    for key, value in (cli or {}).items():
        if value is None or value == ():
            continue
        raw[key] = value
    try:
        return LoadSettings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError("load", [_flagged(p) for p in validation_problems(exc)]) from None


FLAGS = {
    "run_time_s": "--run-time",
    "stop_timeout_s": "--stop-timeout",
    "print_every_s": "--print-every",
    "drop_after_s": "--drop-after",
    "late_after_ms": "--late-after",
    "timeout_s": "--timeout",
    "json_path": "--json",
    "html_path": "--html",
    "checks": "--check",
    "worker_stats_dir": "--worker-stats",
    "expect_workers_timeout_s": "--expect-workers-timeout",
}
"""Settings whose command-line option is not simply ``--<name with dashes>``."""


def _flagged(problem: str) -> str:
    """``run_time_s: ...`` -> ``--run-time: ...`` (the spelling the user typed)."""
    key, sep, rest = problem.partition(": ")
    if not sep or key == "(top level)":
        return rest if key == "(top level)" else problem
    field = key.split(".")[0]
    if field not in LoadSettings.model_fields:
        return problem
    return f"{FLAGS.get(field, '--' + field.replace('_', '-'))}: {rest}"
