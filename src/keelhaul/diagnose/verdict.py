"""Pure rules: signals → the tier that limits throughput, the evidence, what to try next.

Each rule looks at one tier and returns a :class:`Finding` with a score (0: no sign; 0.5 and
more: that tier is saturated; 0.8 and more: strong, two or more signals agree). The verdict is
the strongest server-side finding; ties go to the tier that causes the others' symptoms
(Redis and storage slow the registry down; a full proxy hides the tiers behind it).
The load generator wins only when no server tier is saturated: a saturated generator must
never pass for a slow server, and a slow server must not be blamed on the generator.

=================  ===============================================================  =====
rule               measured signal (thresholds below)                               score
=================  ===============================================================  =====
CPU quota          a tier's cgroup throttled in >= THROTTLED of its CFS periods     1.0
(any tier)         (nginx -> proxy, token service -> token CPU, registry, Redis;
                   its other findings become its evidence: busy workers, a queue,
                   slow handlers are what a quota does; the generator's: 0.9)
proxy              nginx alerts ``worker_connections are not enough``, or           1.0
                   connections dropped (stub_status accepts - handled)
                   entry accept queue non-empty in >= QUEUE_SHARE of samples        0.8
                   nginx workers runnable >= WORKER_BUSY of the time                0.7
                   nginx's own time >= PROXY_SHARE of request time (>= 5 ms)        0.6
token workers      in-flight + queued >= capacity (every slot taken) in             0.9
                   >= SLOTS_SHARE of samples, or the accept queue non-empty in
                   >= QUEUE_SHARE while CPU-bound, with fewer workers than CPUs
token CPU          the workers' CPU demand >= CPU_BOUND x min(workers, CPUs)        0.8
                   (+ the stage that takes the app's time; + the call graph)
Redis              its thread busy executing commands >= REDIS_BUSY of the time     0.5-1
                   or a PING's median >= REDIS_PING_MS
storage            storage driver >= STORAGE_SHARE of handler time, handlers slow   0.8
registry           CPU demand >= CPU_BOUND x CPUs (starved when mostly waiting)     0.8
                   handlers' mean >= REGISTRY_SLOW_S (0.4 beside a saturated        0.6
                   generator: a slow reader holds a streamed answer's handler)
load generator     a generator thread >= GENERATOR_THREAD of a CPU, or its demand   0.9
                   >= CPU_BOUND x CPUs, or >= GENERATOR_THREAD per process
=================  ===============================================================  =====
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from keelhaul.diagnose.quota import quota_rules, under_quota
from keelhaul.diagnose.rules import (
    LABELS,
    OTHER_CORES,
    SATURATED,
    STRONG,
    Finding,
    HotSpot,
    generator_rule,
    proxy_rule,
    redis_rule,
    registry_rules,
    token_rules,
)
from keelhaul.diagnose.signals import Signals
from keelhaul.diagnose.sources import cap_confidence, resolution_cap

__all__ = ["LABELS", "PRECEDENCE", "Finding", "HotSpot", "Verdict", "decide"]

PRECEDENCE = ("redis", "storage", "proxy", "token_workers", "token_cpu", "registry")


@dataclass(frozen=True)
class Verdict:
    tier: str
    title: str
    confidence: str
    evidence: tuple[str, ...]
    next_steps: tuple[str, ...]
    also: tuple[Finding, ...] = ()
    caveats: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = field(default=())

    @property
    def label(self) -> str:
        return LABELS.get(self.tier, self.tier)

    def text(self) -> str:
        """The verdict as a terminal prints it."""
        lines = [f"verdict: {self.label} — {self.title} (confidence: {self.confidence})"]
        lines += [f"  evidence: {e}" for e in self.evidence]
        lines += [f"  next:     {s}" for s in self.next_steps]
        lines += [f"  also:     {f.title} ({LABELS.get(f.tier, f.tier)})" for f in self.also]
        lines += [f"  caveat:   {c}" for c in self.caveats]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "label": self.label,
            "title": self.title,
            "confidence": self.confidence,
            "evidence": list(self.evidence),
            "next_steps": list(self.next_steps),
            "also": [f.as_dict() for f in self.also],
            "caveats": list(self.caveats),
            "findings": [f.as_dict() for f in self.findings],
        }


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _headroom(s: Signals) -> tuple[str, ...]:
    rows = []
    for name, t in sorted(s.tiers.items(), key=lambda kv: -kv[1].demand):
        if name in ("diagnosis", "generator"):
            continue
        rows.append(f"{name} {t.demand:.2f}")
    ev = [f"CPU demand by tier (CPUs of {s.cores}): " + ", ".join(rows[:4])]
    queues = []
    if s.auth is not None and s.auth.queue_share is not None:
        queues.append(f"token service {_pct(s.auth.queue_share)}")
    if s.proxy is not None and s.proxy.queue_share is not None:
        queues.append(f"nginx {_pct(s.proxy.queue_share)}")
    if queues:
        ev.append("accept queues non-empty in: " + ", ".join(queues) + " of samples")
    if s.redis is not None and s.redis.busy_share is not None:
        ev.append(f"Redis busy {_pct(s.redis.busy_share)} of the time")
    return tuple(ev)


_STATUS_MEANING = {
    "499": "the client gave up first",
    "502": "the upstream failed",
    "503": "unavailable",
    "504": "the upstream timed out",
}


def _failures(s: Signals) -> list[str]:
    """What failed, as the proxy and the client saw it: worth knowing whatever the verdict."""
    out = []
    for stage in s.proxy.stages if s.proxy is not None else ():
        for code, count in sorted(stage.statuses.items()):
            meaning = _STATUS_MEANING.get(code, "")
            out.append(f"nginx answered {count:.0f} x {code} to {stage.name} ({meaning})")
    failed = [c for c in s.client if c.failures]
    if failed:
        listed = ", ".join(f"{c.name} {c.failures}" for c in failed[:4])
        out.append(f"the load generator counted failures: {listed}")
    return out


def _caveats(s: Signals) -> tuple[str, ...]:
    out = []
    if s.other_cores is not None and s.other_cores >= OTHER_CORES:
        out.append(
            f"processes outside the stack used {s.other_cores:.2f} of the host's {s.cores} CPUs: "
            "every tier competed with them"
        )
    g = s.tier("generator")
    if g is None or g.procs <= 0:
        out.append("no load-generator process was found; pass its pid with --load-pid to watch it")
    out += _failures(s)
    for name, count in sorted(s.errors.items()):
        out.append(f"{name}: unreadable in {count} samples")
    if s.seconds < 5:
        out.append(f"only {s.seconds:.0f} s of traffic: a longer run gives steadier numbers")
    return (*_source_caveats(s), *out)


def _source_caveats(s: Signals) -> list[str]:
    """Tiers the source never saw, what it cannot see, and how coarse its data was."""
    src, out = s.source, []
    if src.unseen:
        out.append(
            f"no data for {', '.join(src.unseen)} from {src.kind}: unseen, not judged "
            "(check the tier mapping, --tiers)"
        )
    if src.blind:
        out.append(f"not visible through {src.kind}: " + "; ".join(src.blind))
    cap = resolution_cap(src.resolution_s, s.steps)
    if cap != "high":
        out.append(
            f"data every {src.resolution_s:g} s ({s.steps} samples in the window): "
            f"confidence at most {cap}"
        )
    out += src.notes
    return out


def _capped(verdict: Verdict, s: Signals) -> Verdict:
    cap = resolution_cap(s.source.resolution_s, s.steps)
    if s.source.unseen and verdict.tier in ("none", "load_generator"):
        cap = "low"  # a tier nobody saw may be the one that limits
    return replace(verdict, confidence=cap_confidence(verdict.confidence, cap))


def decide(s: Signals, hot: HotSpot | None = None) -> Verdict:
    return _capped(_decide(s, hot), s)


def _decide(s: Signals, hot: HotSpot | None) -> Verdict:
    if not s.active:
        return Verdict(
            "no_traffic",
            "no request reached the stack while it was watched",
            "high",
            ("no request was counted by the proxy, the token service or the registry",),
            ("run a load while diagnosing (keelhaul load --diagnose)",),
            caveats=_caveats(s),
        )
    findings = [
        f for f in (proxy_rule(s), token_rules(s, hot), redis_rule(s), generator_rule(s)) if f
    ]
    findings = under_quota([*findings, *registry_rules(s)], quota_rules(s))
    server = [f for f in findings if f.tier != "load_generator" and f.score >= SATURATED]
    generator = next((f for f in findings if f.tier == "load_generator"), None)
    caveats = _caveats(s)
    if server:
        server.sort(key=lambda f: (-(f.score >= STRONG), PRECEDENCE.index(f.tier), -f.score))
        best = server[0]
        if generator is not None:
            caveats = (f"the load generator was saturated too: {generator.evidence[0]}", *caveats)
        strong = sum(1 for e in best.evidence if e) >= 2 and best.score >= STRONG
        return Verdict(
            best.tier,
            best.title,
            "high" if strong else "medium",
            best.evidence[:3],
            best.next_steps,
            tuple(server[1:]),
            caveats,
            tuple(findings),
        )
    if generator is not None:
        return Verdict(
            "load_generator",
            generator.title,
            "high",
            (*generator.evidence[:2], *_headroom(s)[:1]),
            generator.next_steps,
            (),
            caveats,
            tuple(findings),
        )
    title = (
        "every tier had headroom: the load generator, or the load it was asked for, is the limit"
    )
    if s.source.unseen:
        title = (
            f"every tier that was seen had headroom; {', '.join(s.source.unseen)} could not be seen"
        )
    return Verdict(
        "none",
        title,
        "medium",
        _headroom(s),
        ("offer more load (more users, a higher rate) to find the limit",),
        (),
        caveats,
        tuple(findings),
    )
