"""``Stack(dir, settings)``: start, inspect and stop the local reference stack.

``up`` starts Redis -> token service -> registry -> nginx, each in its own session on free
loopback ports, waits for each to be healthy and records everything in ``stack.json``.
Whatever goes wrong during ``up``, every process it started is stopped again before the
error propagates. ``down`` stops exactly the recorded processes and keeps ``data/``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from keelhaul.errors import ComponentError, ConfigError, MissingBinaryError, StackError
from keelhaul.netutil import port_picker
from keelhaul.settings_base import validation_problems
from keelhaul.stack import procs
from keelhaul.stack.components import (
    PACKAGES,
    ComponentSpec,
    component_specs,
    monitoring_binaries,
)
from keelhaul.stack.files import Prepared, prepare_files, rewrite_config, rotate_log
from keelhaul.stack.health import PROBES, probe_external_redis
from keelhaul.stack.layout import StackLayout
from keelhaul.stack.plan import StackPlan, choose_ports, pick_distinct
from keelhaul.stack.procs import Health, Identity
from keelhaul.stack.reconfigure import components_for
from keelhaul.stack.redisurl import parse_external_redis
from keelhaul.stack.settings import StackSettings
from keelhaul.stack.state import ComponentIdentity, StackState, now_iso, read_state, write_state

__all__ = ["ComponentStatus", "DownReport", "Stack", "StackStatus", "resolve_binary"]

SCRUBBED_ENV_PREFIXES = ("KEELHAUL_", "REGISTRY_")
"""The stack owns its components' configs; a developer's overrides must not leak in."""

LOCK_WAIT = 5.0
START_ATTEMPTS = 2
PORT_CLASH_MARKERS = ("address already in use", "connection in use")
"""How the registry, Redis and nginx (the former) and gunicorn (the latter) report a taken
port."""


def resolve_binary(binary: str, package: str, search_path: str | None) -> str:
    """An absolute path to ``binary`` (a name looked up in ``search_path``, or a path)."""
    if "/" in binary:
        candidate = Path(binary)
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate.absolute())
        raise MissingBinaryError(binary, package)
    found = shutil.which(binary, path=search_path)
    if found is None:
        raise MissingBinaryError(binary, package)
    return str(Path(found).absolute())


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None
    alive: bool
    url: str
    healthy: bool
    detail: str
    external: bool = False
    """Not run by this stack (an external Redis): ``alive`` means it answered."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "alive": self.alive,
            "url": self.url,
            "healthy": self.healthy,
            "detail": self.detail,
            "external": self.external,
        }


@dataclass(frozen=True)
class StackStatus:
    state: StackState
    components: list[ComponentStatus]

    @property
    def healthy(self) -> bool:
        return (
            self.state.status == "running"
            and bool(self.components)
            and all(c.alive and c.healthy for c in self.components)
        )

    def as_dict(self) -> dict[str, Any]:
        """For ``status --json``: no passwords, ever."""
        data = self.state.public()
        data["healthy"] = self.healthy
        data["components"] = {c.name: c.as_dict() for c in self.components}
        return data


@dataclass(frozen=True)
class DownReport:
    found: bool
    stopped: dict[str, int] = field(default_factory=dict)
    gone: list[str] = field(default_factory=list)


class Stack:
    """One stack in one directory. Cheap to construct; nothing happens until a method runs."""

    def __init__(
        self,
        directory: Path,
        settings: StackSettings | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        python: str = sys.executable,
        pick_port: Callable[[], int] | None = None,
    ) -> None:
        self.layout = StackLayout.at(directory)
        self.settings = settings if settings is not None else StackSettings()
        self._environ = dict(os.environ if environ is None else environ)
        self._python = python
        self._pick_port = pick_port

    # ------------------------------------------------------------------ queries

    def read(self) -> StackState | None:
        return read_state(self.layout.state_file)

    def status(self) -> StackStatus:
        state = self.read()
        if state is None:
            raise StackError(
                f"no stack in {self.layout.root}; start one with "
                f"keelhaul stack up --dir {self.layout.root}"
            )
        components = []
        for name in state.logs:
            pid = state.pids.get(name)
            url = state.urls.get(name, "")
            alive = pid is not None and procs.matches(_identity(state, name, pid))
            if alive:
                probe = PROBES.get(name)
                health = probe(state) if probe is not None else Health(True, "no probe")
            else:
                health = Health(False, "stopped" if pid is None else "not running")
            components.append(
                ComponentStatus(name, pid, alive, url, alive and health.ok, health.detail)
            )
        if state.external_redis:
            external = parse_external_redis(str(state.settings["redis_url"]))
            health = probe_external_redis(external)
            components.insert(
                0,
                ComponentStatus(
                    "redis", None, health.ok, external.redacted, health.ok, health.detail, True
                ),
            )
        return StackStatus(state=state, components=components)

    # ------------------------------------------------------------------ up

    def up(self, progress: Callable[[str], None] | None = None) -> StackState:
        say = progress or (lambda _msg: None)
        binaries = self._binaries()
        self._check_external_redis(say)
        self._make_root()
        with self._locked():
            self._clear_previous(say)
            say(f"starting the stack in {self.layout.root}")
            attempt = 1
            while True:
                try:
                    return self._start_all(binaries, say)
                except ComponentError as exc:
                    if attempt >= START_ATTEMPTS or not self._lost_port_race(exc):
                        raise
                    attempt += 1
                    say(f"{exc.component}: its free port was taken meanwhile; trying new ports")

    def _start_all(self, binaries: Mapping[str, str], say: Callable[[str], None]) -> StackState:
        """Start every component in order; on any failure stop those started, then raise."""
        with port_picker() as held:
            ports = choose_ports(self.settings, self._pick_port or held)
        plan = StackPlan.local(self.layout, self.settings, ports)
        prepared = prepare_files(plan, self.layout)
        specs = component_specs(plan, self.layout, binaries, python=self._python)
        state = self._initial_state(plan, specs, prepared)
        write_state(self.layout.state_file, state)
        started: list[Identity] = []
        try:
            for spec in specs:
                t0 = time.monotonic()
                pid = self._start(spec)
                ident = procs.identity(pid, spec.match, spec.group_match)
                # our own child cannot be reused before we reap it: starttime is enough
                started.append(Identity(pid, ident.starttime, ()))
                state = _with_pid(state, spec.name, ident)
                write_state(self.layout.state_file, state)
                procs.wait_healthy(
                    spec.name,
                    pid,
                    functools.partial(PROBES[spec.name], state),
                    timeout=self.settings.start_timeout,
                    log=spec.log,
                )
                elapsed = time.monotonic() - t0
                say(f"{spec.name} healthy on {spec.url} (pid {pid}, {elapsed:.1f} s)")
        except BaseException:
            procs.stop_all(started[::-1], self.settings.stop_timeout)
            failed = {"status": "failed", "pids": {}, "identities": {}, "stopped_at": now_iso()}
            write_state(self.layout.state_file, state.model_copy(update=failed))
            raise
        state = state.model_copy(update={"status": "running"})
        write_state(self.layout.state_file, state)
        return state

    def _check_external_redis(self, say: Callable[[str], None]) -> None:
        """An external ``redis_url`` must answer before anything starts (it is not ours
        to start): one line naming it, its password never shown."""
        external = self.settings.external_redis
        if external is None:
            return
        health = probe_external_redis(external)
        if not health.ok:
            raise StackError(
                f"redis_url: {health.detail}; start that Redis or fix --redis-url "
                "(KEELHAUL_STACK_REDIS_URL)"
            )
        say(f"redis: using {external.redacted} (external: not started by this stack)")

    def _lost_port_race(self, exc: ComponentError) -> bool:
        """A component died because a port picked as free was taken before it could bind."""
        forced = set(self.settings.ports)
        if any(p == exc.component or p.startswith(f"{exc.component}_") for p in forced):
            return False  # a forced port: the user must choose another one
        tail = exc.log_tail.lower()
        return any(marker in tail for marker in PORT_CLASH_MARKERS)

    # ------------------------------------------------------------------ restart

    def restart(self, name: str, progress: Callable[[str], None] | None = None) -> StackState:
        """(Re)start one component of a running stack with its recorded ports and configs.

        For operators after a crash, and for fault tests (kill Redis or the registry, bring
        it back): nothing is regenerated, so secrets, keys and data stay as they are.
        """
        say = progress or (lambda _msg: None)
        with self._locked():
            state = self._running()
            settings = StackSettings.model_validate(state.settings)
            return self._restart(state, settings, name, say)

    def reconfigure(
        self, changes: Mapping[str, Any], progress: Callable[[str], None] | None = None
    ) -> StackState:
        """Change live knobs (``reconfigure.LIVE_KNOBS``) of a running stack.

        Only the components that carry the changed knobs get their configuration rendered
        again (secrets kept) and are restarted, on their recorded ports; ``stack.json``
        records the new knobs. What ``keelhaul tune`` applies and reverts. Redis'
        placement (``redis_url``) starts the stack's own Redis (on a free port) before
        its clients restart, or stops it after they were pointed elsewhere.
        """
        say = progress or (lambda _msg: None)
        names = components_for(changes)
        self._running()  # a clear error before the lock file would be created
        with self._locked():
            state = self._running()
            before = StackSettings.model_validate(state.settings)
            try:
                settings = StackSettings.model_validate({**state.settings, **changes})
            except ValidationError as exc:
                raise ConfigError("stack", validation_problems(exc)) from None
            if settings.external_redis is not None and not before.external_redis:
                self._check_external_redis(say)
            state = self._place_redis(state, settings)
            plan = StackPlan.local(self.layout, settings, state.ports)
            for name in names:
                if name != "redis":
                    rewrite_config(name, plan, self.layout)
            state = state.model_copy(
                update={"settings": settings.recorded(), "redis_url": plan.redis_url()}
            )
            write_state(self.layout.state_file, state)
            starts = settings.own_redis and not before.own_redis
            for name in names:
                if name != "redis" or starts:
                    state = self._restart(state, settings, name, say)
            if starts:  # first in pids, as after `up`: `down` stops it last
                state = state.model_copy(
                    update={"pids": {"redis": state.pids["redis"], **state.pids}}
                )
                write_state(self.layout.state_file, state)
            if before.own_redis and not settings.own_redis:
                state = self._stop_own_redis(state, settings, say)
            return state

    def _place_redis(self, state: StackState, settings: StackSettings) -> StackState:
        """The own Redis' port, URL and log recorded when it is about to start."""
        if not settings.own_redis or "redis" in state.ports:
            return state
        with port_picker() as held:
            port = pick_distinct(self._pick_port or held, set(state.ports.values()), "redis")
        ports = {"redis": port, **state.ports}
        plan = StackPlan.local(self.layout, settings, ports)
        return state.model_copy(
            update={
                "ports": ports,
                "urls": {"redis": plan.url("redis"), **state.urls},
                "logs": {"redis": str(self.layout.log("redis")), **state.logs},
            }
        )

    def _stop_own_redis(
        self, state: StackState, settings: StackSettings, say: Callable[[str], None]
    ) -> StackState:
        """Its clients use the external Redis now: stop the own one and forget it."""
        pid = state.pids.get("redis")
        if pid is not None:
            ident = _identity(state, "redis", pid)
            if procs.matches(ident):
                procs.stop_all([ident], settings.stop_timeout)
            procs.sweep_group(ident)
            say(f"redis stopped (pid {pid}): the stack uses {settings.external_redis_shown}")

        def drop(mapping: Mapping[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in mapping.items() if k != "redis"}

        state = state.model_copy(
            update={
                "pids": drop(state.pids),
                "identities": drop(state.identities),
                "logs": drop(state.logs),
                "ports": drop(state.ports),
                "urls": drop(state.urls),
            }
        )
        write_state(self.layout.state_file, state)
        return state

    def _running(self) -> StackState:
        state = self.read()
        if state is None or state.status != "running":
            raise StackError(
                f"no running stack in {self.layout.root}; start one with keelhaul stack up"
            )
        return state

    def _restart(
        self, state: StackState, settings: StackSettings, name: str, say: Callable[[str], None]
    ) -> StackState:
        plan = StackPlan.local(self.layout, settings, state.ports)
        specs = {
            s.name: s
            for s in component_specs(
                plan, self.layout, self._binaries(settings), python=self._python
            )
        }
        if name not in specs:
            raise StackError(f"unknown component {name!r}; this stack has {', '.join(specs)}")
        spec = specs[name]
        old = state.pids.get(name)
        if old is not None:
            ident = _identity(state, name, old)
            if procs.matches(ident):
                procs.stop_all([ident], settings.stop_timeout)
            procs.sweep_group(ident)
        pid = self._start(spec)
        state = _with_pid(state, name, procs.identity(pid, spec.match, spec.group_match))
        write_state(self.layout.state_file, state)
        procs.wait_healthy(
            name,
            pid,
            functools.partial(PROBES[name], state),
            timeout=settings.start_timeout,
            log=spec.log,
        )
        say(f"{name} healthy on {spec.url} (pid {pid})")
        return state

    # ------------------------------------------------------------------ down

    def down(self) -> DownReport:
        if not self.layout.state_file.exists():
            return DownReport(found=False)
        with self._locked():
            state = self.read()
            if state is None:
                return DownReport(found=False)
            report = self._stop_recorded(state)
            write_state(
                self.layout.state_file,
                state.model_copy(
                    update={
                        "status": "stopped",
                        "pids": {},
                        "identities": {},
                        "stopped_at": now_iso() if state.pids else state.stopped_at or now_iso(),
                    }
                ),
            )
            return report

    # ------------------------------------------------------------------ internals

    def _binaries(self, settings: StackSettings | None = None) -> dict[str, str]:
        """Absolute paths of the binaries ``settings`` (default: this object's) need."""
        settings = settings or self.settings
        search_path = self._environ.get("PATH", os.defpath)
        found: dict[str, str] = {}
        wanted = [
            ("docker-registry", settings.registry_binary),
            ("nginx", settings.nginx_binary),
        ]
        if settings.own_redis:
            wanted.insert(0, ("redis-server", settings.redis_binary))
        wanted += [(name, name) for name in monitoring_binaries(settings)]
        for role, binary in wanted:
            found[role] = resolve_binary(binary, PACKAGES[role], search_path)
        return found

    def _make_root(self) -> None:
        root = self.layout.root
        try:
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not root.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "not a directory")
            if not os.access(root, os.W_OK | os.X_OK):
                raise PermissionError(errno.EACCES, "permission denied")
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise StackError(
                f"cannot use {root} as the stack directory ({reason}); "
                "choose a writable one with --dir"
            ) from None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            fd = os.open(self.layout.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StackError(
                f"cannot write to {self.layout.root} ({exc.strerror}); choose another --dir"
            ) from None
        try:
            deadline = time.monotonic() + LOCK_WAIT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise StackError(
                            f"another keelhaul stack command is working on {self.layout.root}; "
                            "wait for it to finish"
                        ) from None
                    time.sleep(0.1)
            yield
        finally:
            os.close(fd)

    def _clear_previous(self, say: Callable[[str], None]) -> None:
        """Refuse a running stack; clean up after a dead one (its data is kept)."""
        state = self.read()
        if state is None or not state.pids:
            return
        alive = {
            name: pid
            for name, pid in state.pids.items()
            if procs.matches(_identity(state, name, pid))
        }
        if alive:
            listed = ", ".join(f"{name} (pid {pid})" for name, pid in alive.items())
            raise StackError(
                f"a stack is already running in {self.layout.root}: {listed}; "
                f"stop it first with: keelhaul stack down --dir {self.layout.root}"
            )
        for name, pid in state.pids.items():
            procs.sweep_group(_identity(state, name, pid))
        say(f"previous stack in {self.layout.root} is dead; cleaning up (data kept)")

    def _start(self, spec: ComponentSpec) -> int:
        rotate_log(spec.log)
        env = {k: v for k, v in self._environ.items() if not k.startswith(SCRUBBED_ENV_PREFIXES)}
        env.update(spec.env)
        try:
            return procs.spawn(spec.argv, log=spec.log, env=env)
        except OSError as exc:
            raise StackError(f"{spec.name}: cannot run {spec.argv[0]}: {exc.strerror}") from None

    def _initial_state(
        self, plan: StackPlan, specs: list[ComponentSpec], prepared: Prepared
    ) -> StackState:
        return StackState(
            status="starting",
            dir=str(self.layout.root),
            started_at=now_iso(),
            registry=plan.registry_url,
            token_url=plan.token_url,
            service=plan.service,
            issuer=plan.issuer,
            redis_url=plan.redis_url(),
            entry=plan.entry_url,
            realm=plan.realm,
            ca_cert=str(prepared.ca_cert) if prepared.ca_cert is not None else None,
            access_log=plan.files.access_log,
            prometheus=plan.prometheus_url,
            users={name: SecretStr(pw) for name, pw in prepared.passwords.items()},
            logs={spec.name: str(spec.log) for spec in specs},
            ports=dict(plan.ports),
            urls=plan.urls(),
            config={spec.name: str(spec.config) for spec in specs if spec.config is not None},
            settings=self.settings.recorded(),
        )

    def _stop_recorded(self, state: StackState) -> DownReport:
        order = list(state.pids.items())[::-1]  # nginx first, Redis last
        idents = {name: _identity(state, name, pid) for name, pid in order}
        stopped = set(procs.stop_all(list(idents.values()), self.settings.stop_timeout))
        for ident in idents.values():
            if ident.pid not in stopped:  # crashed leader: its workers may linger
                procs.sweep_group(ident)
        return DownReport(
            found=True,
            stopped={name: pid for name, pid in order if pid in stopped},
            gone=[name for name, pid in order if pid not in stopped],
        )


def _identity(state: StackState, name: str, pid: int) -> Identity:
    record = state.identities.get(name, ComponentIdentity())
    return Identity(
        pid=pid,
        starttime=record.starttime,
        match=tuple(record.match),
        group_match=tuple(record.group_match),
    )


def _with_pid(state: StackState, name: str, ident: Identity) -> StackState:
    return state.model_copy(
        update={
            "pids": {**state.pids, name: ident.pid},
            "identities": {
                **state.identities,
                name: ComponentIdentity(
                    starttime=ident.starttime,
                    match=list(ident.match),
                    group_match=list(ident.group_match),
                ),
            },
        }
    )
