"""The extension points of docs/architecture.md ("Extension points"), checked where a table
can be: each record registered in one table has what the rest of the product needs of it."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from keelhaul.diagnose.rules import LABELS
from keelhaul.diagnose.verdict import PRECEDENCE
from keelhaul.names import COMPONENTS
from keelhaul.stack.components import component_specs
from keelhaul.stack.health import PROBES
from keelhaul.stack.layout import StackLayout
from keelhaul.stack.plan import StackPlan, choose_ports
from keelhaul.stack.reconfigure import LIVE_KNOBS
from keelhaul.stack.settings import StackSettings
from keelhaul.tune.moves import MOVES, STOP_TIERS

pytestmark = pytest.mark.unit


def test_every_verdict_tier_has_a_place_in_the_precedence_or_is_a_stop() -> None:
    assert set(PRECEDENCE) | set(STOP_TIERS) == set(LABELS)


def test_every_tune_move_answers_verdict_tiers_and_turns_live_knobs() -> None:
    for move in MOVES:
        assert set(move.answers) <= set(PRECEDENCE), move.name
        assert move.why and move.name


@pytest.mark.parametrize("knob", sorted(LIVE_KNOBS))
def test_every_live_knob_is_a_stack_setting_with_a_stack_up_flag(knob: str) -> None:
    from keelhaul.cli.stack_cmd import stack

    assert knob in StackSettings.model_fields
    up = stack.commands["up"]  # type: ignore[attr-defined]
    flags = {opt for p in up.params for opt in (*p.opts, *p.secondary_opts)}
    assert LIVE_KNOBS[knob].flag in flags
    assert set(LIVE_KNOBS[knob].components) <= {"auth", "nginx", "registry", "redis"}


@pytest.mark.parametrize(
    ("monitoring", "redis"), list(itertools.product([False, True], [False, True]))
)
def test_every_stack_component_has_a_port_name_a_probe_and_a_log(
    tmp_path: Path, monitoring: bool, redis: bool
) -> None:
    settings = StackSettings(monitoring=monitoring, redis=redis)
    layout = StackLayout.at(tmp_path / "s")
    ports = choose_ports(settings, iter(range(20000, 20100)).__next__)
    plan = StackPlan.local(layout, settings, ports)
    binaries = {
        name: f"/usr/bin/{name}"
        for name in ("redis-server", "docker-registry", "nginx", "prometheus",
                     "prometheus-node-exporter", "prometheus-process-exporter",
                     "prometheus-nginx-exporter", "prometheus-redis-exporter")
    }  # fmt: skip
    specs = component_specs(plan, layout, binaries, python="/usr/bin/python3")
    assert specs, "a stack starts something"
    for spec in specs:
        assert spec.name in COMPONENTS, spec.name
        assert spec.name in PROBES, spec.name
        assert spec.name in plan.ports, spec.name
        assert spec.log.parent == layout.log(spec.name).parent
    assert ("redis" in {s.name for s in specs}) is redis
    assert ("prometheus" in {s.name for s in specs}) is monitoring


def test_every_identity_backend_kind_has_settings_in_the_union_and_a_factory() -> None:
    from typing import get_args

    from keelhaul.auth.authn.options import BackendSettings
    from keelhaul.auth.authn.registry import KINDS

    union = get_args(get_args(BackendSettings)[0])
    kinds = {get_args(m.model_fields["kind"].annotation)[0]: m for m in union}
    assert set(kinds) == set(KINDS)
    for kind, record in KINDS.items():
        assert record.options is kinds[kind] and record.what, kind


def test_every_identity_backend_reports_its_own_kind(tmp_path: Path) -> None:
    """Metrics label a backend by ``kind``: the one it was built from, for every record."""
    from pydantic import TypeAdapter

    from keelhaul.auth.authn import Events
    from keelhaul.auth.authn.options import BackendSettings
    from keelhaul.auth.authn.registry import KINDS, build_backend

    (tmp_path / "htpasswd").write_text("")
    minimal = {
        "htpasswd": {"path": str(tmp_path / "htpasswd")},
        "static": {},
        "ldap": {"servers": ["ldap://127.0.0.1:9"], "base_dn": "dc=x"},
        "robots": {"path": str(tmp_path / "robots.json")},
        "oidc": {"issuer": "http://127.0.0.1:9", "audiences": ["a"]},
    }
    assert set(minimal) == set(KINDS)
    adapter: TypeAdapter[object] = TypeAdapter(BackendSettings)
    for kind, extra in minimal.items():
        backend = build_backend(adapter.validate_python({"kind": kind, **extra}))  # type: ignore[arg-type]
        try:
            assert backend.kind == kind and isinstance(backend.events, Events)
        finally:
            backend.close()
