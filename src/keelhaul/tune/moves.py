"""Which knob answers which verdict. Pure: a move reads the diagnosis and the stack's knobs.

One record per move in one table (``MOVES``). A move answers one or more finding tiers of
the diagnosis (``keelhaul.diagnose/v1``: ``verdict.tier`` and ``verdict.findings``) and
proposes a change of live knobs (``keelhaul.stack.reconfigure.LIVE_KNOBS``), or nothing
when the knob is already where it should be. Security is never a knob: bcrypt cost, the
throttle, TLS and the ACL are not live knobs, and ``FORBIDDEN`` is checked by a test; a
slow hash is answered by the credential cache, never by a weaker hash.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from keelhaul.stack.redisurl import redact_redis_url
from keelhaul.stack.settings import DEFAULT_PROXY_CONNECTIONS

__all__ = [
    "FORBIDDEN",
    "MOVES",
    "NO_KNOB",
    "STOP_TIERS",
    "Context",
    "Move",
    "Proposal",
    "recommend",
    "untunable",
]

FORBIDDEN = frozenset({"bcrypt_cost", "tls", "acl", "throttle", "redis", "ports"})
"""Knobs tune must never turn: security, and what would change the stack's shape."""

STOP_TIERS = {
    "none": "no server-side bottleneck: the stack has headroom at this load",
    "no_traffic": "the run carried no traffic to judge",
    "load_generator": "the load generator is the limit, not the stack",
}


@dataclass(frozen=True)
class Context:
    """What a move may look at: the stack's knobs, the host, the diagnosis document."""

    settings: Mapping[str, Any]
    cores: int
    diagnosis: Mapping[str, Any]

    def auth_workers(self) -> int:
        """Workers the token service runs (its default is 2 x CPU)."""
        workers = self.settings.get("auth_workers")
        return int(workers) if workers else 2 * self.cores

    def worker_class(self) -> str:
        return str(self.settings.get("auth_worker_class") or "gevent")

    def authn_cache(self) -> dict[str, float]:
        """Credential-cache results seen by the token service (``off``, ``miss``, ``hit``...)."""
        token = (self.diagnosis.get("signals") or {}).get("token_service") or {}
        raw = token.get("authn_cache") or {}
        out: dict[str, float] = {}
        for key, value in raw.items():
            out[str(key)] = float(value.get("count") or 0) if isinstance(value, Mapping) else 0.0
        return out


@dataclass(frozen=True)
class Move:
    name: str
    answers: tuple[str, ...]
    """Finding tiers this move answers, its main answer first."""
    why: str
    propose: Callable[[Context, str], dict[str, Any] | None] = field(repr=False)
    """(context, the finding tier) -> knob changes, or None when it does not apply."""


@dataclass(frozen=True)
class Proposal:
    move: Move
    tier: str
    """The finding tier it answers."""
    changes: dict[str, Any]
    before: dict[str, Any]
    """The knobs' values before, to revert."""

    @property
    def diff(self) -> str:
        """``knob: before -> after`` for each knob changed."""
        return ", ".join(
            f"{k}: {_show(k, self.before.get(k))} -> {_show(k, v)}" for k, v in self.changes.items()
        )

    @property
    def text(self) -> str:
        return f"{self.move.name} ({self.diff})"


def _show(knob: str, value: Any) -> str:
    if knob == "redis_url":
        return "own Redis" if not value else str(redact_redis_url(str(value)))
    if value is None:
        return "default"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _cache_on(ctx: Context, tier: str) -> dict[str, Any] | None:
    if ctx.settings.get("credential_cache", True):
        return None
    return {"credential_cache": True}


def _gevent(ctx: Context, tier: str) -> dict[str, Any] | None:
    if ctx.worker_class() == "gevent":
        return None
    return {"auth_worker_class": "gevent"}


def _more_workers(ctx: Context, tier: str) -> dict[str, Any] | None:
    # CPU-bound workers gain from more only up to one per CPU; waiting ones up to 2 x CPU
    want = ctx.cores if tier == "token_cpu" else 2 * ctx.cores
    if ctx.auth_workers() >= want:
        return None
    return {"auth_workers": want}


def _proxy_connections(ctx: Context, tier: str) -> dict[str, Any] | None:
    current = int(ctx.settings.get("proxy_connections") or DEFAULT_PROXY_CONNECTIONS)
    if current >= DEFAULT_PROXY_CONNECTIONS:
        return None
    return {"proxy_connections": DEFAULT_PROXY_CONNECTIONS}


def _own_redis(ctx: Context, tier: str) -> dict[str, Any] | None:
    # placement, not on/off: a stack without Redis stays without (FORBIDDEN "redis")
    if not ctx.settings.get("redis_url"):
        return None
    return {"redis_url": None}


def _proxy_workers(ctx: Context, tier: str) -> dict[str, Any] | None:
    workers = ctx.settings.get("proxy_workers")
    if workers is None or int(workers) >= ctx.cores:
        return None
    return {"proxy_workers": None}


MOVES: tuple[Move, ...] = (
    Move(
        "credential cache on",
        ("token_cpu", "token_workers"),
        "bcrypt ran on every token request; with the cache a verified password is hashed "
        "once per TTL (the hash itself stays as strong)",
        _cache_on,
    ),
    Move(
        "gevent workers",
        ("token_workers", "token_cpu"),
        "a sync or one-thread worker serves one request at a time; gevent serves many that wait",
        _gevent,
    ),
    Move(
        "more token-service workers",
        ("token_workers", "token_cpu"),
        "every worker slot was taken; more workers (up to 2 x CPU, or 1 x CPU when CPU-bound)",
        _more_workers,
    ),
    Move(
        "nginx worker_connections",
        ("proxy",),
        "nginx ran out of connections (each proxied request holds two)",
        _proxy_connections,
    ),
    Move(
        "nginx workers: one per CPU",
        ("proxy",),
        "fewer nginx workers than CPUs",
        _proxy_workers,
    ),
    Move(
        "own Redis",
        ("redis",),
        "the stack used a Redis it shares with others (the field report's staging service on "
        "the production Redis); its own redis-server serves only the registry and the token "
        "service",
        _own_redis,
    ),
)

NO_KNOB = {
    "redis": "Redis is the limit and already the stack's own: tune has no knob for it (find "
    "the slow command with SLOWLOG GET; give Redis a CPU of its own)",
    "registry": "the registry is the limit: tune has no knob for it (more CPUs for it, or more "
    "registry replicas behind the proxy)",
    "storage": "the registry's storage is the limit: tune has no knob for it (faster disks or "
    "object store, or the blob-descriptor cache)",
}
"""Verdicts no move answers on this stack: what tune says instead of a change."""


def _finding_tiers(diagnosis: Mapping[str, Any]) -> list[str]:
    """The verdict's tier, then the other findings' tiers, strongest first."""
    verdict = diagnosis.get("verdict") or {}
    tiers = [str(verdict.get("tier", ""))]
    findings = sorted(verdict.get("findings") or [], key=lambda f: -float(f.get("score", 0)))
    for f in findings:
        if float(f.get("score", 0)) >= 0.5 and f.get("tier") not in tiers:
            tiers.append(str(f["tier"]))
    return [t for t in tiers if t]


def _for(tier: str) -> list[Move]:
    """The moves answering ``tier``, those naming it first (their main answer) first:
    the cache for hashing workers, more or non-blocking workers for full ones."""
    found = [m for m in MOVES if tier in m.answers]
    return sorted(found, key=lambda m: m.answers.index(tier))


def untunable(ctx: Context) -> str | None:
    """Why tune cannot answer the verdict at all (no move applies to this stack, tried or
    not), or None when it can, or could."""
    tier = str((ctx.diagnosis.get("verdict") or {}).get("tier", ""))
    if any(move.propose(ctx, tier) for move in _for(tier)):
        return None
    return NO_KNOB.get(tier)


def recommend(ctx: Context, tried: Sequence[Proposal] = ()) -> Proposal | None:
    """The first move that answers the strongest finding and was not tried already."""
    seen = {(p.move.name, tuple(sorted(p.changes.items()))) for p in tried}
    for tier in _finding_tiers(ctx.diagnosis):
        for move in _for(tier):
            changes = move.propose(ctx, tier)
            if not changes or (move.name, tuple(sorted(changes.items()))) in seen:
                continue
            before = {k: ctx.settings.get(k) for k in changes}
            return Proposal(move, tier, changes, before)
    return None
