"""Build the collectors for one stack (the I/O shell around :mod:`.targets`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from keelhaul.diagnose.collectors import Collector
from keelhaul.diagnose.collectors.auth_metrics import AuthMetricsCollector
from keelhaul.diagnose.collectors.listen_queue import ListenQueueCollector
from keelhaul.diagnose.collectors.log_events import LogEventsCollector
from keelhaul.diagnose.collectors.nginx_log import NginxLogCollector
from keelhaul.diagnose.collectors.procs import ProcessCollector
from keelhaul.diagnose.collectors.redis_info import RedisCollector
from keelhaul.diagnose.collectors.registry_metrics import RegistryMetricsCollector
from keelhaul.diagnose.collectors.stub_status import StubStatusCollector
from keelhaul.diagnose.sources import SourceInfo
from keelhaul.diagnose.targets import Targets, targets_from_state
from keelhaul.errors import StackError
from keelhaul.stack.state import StackState, read_state

__all__ = ["build_collectors", "describe", "external_redis_notes", "load_targets"]

WATCHED_PORTS = ("nginx", "auth", "registry", "redis")


def load_targets(stack_dir: Path, *, load_pids: tuple[int, ...] = ()) -> tuple[StackState, Targets]:
    """The running stack in ``stack_dir``; StackError when there is none."""
    state = read_state(stack_dir.expanduser().absolute() / "stack.json")
    if state is None or state.status != "running" or not state.pids:
        raise StackError(
            f"no running stack in {stack_dir}; start one with keelhaul stack up --dir {stack_dir}"
        )
    return state, targets_from_state(state, load_pids=load_pids)


def build_collectors(targets: Targets) -> list[Collector]:
    collectors: list[Collector] = [
        ProcessCollector(
            targets.leaders,
            load_pids=targets.load_pids,
            entry_ports=targets.entry_ports,
            cores=targets.cores,
        ),
        ListenQueueCollector({c: targets.ports[c] for c in WATCHED_PORTS if c in targets.ports}),
    ]
    if targets.access_log is not None:
        collectors.append(NginxLogCollector(targets.access_log))
    if targets.nginx_status_url is not None:
        collectors.append(StubStatusCollector(targets.nginx_status_url))
    if targets.logs:
        collectors.append(LogEventsCollector(targets.logs))
    if targets.registry_debug_url is not None:
        collectors.append(RegistryMetricsCollector(targets.registry_debug_url))
    if targets.auth_url is not None or targets.auth_metrics_dir is not None:
        collectors.append(
            AuthMetricsCollector(metrics_dir=targets.auth_metrics_dir, url=targets.auth_url)
        )
    if targets.redis_url is not None:
        collectors.append(RedisCollector(targets.redis_url))
    return collectors


def external_redis_notes(targets: Targets) -> tuple[str, ...]:
    """An external Redis has no pid here: say what is unseen (never count it idle)."""
    if targets.redis_external is None:
        return ()
    return (
        f"Redis is external ({targets.redis_external}, not run by this stack): its process "
        "(CPU, run queue) and its host are unseen; judged from what it answers: INFO "
        "commandstats (busy share), PING round trips, SLOWLOG, clients",
    )


def describe(targets: Targets) -> dict[str, Any]:
    """What was watched, for the report's header (no secrets: the stack has none here)."""
    return {
        "stack_dir": str(targets.stack_dir),
        "leaders": dict(targets.leaders),
        "ports": dict(targets.ports),
        "cores": targets.cores,
        "load_pids": list(targets.load_pids),
        "access_log": str(targets.access_log) if targets.access_log else None,
        "source": SourceInfo(
            kind="local", resolution_s=1.0, notes=external_redis_notes(targets)
        ).as_dict(),
    }
