"""Pure: a tier under a CPU quota, whichever tier and whichever source.

Every source reads each tier's cgroup the same way (``throttled_share``, ``cpu_limit`` in
:class:`~keelhaul.diagnose.signals.TierCpu`): the local sampler from each leader's cgroup,
Prometheus from cAdvisor's ``container_cpu_cfs_*`` series. A tier throttled in THROTTLED of
its CFS periods is named for its quota; its other findings become the quota's evidence
(busy workers, a queue, slow handlers are what a quota does).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from keelhaul.diagnose.findings import Finding, pct
from keelhaul.diagnose.signals import Signals, TierCpu

__all__ = [
    "QUOTA_TIERS",
    "THROTTLED",
    "QuotaTier",
    "quota_finding",
    "quota_rules",
    "throttle_text",
    "throttled",
    "under_quota",
]

THROTTLED = 0.2
"""Share of a cgroup's CPU periods in which its quota throttled it."""


@dataclass(frozen=True)
class QuotaTier:
    """How a tier under a CPU quota is named, and what to do about it."""

    verdict: str
    """The verdict tier it counts against (:data:`~keelhaul.diagnose.findings.LABELS`)."""
    name: str
    advice: tuple[str, ...]


QUOTA_TIERS = {
    "nginx": QuotaTier(
        "proxy",
        "nginx",
        (
            "raise nginx's CPU limit (or remove it), and keep worker_processes no higher "
            "than the CPUs the limit allows",
            "add nginx replicas",
        ),
    ),
    "auth": QuotaTier(
        "token_cpu",
        "the token service",
        (
            "raise the token service's CPU limit (or remove it): more workers cannot help "
            "past the quota",
            "add token-service replicas",
        ),
    ),
    "registry": QuotaTier(
        "registry",
        "the registry",
        ("raise the registry's CPU limit (or remove it)", "add registry replicas"),
    ),
    "redis": QuotaTier(
        "redis",
        "Redis",
        (
            "raise Redis' CPU limit to at least one CPU (it runs commands on one thread) "
            "or remove it",
            "give the registry's cache and the credential cache their own instances",
        ),
    ),
    "generator": QuotaTier(
        "load_generator",
        "the load generator",
        (
            "raise the load generator's CPU limit (or remove it)",
            "or generate the load from another machine or more pods",
        ),
    ),
}
"""Every tier whose cgroup quota the sources read (``throttled_share``, ``cpu_limit``):
the local sampler from each leader's cgroup, Prometheus from cAdvisor's series."""


def throttled(t: TierCpu | None) -> bool:
    return t is not None and t.throttled_share is not None and t.throttled_share >= THROTTLED


def throttle_text(name: str, t: TierCpu) -> str:
    owner = f"{name}'" if name.endswith("s") else f"{name}'s"
    limit = f" (limit {t.cpu_limit:.2f} CPUs)" if t.cpu_limit is not None else ""
    pods = f" across {t.replicas:.0f} pods" if t.replicas is not None and t.replicas > 1 else ""
    return (
        f"{owner} cgroup was throttled in {pct(t.throttled_share or 0)} of CPU periods"
        f"{limit}; it used {t.cpu:.2f} CPUs{pods}"
    )


def quota_finding(s: Signals, tier: str) -> Finding | None:
    """A tier throttled by its CPU quota in >= THROTTLED of its CFS periods: whatever its
    other signals say (busy workers, a queue, slow handlers), the quota is what limits it."""
    t, q = s.tier(tier), QUOTA_TIERS.get(tier)
    if q is None or t is None or not throttled(t):
        return None
    title = f"{q.name} is starved of CPU by its cgroup quota"
    evidence = (throttle_text(q.name, t),)
    if tier == "generator":  # not a server: it wins only when no server is saturated
        return Finding(q.verdict, 0.9, f"{title}: it cannot offer more load", evidence, q.advice)
    return Finding(q.verdict, 1.0, title, evidence, q.advice)


def quota_rules(s: Signals) -> list[Finding]:
    """:func:`quota_finding` for every server tier (the generator's is in its own rule)."""
    return [f for tier in QUOTA_TIERS if tier != "generator" if (f := quota_finding(s, tier))]


def under_quota(findings: list[Finding], quotas: list[Finding]) -> list[Finding]:
    """Each quota finding takes the place of its tier's other findings (busy workers, a
    queue, slow handlers are what a quota does) and keeps their evidence after its own."""
    out = list(findings)
    for q in quotas:
        family = ("token_workers", "token_cpu") if q.tier == "token_cpu" else (q.tier,)
        same = [f for f in out if f.tier in family]
        extra = [e for f in same for e in f.evidence if e not in q.evidence]
        out = [f for f in out if f.tier not in family]
        out.append(replace(q, evidence=(*q.evidence, *dict.fromkeys(extra))))
    return out
