"""Which knobs a running stack can change, and which component each one restarts. Pure.

One record per knob, in one table (``LIVE_KNOBS``): ``Stack.reconfigure`` reads it to know
which component's configuration to render again and restart; ``keelhaul tune`` reads it to
know what it may turn. Knobs that are not here (bcrypt cost, TLS, the ACL, ports, Redis on
or off) need a new ``stack up``; the security ones are never turned by tune at all.

``redis_url`` is Redis' *placement*, not Redis on or off: from an external URL to none,
the stack starts its own ``redis-server`` and points the registry and the token service
at it; back again, those two are pointed at the URL and the own Redis is stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from keelhaul.errors import StackError

__all__ = ["LIVE_KNOBS", "LiveKnob", "components_for"]


@dataclass(frozen=True)
class LiveKnob:
    name: str
    """The ``StackSettings`` field."""
    components: tuple[str, ...]
    """The components whose configurations carry it and which restart to apply it
    (``redis`` there: the stack's own Redis is started or stopped with the knob)."""
    flag: str
    """The ``keelhaul stack up`` option that sets it (for the tuned settings' command line)."""


LIVE_KNOBS: dict[str, LiveKnob] = {
    k.name: k
    for k in (
        LiveKnob("auth_workers", ("auth",), "--auth-workers"),
        LiveKnob("auth_worker_class", ("auth",), "--auth-worker-class"),
        LiveKnob("credential_cache", ("auth",), "--credential-cache"),
        LiveKnob("redis_url", ("redis", "auth", "registry"), "--redis-url"),
        LiveKnob("proxy_workers", ("nginx",), "--proxy-workers"),
        LiveKnob("proxy_connections", ("nginx",), "--proxy-connections"),
    )
}


def components_for(changes: Mapping[str, Any]) -> list[str]:
    """The components to restart, in start order; an unknown or fixed knob is an error."""
    fixed = sorted(set(changes) - set(LIVE_KNOBS))
    if fixed:
        raise StackError(
            f"cannot change {', '.join(fixed)} on a running stack; these can be: "
            f"{', '.join(LIVE_KNOBS)} (others need keelhaul stack up)"
        )
    wanted = {c for name in changes for c in LIVE_KNOBS[name].components}
    return [c for c in ("redis", "auth", "registry", "nginx") if c in wanted]
