"""The tier mapping file (``--tiers FILE``): which Prometheus series belong to which tier.

The diagnosis' tiers are ``nginx``, ``auth``, ``registry`` and ``redis``. For each, two
selectors (PromQL label matchers without braces) say where its series are:

* ``cpu``: the tier's processes or containers — process-exporter's ``groupname`` on a VM,
  cAdvisor's ``namespace``/``container`` on Kubernetes (``cpu_source`` says which);
* ``metrics``: the tier's own metrics — the nginx and Redis exporters', the registry's debug
  ``/metrics``, the token service's ``/metrics``.

``host`` selects node-exporter's ``node_cpu_seconds_total`` (optional). The format::

    version: 1
    cpu_source: process-exporter        # or cadvisor
    host: 'job="node"'
    tiers:
      nginx:    {cpu: 'groupname="nginx"',    metrics: 'job="nginx"'}
      auth:     {cpu: 'groupname="auth"',     metrics: 'job="auth"'}
      registry: {cpu: 'groupname="registry"', metrics: 'job="registry"'}
      redis:    {cpu: 'groupname="redis"',    metrics: 'job="redis"'}

:data:`LOCAL` is what ``keelhaul stack up --monitoring`` scrapes (the default). The mapping
for what ``keelhaul stack render --target k8s`` deploys is written beside the manifests as
``tiers.yaml`` (``stack.render.monitoring.kube_tier_mapping``, the one definition).
Pure, except :func:`load_tier_map`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator

from keelhaul.diagnose.targets import SERVER_TIERS
from keelhaul.errors import ConfigError, DiagnoseError
from keelhaul.settings_base import FrozenModel, read_yaml, validation_problems

__all__ = ["LOCAL", "TierMap", "TierSelectors", "load_tier_map"]

_MATCHER = re.compile(r'\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*')


def _check_matchers(value: str) -> str:
    """Label matchers as PromQL writes them inside braces: ``a="x",b=~"y.*"``."""
    text = value.strip()
    if not text:
        return text
    pos = 0
    while True:
        m = _MATCHER.match(text, pos)
        if m is None:
            raise ValueError(
                f'{value!r} is not a list of PromQL label matchers (write e.g. job="nginx")'
            )
        pos = m.end()
        if pos == len(text):
            return text
        if text[pos] != ",":
            raise ValueError(f"{value!r}: matchers are separated by commas")
        pos += 1


class TierSelectors(FrozenModel):
    cpu: str = Field(default="", description="matchers of the tier's processes or containers")
    metrics: str = Field(default="", description="matchers of the tier's own metrics")

    @field_validator("cpu", "metrics")
    @classmethod
    def _matchers(cls, value: str) -> str:
        return _check_matchers(value)


class TierMap(FrozenModel):
    version: Literal[1] = 1
    cpu_source: Literal["process-exporter", "cadvisor"] = "process-exporter"
    host: str = Field(default="", description="matchers of node-exporter's series")
    tiers: Mapping[str, TierSelectors]

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return _check_matchers(value)

    @field_validator("tiers")
    @classmethod
    def _known(cls, value: Mapping[str, TierSelectors]) -> Mapping[str, TierSelectors]:
        unknown = sorted(set(value) - set(SERVER_TIERS))
        if unknown:
            raise ValueError(
                f"unknown tier(s) {', '.join(unknown)}; the tiers are {', '.join(SERVER_TIERS)}"
            )
        if not value:
            raise ValueError("name at least one tier")
        return dict(value)


LOCAL = TierMap(
    cpu_source="process-exporter",
    host='job="node"',
    tiers={
        tier: TierSelectors(cpu=f'groupname="{tier}"', metrics=f'job="{tier}"')
        for tier in SERVER_TIERS
    },
)
"""What ``keelhaul stack up --monitoring`` scrapes: one process-exporter group and one job
per tier, named like the tier."""


def load_tier_map(path: Path) -> TierMap:
    """Read and validate a mapping file; one line naming the file and the keys otherwise."""
    try:
        data = read_yaml(path, "tier mapping")
    except ConfigError as exc:
        raise DiagnoseError("; ".join(exc.problems)) from None
    try:
        return TierMap.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(validation_problems(exc))
        raise DiagnoseError(f"tier mapping {path}: {problems}") from None
