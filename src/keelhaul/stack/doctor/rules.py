"""The doctor's rules: one function each, from a :class:`Snapshot` to findings. Pure.

Where the issue leaves room, the rules decide as follows (docs/architecture.md repeats it):

* **Redis**: tiers must use the same *instance* (host and port); different databases on
  one instance are expected (registry db 0, token service db 1) and only shown. The
  reference instance is the local stack's Redis when there is one, else the one
  most tiers use; with a tie every tier is named. A local stack on a Redis it does not
  run (``--redis-url``) is a warning: others' commands queue with its own.
* **Storage**: every registry config given must name the same driver and place.
* **Clock skew**: what breaks is the token service's clock against the registry's
  (tokens are checked with 60 s of leeway), so the two offsets are compared; an offset
  that could not be measured is a note, never a finding.
* **Workers**: against the CPU count of this host for the local stack, of ``--cpus`` for
  config files; unknown cores are a note.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

from keelhaul.stack.doctor.capacity import credential_cache, proxy, workers
from keelhaul.stack.doctor.model import Finding, RedisRef, Snapshot, tier_label
from keelhaul.stack.doctor.trust import (
    auth_config_problems,
    is_loopback,
    keys_in_bundle,
    realm_reachable,
    token_agreement,
    trusting,
)

__all__ = ["LEEWAY", "RULES", "check", "is_loopback", "trusting"]

LEEWAY = 60
"""Seconds of clock skew distribution's token check tolerates (``registry/auth/token``)."""

Rule = Callable[[Snapshot], Iterator[Finding]]


def _redis_users(snap: Snapshot) -> list[tuple[str, str, RedisRef]]:
    users = []
    for r in snap.registries:
        if r.redis is not None:
            users.append(
                (tier_label("registry", r.source, len(snap.registries)), r.source, r.redis)
            )
    for a in snap.auths:
        if a.redis is not None:
            users.append(
                (tier_label("token service", a.source, len(snap.auths)), a.source, a.redis)
            )
    return users


def redis_agreement(snap: Snapshot) -> Iterator[Finding]:
    users = _redis_users(snap)
    if not users:
        return
    reference = snap.stack_redis.instance if snap.stack_redis is not None else None
    if reference is None:
        counts = Counter(ref.instance for _, _, ref in users).most_common()
        if len(counts) > 1 and counts[0][1] == counts[1][1]:
            listed = "; ".join(f"{tier}: {ref}" for tier, _, ref in users)
            yield Finding(
                "redis-mismatch", "error", "stack",
                f"the tiers use different Redis instances ({listed})",
                "point every tier at the stack's one Redis instance (different databases "
                "on it are fine)",
            )  # fmt: skip
            return
        reference = counts[0][0]
    for tier, source, ref in users:
        if ref.instance != reference:
            key = "redis.addr" if tier.startswith("registry") else "cache.redis_url"
            yield Finding(
                "redis-mismatch", "error", tier.split(" (")[0],
                f"the {tier} uses Redis {ref.instance} but the rest of the stack uses "
                f"{reference}: caches and throttles split (or reach another environment)",
                f"set {key} in {source} to {reference} (keep db {ref.db})",
            )  # fmt: skip


def redis_placement(snap: Snapshot) -> Iterator[Finding]:
    if snap.stack_redis is None or not snap.stack_redis_external:
        return
    yield Finding(
        "redis-external", "warning", "redis",
        f"the stack uses a Redis it does not run ({snap.stack_redis}): whatever else uses "
        "that instance (another environment, a slow script) delays every blob lookup and "
        "token request (the field report's staging service on the production Redis)",
        "give the stack its own Redis: keelhaul stack up without --redis-url (or keelhaul "
        "tune's 'own Redis' move)",
    )  # fmt: skip


def storage_agreement(snap: Snapshot) -> Iterator[Finding]:
    places = Counter(r.storage for r in snap.registries)
    if len(places) < 2:
        return
    (reference, _), *_ = places.most_common()
    for r in snap.registries:
        if r.storage != reference:
            yield Finding(
                "storage-mismatch", "error", "registry",
                f"{r.source} stores blobs in {r.storage[0]} {r.storage[1]}, the other "
                f"registries in {reference[0]} {reference[1]}: pushes land in one, pulls "
                "miss in the other",
                f"make the storage section of {r.source} name {reference[0]} {reference[1]}",
            )  # fmt: skip


# ------------------------------------------------------------------ workers, proxy


def clocks(snap: Snapshot) -> Iterator[Finding]:
    offsets = {c.tier: c.offset for c in snap.clocks if c.offset is not None}
    registry, auth = offsets.get("registry"), offsets.get("auth")
    if registry is not None and auth is not None and abs(auth - registry) > LEEWAY:
        yield Finding(
            "clock-skew", "error", "stack",
            f"the token service's clock is {auth - registry:+.0f} s off the registry's "
            f"(registry {registry:+.0f} s, token service {auth:+.0f} s against this host); "
            f"the registry tolerates {LEEWAY} s, so fresh tokens are refused",
            "run NTP (chrony, systemd-timesyncd) on every host of the stack",
        )  # fmt: skip


RULES: tuple[Rule, ...] = (
    auth_config_problems,
    token_agreement,
    keys_in_bundle,
    realm_reachable,
    redis_agreement,
    redis_placement,
    storage_agreement,
    workers,
    credential_cache,
    proxy,
    clocks,
)


def check(snap: Snapshot) -> list[Finding]:
    return [finding for rule in RULES for finding in rule(snap)]
