"""Processes by pid: spawn detached, recognise, wait for, stop. The stack's only OS edge.

Components are spawned with ``posix_spawn`` in a session of their own so that they outlive
the ``keelhaul stack up`` that started them; everything afterwards works from the pid
recorded in ``stack.json``. A pid counts as a component only while ``/proc/<pid>`` shows
the same start time and a command line holding the component's markers, so a reused pid
is never signalled. Zombies count as dead (an init that does not reap would otherwise
keep a stopped component "alive" forever).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keelhaul.errors import ComponentError

__all__ = [
    "Health",
    "Identity",
    "cmdline",
    "identity",
    "is_alive",
    "log_tail",
    "matches",
    "spawn",
    "stop_all",
    "sweep_group",
    "wait_healthy",
]

POLL = 0.05
_RESET_SIGNALS = (
    signal.SIGPIPE,
    signal.SIGXFSZ,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGHUP,
    signal.SIGTERM,
)


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class Identity:
    """What a pid must still show to be the process we started."""

    pid: int
    starttime: int | None
    match: tuple[str, ...]
    group_match: tuple[str, ...] = ()
    """Markers of the leader's children when they differ from its own (nginx's workers
    are titled ``nginx: worker process``); empty: the same as ``match``."""


def _inherited_fds() -> list[int]:
    """Open descriptors above 2 that exec would pass on (e.g. a caller's pipe)."""
    fds = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            with contextlib.suppress(OSError):  # the listing's own, already closed, fd
                if os.get_inheritable(fd):
                    fds.append(fd)
    return fds


def spawn(argv: Sequence[str], *, log: Path, env: Mapping[str, str]) -> int:
    """Start ``argv`` (``argv[0]`` an absolute path) detached, output appended to ``log``.

    Nothing but the log and /dev/null is passed on: a long-lived component holding, say,
    the write end of a caller's ``$(keelhaul stack up)`` pipe would hang that caller.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    file_actions: list[tuple[Any, ...]] = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    file_actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inherited_fds()]
    return os.posix_spawn(
        argv[0],
        list(argv),
        dict(env),
        file_actions=file_actions,
        setsid=True,
        setsigdef=_RESET_SIGNALS,
    )


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses
    return raw[raw.rfind(")") + 2 :].split()


def _reap(pid: int) -> int | None:
    """Collect our own exited child (no zombie left); its exit code, None if not ours/running."""
    try:
        reaped, status = os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        return None
    return os.waitstatus_to_exitcode(status) if reaped == pid else None


def is_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    _reap(pid)
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X", "x")


def identity(pid: int, match: Iterable[str], group_match: Iterable[str] = ()) -> Identity:
    fields = _stat_fields(pid)
    starttime = int(fields[19]) if fields is not None and len(fields) > 19 else None
    return Identity(
        pid=pid, starttime=starttime, match=tuple(match), group_match=tuple(group_match)
    )


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", errors="replace").strip()


def matches(ident: Identity) -> bool:
    """True while ``ident.pid`` is alive and still the process that was recorded."""
    if not is_alive(ident.pid):
        return False
    if ident.starttime is not None:
        current = identity(ident.pid, ()).starttime
        if current != ident.starttime:
            return False
    line = cmdline(ident.pid)
    return bool(line) and all(marker in line for marker in ident.match)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _kill_group(pgid: int) -> None:
    """SIGKILL what is left of a component's own process group (e.g. gunicorn workers)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def stop_all(idents: Sequence[Identity], timeout: float) -> list[int]:
    """SIGTERM every still-matching pid, SIGKILL after ``timeout``; returns the pids stopped.

    Pids that are gone or belong to another program now are left alone.
    """
    ours = [ident for ident in idents if matches(ident)]
    leaders = {ident.pid for ident in ours if _pgid(ident.pid) == ident.pid}
    for ident in ours:
        _signal(ident.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    pending = [ident.pid for ident in ours]
    while pending and time.monotonic() < deadline:
        pending = [pid for pid in pending if is_alive(pid)]
        if pending:
            time.sleep(POLL)
    for pid in pending:
        _signal(pid, signal.SIGKILL)
    for pid in leaders:
        # the leader was ours a moment ago, so its group is too; sweep stragglers
        _kill_group(pid)
    deadline = time.monotonic() + 5.0
    while pending and time.monotonic() < deadline:
        pending = [pid for pid in pending if is_alive(pid)]
        if pending:
            time.sleep(POLL)
    return [ident.pid for ident in ours]


def sweep_group(ident: Identity) -> list[int]:
    """SIGKILL members of a dead component's process group that still look like it.

    After a crash of a leader (e.g. gunicorn's or nginx's master), its workers can outlive
    it (nginx's for good); they share its process group, and its command line or the
    ``group_match`` markers.
    """
    markers = ident.group_match or ident.match
    if not markers:
        return []
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == ident.pid:
            continue
        pid = int(entry.name)
        fields = _stat_fields(pid)
        if fields is None or len(fields) < 3 or fields[2] != str(ident.pid):
            continue
        line = cmdline(pid)
        if line and all(marker in line for marker in markers) and is_alive(pid):
            _signal(pid, signal.SIGKILL)
            killed.append(pid)
    return killed


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def log_tail(path: Path, lines: int = 20, max_bytes: int = 65536) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def wait_healthy(
    name: str,
    pid: int,
    probe: Callable[[], Health],
    *,
    timeout: float,
    log: Path,
) -> Health:
    """Poll ``probe`` until it passes; ComponentError (with the log tail) if the process
    exits first or the deadline passes."""
    deadline = time.monotonic() + timeout
    last = Health(False, "not probed yet")
    while True:
        code = _reap(pid)
        if code is not None or not is_alive(pid):
            how = f" with status {code}" if code is not None and code >= 0 else ""
            if code is not None and code < 0:
                how = f" on signal {-code}"
            raise ComponentError(name, f"exited during start{how}", log_tail(log))
        last = probe()
        if last.ok:
            return last
        if time.monotonic() >= deadline:
            detail = f" (last check: {last.detail})" if last.detail else ""
            raise ComponentError(name, f"not healthy after {timeout:g} s{detail}", log_tail(log))
        time.sleep(0.1)
