"""``--monitoring``'s pure parts: ports, scrape jobs, exporters' flags, process groups."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from keelhaul.cli import stack_cmd
from keelhaul.stack.components import PACKAGES, component_specs, monitoring_binaries
from keelhaul.stack.layout import StackLayout
from keelhaul.stack.monitoring import (
    EXPORTERS,
    TIERS,
    expected_jobs,
    process_groups,
    prometheus_args,
    prometheus_config,
)
from keelhaul.stack.plan import StackPlan, choose_ports
from keelhaul.stack.redisconf import redis_argv
from keelhaul.stack.settings import COMPONENTS, StackSettings, wanted_components

pytestmark = pytest.mark.unit

LAYOUT = StackLayout(Path("/srv/stack"))
ALL_JOBS = ["nginx", "registry", "auth", "redis", "node", "process", "prometheus"]


def _plan(**knobs: object) -> StackPlan:
    settings = StackSettings.model_validate({"monitoring": True, **knobs})
    counter = iter(range(7000, 8000))
    return StackPlan.local(LAYOUT, settings, choose_ports(settings, lambda: next(counter)))


def _binaries(plan: StackPlan) -> dict[str, str]:
    names = ["redis-server", "docker-registry", "nginx", *monitoring_binaries(plan.settings)]
    return {name: f"/usr/bin/{name}" for name in names}


def test_the_cli_lists_the_same_components_as_the_settings() -> None:
    assert stack_cmd.COMPONENTS == COMPONENTS


def test_monitoring_ports_only_with_the_knob() -> None:
    assert "prometheus" not in wanted_components(StackSettings())
    assert set(wanted_components(StackSettings(monitoring=True))) == set(COMPONENTS)
    without_redis = wanted_components(StackSettings(monitoring=True, redis=False))
    assert "redis" not in without_redis
    assert "redis_exporter" not in without_redis
    assert "prometheus" in without_redis


def test_scrape_config_every_second_on_loopback() -> None:
    plan = _plan()
    config = prometheus_config(plan)
    assert config["global"] == {
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "evaluation_interval": "1s",
    }
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"][0] for job in config["scrape_configs"]
    }
    assert list(targets) == ALL_JOBS
    assert targets["registry"] == f"127.0.0.1:{plan.ports['registry_debug']}"
    assert targets["auth"] == f"127.0.0.1:{plan.ports['auth']}"
    assert targets["nginx"] == f"127.0.0.1:{plan.ports['nginx_exporter']}"
    assert targets["redis"] == f"127.0.0.1:{plan.ports['redis_exporter']}"
    assert all(job["metrics_path"] == "/metrics" for job in config["scrape_configs"])


def test_no_redis_no_redis_job_nor_exporter_nor_group() -> None:
    plan = _plan(redis=False)
    jobs = [job["job_name"] for job in prometheus_config(plan)["scrape_configs"]]
    assert "redis" not in jobs
    assert expected_jobs(plan.ports) == jobs
    assert [g["name"] for g in process_groups(plan)] == ["nginx", "auth", "registry"]
    names = [s.name for s in component_specs(plan, LAYOUT, _binaries(plan))]
    assert "redis_exporter" not in names


def test_monitoring_components_start_after_the_tiers_prometheus_last() -> None:
    plan = _plan()
    specs = component_specs(plan, LAYOUT, _binaries(plan))
    names = [s.name for s in specs]
    assert names == [
        "redis", "auth", "registry", "nginx",
        "node_exporter", "process_exporter", "nginx_exporter", "redis_exporter", "prometheus",
    ]  # fmt: skip
    by_name = {s.name: s for s in specs}
    prometheus = by_name["prometheus"]
    assert f"--web.listen-address=127.0.0.1:{plan.ports['prometheus']}" in prometheus.argv
    assert "--storage.tsdb.path=/srv/stack/prometheus" in prometheus.argv
    assert prometheus.config == LAYOUT.prometheus_config
    nginx_exporter = by_name["nginx_exporter"].argv
    status = f"http://127.0.0.1:{plan.ports['nginx_status']}/nginx_status"
    assert f"-nginx.scrape-uri={status}" in nginx_exporter
    assert f"-redis.addr=redis://127.0.0.1:{plan.ports['redis']}" in by_name["redis_exporter"].argv
    for exporter in EXPORTERS:
        spec = by_name[exporter.component]
        assert spec.argv[0] == f"/usr/bin/{exporter.binary}"
        assert exporter.binary in PACKAGES
        # every exporter listens on loopback only, and is recognised by binary and address
        assert any(arg.endswith(f"=127.0.0.1:{plan.ports[spec.name]}") for arg in spec.argv)
        assert spec.match == (spec.argv[0], f"127.0.0.1:{plan.ports[spec.name]}")
    assert "--storage.tsdb.retention.time=1d" in prometheus_args(plan)


def test_process_groups_match_the_stacks_processes_only() -> None:
    plan = _plan()
    groups = {g["name"]: g for g in process_groups(plan)}
    assert list(groups) == list(TIERS)
    redis_port = plan.ports["redis"]
    ours = {
        "nginx": ("nginx", "nginx: master process /usr/sbin/nginx -p /srv/stack/nginx/ "
                  "-c /srv/stack/config/nginx.conf -e /srv/stack/logs/nginx.log -g daemon off;"),
        "auth": ("python", "/usr/bin/python -m keelhaul auth serve --config "
                 "/srv/stack/config/auth.yml"),
        "registry": ("docker-registry",
                     "/usr/bin/docker-registry serve /srv/stack/config/registry.yml"),
        "redis": ("redis-server", f"redis-server 127.0.0.1:{redis_port}"),
    }  # fmt: skip
    others = [
        ("nginx", "nginx: master process /usr/sbin/nginx -c /etc/nginx/nginx.conf"),
        ("nginx", "nginx: master process nginx -c /srv/stack/config/nginx.conf.bak"),
        ("python", "/usr/bin/python -m keelhaul auth serve --config /tmp/auth.yml"),
        ("docker-registry", "/usr/bin/docker-registry serve /etc/docker/registry/config.yml"),
        ("redis-server", "redis-server 127.0.0.1:6379"),
        ("redis-server", f"redis-server 127.0.0.1:{redis_port}1"),
        ("prometheus-redi", f"prometheus-redis-exporter -redis.addr=redis://127.0.0.1:{redis_port}"),
    ]  # fmt: skip

    def matched(comm: str, cmdline: str) -> list[str]:
        return [
            name
            for name, group in groups.items()
            if all(c == comm for c in group.get("comm", []))
            and all(re.search(rx, cmdline) for rx in group["cmdline"])
        ]

    for tier, (comm, cmdline) in ours.items():
        assert matched(comm, cmdline) == [tier]
    for comm, cmdline in others:
        assert matched(comm, cmdline) == [], cmdline


def test_redis_command_line_is_one_for_every_shape() -> None:
    local = redis_argv("/usr/bin/redis-server", _plan(), directory="/srv/stack/run")
    assert local[local.index("--protected-mode") + 1] == "yes"
    assert local[-2:] == ["--dir", "/srv/stack/run"]
    deployed = StackPlan.deployment(StackSettings(), "k8s", public_url="http://r.example")
    container = redis_argv("redis-server", deployed)
    assert container[container.index("--bind") + 1] == "0.0.0.0"  # noqa: S104
    assert container[container.index("--protected-mode") + 1] == "no"
    assert "--dir" not in container
