"""``keelhaul stack up|status|down`` as a user runs them: real processes, real failures."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from pydantic import SecretStr

from keelhaul.netutil import free_port
from keelhaul.stack import Stack, StackSettings
from keelhaul.stack.procs import is_alive
from keelhaul.stack.state import ComponentIdentity, StackState, write_state

pytestmark = pytest.mark.integration

FAST = ("--auth-workers", "1", "--bcrypt-cost", "4")


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEELHAUL_")}
    env.update(extra or {})
    return env


def cli(
    *args: str, env: Mapping[str, str] | None = None, pass_fds: tuple[int, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keelhaul", *args],
        capture_output=True,
        text=True,
        env=_env() if env is None else dict(env),
        timeout=120,
        check=False,
        pass_fds=pass_fds,
    )


def _state(directory: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((directory / "stack.json").read_text())
    return data


def _pids(directory: Path) -> dict[str, int]:
    pids = _state(directory)["pids"]
    assert isinstance(pids, dict)
    return {str(k): int(v) for k, v in pids.items()}


def _processes_of(directory: Path, redis_port: int | None = None) -> list[int]:
    """Every live process whose command line names this stack's directory (or its Redis)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ours = str(directory) in line
        ours = ours or (redis_port is not None and f"redis-server 127.0.0.1:{redis_port}" in line)
        if ours and is_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _group_members(leaders: list[int]) -> list[int]:
    """Live processes in the process groups of these (perhaps dead) leaders."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[2]) in leaders and is_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _kill_all(directory: Path) -> None:
    for pid in _processes_of(directory):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def stack_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh stack directory; whatever a test leaves running there is stopped by pid."""
    directory = tmp_path / "stack"
    try:
        yield directory
    finally:
        if (directory / "stack.json").exists():
            cli("stack", "down", "--dir", str(directory))
            for pid in _pids(directory).values():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)  # nginx's workers outlive their master
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        _kill_all(directory)


def _assert_clean_error(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("keelhaul: ") or "\nkeelhaul: " in result.stderr


def test_up_status_down(stack_dir: Path) -> None:
    # a caller's extra pipe (think `$(keelhaul stack up)`) must not be held by the components
    read_end, write_end = os.pipe()
    try:
        up = cli("stack", "up", "--dir", str(stack_dir), *FAST, pass_fds=(write_end,))
        os.close(write_end)
        readable, _, _ = select.select([read_end], [], [], 2.0)
        assert readable, "a component inherited the caller's pipe"
        assert os.read(read_end, 1) == b""
    finally:
        os.close(read_end)
    assert up.returncode == 0, up.stderr
    assert "stack up in" in up.stdout
    users = _state(stack_dir)["users"]
    assert isinstance(users, dict)
    for password in users.values():
        assert password not in up.stdout + up.stderr
    pids = _pids(stack_dir)
    assert set(pids) == {"redis", "auth", "registry", "nginx"}
    assert all(is_alive(pid) for pid in pids.values())

    status = cli("stack", "status", "--dir", str(stack_dir))
    assert status.returncode == 0, status.stdout + status.stderr
    assert "healthy" in status.stdout

    (stack_dir / "data" / "keep-me").write_text("x")
    down = cli("stack", "down", "--dir", str(stack_dir))
    assert down.returncode == 0, down.stderr
    assert not [pid for pid in pids.values() if is_alive(pid)]
    assert _processes_of(stack_dir) == []
    assert (stack_dir / "data" / "keep-me").exists()
    assert _state(stack_dir)["status"] == "stopped"

    again = cli("stack", "down", "--dir", str(stack_dir))
    assert again.returncode == 0, again.stderr
    assert cli("stack", "status", "--dir", str(stack_dir)).returncode != 0


def test_up_twice_in_one_dir_is_refused(stack_dir: Path) -> None:
    first = cli("stack", "up", "--dir", str(stack_dir), *FAST)
    assert first.returncode == 0, first.stderr
    pids = _pids(stack_dir)
    second = cli("stack", "up", "--dir", str(stack_dir), *FAST)
    _assert_clean_error(second)
    assert "already running" in second.stderr
    assert f"keelhaul stack down --dir {stack_dir}" in second.stderr
    assert _pids(stack_dir) == pids  # the running stack is untouched
    assert all(is_alive(pid) for pid in pids.values())


def test_stale_dir_is_cleaned_up_and_restarted(stack_dir: Path) -> None:
    first = cli("stack", "up", "--dir", str(stack_dir), *FAST)
    assert first.returncode == 0, first.stderr
    (stack_dir / "data" / "keep-me").write_text("x")
    old = _pids(stack_dir)
    for pid in old.values():
        os.kill(pid, signal.SIGKILL)  # a crash: no chance to clean up

    status = cli("stack", "status", "--dir", str(stack_dir))
    assert status.returncode == 1

    second = cli("stack", "up", "--dir", str(stack_dir), *FAST)
    assert second.returncode == 0, second.stderr
    assert "dead" in second.stderr
    assert (stack_dir / "data" / "keep-me").exists()
    new = _pids(stack_dir)
    assert not set(new.values()) & set(old.values())
    assert cli("stack", "status", "--dir", str(stack_dir)).returncode == 0
    # the killed nginx master's workers (and gunicorn's) were swept, not left serving
    assert _group_members(list(old.values())) == []


def test_component_failing_at_start_leaves_nothing_running(stack_dir: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = cli("stack", "up", "--dir", str(stack_dir), *FAST, "--port", f"registry={port}")
    _assert_clean_error(result)
    assert "registry: exited during start" in result.stderr
    assert "last lines of the registry log" in result.stderr
    assert "address already in use" in result.stderr
    state = _state(stack_dir)
    assert state["status"] == "failed"
    ports = state["ports"]
    assert isinstance(ports, dict)
    assert _processes_of(stack_dir, redis_port=ports["redis"]) == []


def test_missing_binary_names_the_debian_package(stack_dir: Path) -> None:
    no_path = cli("stack", "up", "--dir", str(stack_dir), env=_env({"PATH": "/nonexistent"}))
    _assert_clean_error(no_path)
    assert "apt-get install redis-server" in no_path.stderr

    no_registry = cli(
        "stack", "up", "--dir", str(stack_dir),
        env=_env({"KEELHAUL_STACK_REGISTRY_BINARY": "/nonexistent/docker-registry"}),
    )  # fmt: skip
    _assert_clean_error(no_registry)
    assert "apt-get install docker-registry" in no_registry.stderr
    assert not stack_dir.exists()  # checked before anything is written


def test_unusable_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = cli("stack", "up", "--dir", str(blocker / "stack"))
    _assert_clean_error(result)
    assert "cannot use" in result.stderr
    assert "--dir" in result.stderr


def test_down_never_signals_a_reused_pid(stack_dir: Path) -> None:
    """stack.json names a pid that now belongs to another program: it is left alone."""
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        stack_dir.mkdir(parents=True)
        state = StackState(
            status="running",
            dir=str(stack_dir),
            started_at="2026-01-01T00:00:00+00:00",
            registry="http://127.0.0.1:1",
            token_url="http://127.0.0.1:2/token",
            service="keelhaul-registry",
            issuer="keelhaul-auth",
            redis_url=None,
            users={"admin": SecretStr("x")},
            pids={"registry": stranger.pid},
            identities={
                "registry": ComponentIdentity(match=[str(stack_dir / "config/registry.yml")])
            },
            logs={"registry": str(stack_dir / "logs/registry.log")},
        )
        write_state(stack_dir / "stack.json", state)
        down = cli("stack", "down", "--dir", str(stack_dir))
        assert down.returncode == 0, down.stderr
        assert "not running" in down.stdout
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_no_redis_stack(stack_dir: Path) -> None:
    up = cli("stack", "up", "--dir", str(stack_dir), *FAST, "--no-redis", "--json")
    assert up.returncode == 0, up.stderr
    report = json.loads(up.stdout)
    assert report["redis_url"] is None
    assert set(report["pids"]) == {"auth", "registry", "nginx"}
    assert report["settings"]["redis"] is False
    assert "blobdescriptor: inmemory" in (stack_dir / "config" / "registry.yml").read_text()
    status = cli("stack", "status", "--dir", str(stack_dir), "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["healthy"] is True


def test_a_free_port_taken_before_bind_is_retried_on_new_ports(stack_dir: Path) -> None:
    """The race free_port() cannot rule out: someone binds the port before the registry."""
    with socket.socket() as thief:
        thief.bind(("127.0.0.1", 0))
        thief.listen()
        stolen = thief.getsockname()[1]
        picks = iter([free_port(), free_port(), stolen])  # redis, auth, then registry
        stack = Stack(
            stack_dir,
            StackSettings(auth_workers=1, bcrypt_cost=4),
            environ=_env(),
            pick_port=lambda: next(picks, None) or free_port(),
        )
        progress: list[str] = []
        try:
            state = stack.up(progress=progress.append)
            assert state.ports["registry"] != stolen
            assert any("trying new ports" in line for line in progress)
            assert stack.status().healthy
        finally:
            report = stack.down()
    assert report.found
    assert set(report.stopped) == {"redis", "auth", "registry", "nginx"}
    assert _processes_of(stack_dir) == []


def test_wrong_shape_knobs_are_recorded_and_the_doctor_names_each(stack_dir: Path) -> None:
    """The field report's shapes, on purpose: one proxy worker, few connections, blocking
    token service workers, fewer of them than cores, bcrypt on every request."""
    cores = os.cpu_count() or 1
    up = cli(
        "stack", "up", "--dir", str(stack_dir), "--bcrypt-cost", "4",
        "--proxy-workers", "1", "--proxy-connections", "256", "--auth-workers", "1",
        "--auth-worker-class", "sync", "--no-credential-cache", "--json",
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    recorded = json.loads(up.stdout)["settings"]
    assert recorded["proxy_workers"] == 1 and recorded["proxy_connections"] == 256
    assert recorded["auth_worker_class"] == "sync" and recorded["credential_cache"] is False
    assert json.loads(up.stdout)["entry"] == json.loads(up.stdout)["urls"]["nginx"]

    doctor = cli("stack", "doctor", "--dir", str(stack_dir), "--json")
    assert doctor.returncode == 1, doctor.stderr
    ids = sorted(f["id"] for f in json.loads(doctor.stdout)["findings"])
    expected = ["auth-worker-class-blocking", "credential-cache-off", "proxy-connections-low"]
    if cores > 1:
        expected += ["auth-workers-below-cores", "proxy-workers-below-cores"]
    assert ids == sorted(expected)


def test_missing_nginx_names_its_package(stack_dir: Path) -> None:
    result = cli(
        "stack", "up", "--dir", str(stack_dir),
        env=_env({"KEELHAUL_STACK_NGINX_BINARY": "/nonexistent/nginx"}),
    )  # fmt: skip
    _assert_clean_error(result)
    assert "apt-get install nginx-light" in result.stderr
