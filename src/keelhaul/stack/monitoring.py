"""The stack's monitoring: Prometheus, its scrape jobs, the exporters and their flags. Pure.

``stack up --monitoring`` runs them as processes of the stack; ``stack render`` puts the
same jobs into compose (service names instead of ``127.0.0.1``) and the same exporters
beside the tiers on Kubernetes. The job names and the process groups are a contract with
the diagnosis' Prometheus source (``--tiers`` mapping): one job per tier (``nginx``,
``auth``, ``registry``, ``redis``) plus ``node``, ``process`` and ``prometheus``; one
process-exporter group per tier, named like the tier.

Every exporter is one :class:`Exporter` record in :data:`EXPORTERS`; nothing else switches
on an exporter's name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from keelhaul.stack.nginx import STATUS_PATH
from keelhaul.stack.plan import StackPlan

__all__ = [
    "EXPORTERS",
    "PROMETHEUS",
    "SCRAPE_INTERVAL",
    "SCRAPE_JOBS",
    "TIERS",
    "Exporter",
    "ScrapeJob",
    "expected_jobs",
    "monitoring_yaml",
    "process_exporter_config",
    "process_groups",
    "process_tier_mapping",
    "prometheus_args",
    "prometheus_config",
    "prometheus_global",
    "stack_tiers",
    "tier_matchers",
]

TIERS: tuple[str, ...] = ("nginx", "auth", "registry", "redis")
"""The tier names every monitoring artifact uses (jobs, process groups, mapping files)."""

SCRAPE_INTERVAL = "1s"
LOCAL_RETENTION = "1d"
"""The local stack's Prometheus keeps a day: benchmarks and diagnoses look at minutes."""
DEPLOY_RETENTION = "15d"

PROMETHEUS = "prometheus"
"""The component (and job) name of Prometheus itself."""


@dataclass(frozen=True)
class ScrapeJob:
    job: str
    component: str
    """The port (component) Prometheus scrapes for this job."""
    path: str = "/metrics"


SCRAPE_JOBS: tuple[ScrapeJob, ...] = (
    ScrapeJob("nginx", "nginx_exporter"),
    ScrapeJob("registry", "registry_debug"),
    ScrapeJob("auth", "auth"),
    ScrapeJob("redis", "redis_exporter"),
    ScrapeJob("node", "node_exporter"),
    ScrapeJob("process", "process_exporter"),
    ScrapeJob("prometheus", PROMETHEUS),
)
"""Job name -> what it scrapes. A job whose component the stack lacks (no Redis) is left out."""


def expected_jobs(components: Iterable[str]) -> list[str]:
    """The jobs a stack with these ports has."""
    present = set(components)
    return [job.job for job in SCRAPE_JOBS if job.component in present]


# ------------------------------------------------------------------ exporters


def _node_args(plan: StackPlan) -> list[str]:
    """Only the host-wide collectors the diagnosis reads (CPU, load, pressure, memory,
    network); the slow ones (filesystems, disks' device scan) stay off at 1 s scrapes."""
    return [
        f"--web.listen-address={plan.bind('node_exporter')}",
        "--collector.disable-defaults",
        "--collector.cpu",
        "--collector.stat",
        "--collector.loadavg",
        "--collector.pressure",
        "--collector.schedstat",
        "--collector.meminfo",
        "--collector.vmstat",
        "--collector.netdev",
        "--collector.netstat",
    ]


def _process_args(plan: StackPlan) -> list[str]:
    """No smaps (a read of every mapped region of every process, each second)."""
    return [
        f"-web.listen-address={plan.bind('process_exporter')}",
        f"-config.path={plan.files.process_exporter_config}",
        "-gather-smaps=false",
    ]


def _nginx_args(plan: StackPlan) -> list[str]:
    return [
        f"-nginx.scrape-uri={plan.url('nginx_status')}{STATUS_PATH}",
        f"-web.listen-address={plan.bind('nginx_exporter')}",
        "-nginx.timeout=1s",
    ]


def _redis_args(plan: StackPlan) -> list[str]:
    return [
        f"-redis.addr={plan.url('redis')}",
        f"-web.listen-address={plan.bind('redis_exporter')}",
        "-connection-timeout=1s",
    ]


@dataclass(frozen=True)
class Exporter:
    """One exporter of the stack: its Debian binary, flags, and proof that it works."""

    component: str
    binary: str
    package: str
    args: Callable[[StackPlan], list[str]]
    healthy_line: str
    """A line its ``/metrics`` shows once it reads what it watches (``nginx_up 1``)."""
    config: Callable[[StackPlan], str] | None = None
    """Its config file, where it has one."""


EXPORTERS: tuple[Exporter, ...] = (
    Exporter(
        "node_exporter",
        "prometheus-node-exporter",
        "prometheus-node-exporter",
        _node_args,
        "node_cpu_seconds_total",
    ),
    Exporter(
        "process_exporter",
        "prometheus-process-exporter",
        "prometheus-process-exporter",
        _process_args,
        "namedprocess_scrape_errors",
        config=lambda plan: plan.files.process_exporter_config,
    ),
    Exporter(
        "nginx_exporter",
        "prometheus-nginx-exporter",
        "prometheus-nginx-exporter",
        _nginx_args,
        "nginx_up 1",
    ),
    Exporter(
        "redis_exporter",
        "prometheus-redis-exporter",
        "prometheus-redis-exporter",
        _redis_args,
        "redis_up 1",
    ),
)
PROMETHEUS_BINARY = ("prometheus", "prometheus")
"""Binary and Debian package of Prometheus itself (promtool comes with it)."""


# ------------------------------------------------------------------ Prometheus


def prometheus_global() -> dict[str, str]:
    """Every job at 1 s (the stack's Prometheus and the cluster's scrape config alike): the
    diagnosis' resolution is the scrape interval."""
    return {
        "scrape_interval": SCRAPE_INTERVAL,
        "scrape_timeout": SCRAPE_INTERVAL,
        "evaluation_interval": SCRAPE_INTERVAL,
    }


def prometheus_config(plan: StackPlan) -> dict[str, Any]:
    """The stack's own Prometheus: one static job per exporter and tier."""
    return {
        "global": prometheus_global(),
        "scrape_configs": [
            {
                "job_name": job.job,
                "metrics_path": job.path,
                "static_configs": [{"targets": [plan.peer(job.component)]}],
            }
            for job in SCRAPE_JOBS
            if job.component in plan.ports
        ],
    }


def prometheus_args(plan: StackPlan) -> list[str]:
    retention = LOCAL_RETENTION if plan.target == "local" else DEPLOY_RETENTION
    return [
        f"--config.file={plan.files.prometheus_config}",
        f"--storage.tsdb.path={plan.files.prometheus_data}",
        f"--storage.tsdb.retention.time={retention}",
        f"--web.listen-address={plan.bind(PROMETHEUS)}",
    ]


# ------------------------------------------------------------------ process groups


def tier_matchers(plan: StackPlan) -> Mapping[str, dict[str, list[str]]]:
    """How each tier's leader process is recognised: by the stack's own config files (and
    Redis by its port), so that other nginx or Redis processes on the host never count.
    Workers (nginx's, gunicorn's) count with their leader (process-exporter's
    ``-children``, on by default)."""
    files = plan.files
    matchers: dict[str, dict[str, list[str]]] = {
        "nginx": {"cmdline": [f"-c {re.escape(files.nginx_config)}(\\s|$)"]},
        "auth": {"cmdline": [f"auth serve --config {re.escape(files.auth_config)}(\\s|$)"]},
        "registry": {"cmdline": [f"serve {re.escape(files.registry_config)}(\\s|$)"]},
    }
    if "redis" in plan.ports:
        # redis-server retitles itself "redis-server <bind>:<port>"
        matchers["redis"] = {
            "comm": ["redis-server"],
            "cmdline": [f":{plan.ports['redis']}(\\s|$)"],
        }
    return matchers


def process_groups(plan: StackPlan) -> list[dict[str, Any]]:
    return [{"name": tier, **match} for tier, match in tier_matchers(plan).items()]


def process_exporter_config(plan: StackPlan) -> dict[str, Any]:
    return {"process_names": process_groups(plan)}


# ------------------------------------------------------------------ tier mapping


def stack_tiers(plan: StackPlan) -> list[str]:
    """The tiers this stack has (no Redis with ``--no-redis``)."""
    return [tier for tier in TIERS if tier in plan.ports]


def process_tier_mapping(plan: StackPlan) -> dict[str, Any]:
    """The diagnosis' ``--tiers`` file where CPU comes from process-exporter (the local
    stack, compose, VMs): the tier's process group and the tier's own job."""
    return {
        "version": 1,
        "cpu_source": "process-exporter",
        "host": 'job="node"',
        "tiers": {
            tier: {"cpu": f'job="process",groupname="{tier}"', "metrics": f'job="{tier}"'}
            for tier in stack_tiers(plan)
        },
    }


def monitoring_yaml(document: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(document), sort_keys=False, default_flow_style=False)
