"""What a stack will look like before anything starts: ports, URLs, names. Pure data.

The renderers (:mod:`.registry`, :mod:`.authconf`) and the component list
(:mod:`.components`) all read one :class:`StackPlan`, so a URL is spelled in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from keelhaul.stack.layout import StackLayout
from keelhaul.stack.settings import COMPONENTS, StackSettings

__all__ = ["HOST", "ISSUER", "SERVICE", "USERS", "StackPlan", "choose_ports"]

HOST = "127.0.0.1"
SERVICE = "keelhaul-registry"
ISSUER = "keelhaul-auth"
USERS: tuple[str, ...] = ("admin", "reader")

REDIS_DB_REGISTRY = 0
REDIS_DB_AUTH = 1


def choose_ports(settings: StackSettings, pick: Callable[[], int]) -> dict[str, int]:
    """Forced ports from the settings, the rest from ``pick`` (never two equal ones)."""
    wanted = [c for c in COMPONENTS if settings.redis or c != "redis"]
    ports: dict[str, int] = {c: p for c, p in settings.ports.items() if c in wanted}
    taken = set(ports.values())
    for component in wanted:
        if component in ports:
            continue
        for _ in range(100):
            port = pick()
            if port not in taken:
                break
        else:  # pragma: no cover - the OS hands out distinct ephemeral ports
            raise RuntimeError("could not find distinct free ports")
        ports[component] = port
        taken.add(port)
    return ports


@dataclass(frozen=True)
class StackPlan:
    layout: StackLayout
    settings: StackSettings
    ports: Mapping[str, int] = field(default_factory=dict)
    host: str = HOST
    service: str = SERVICE
    issuer: str = ISSUER

    def addr(self, component: str) -> str:
        return f"{self.host}:{self.ports[component]}"

    def url(self, component: str) -> str:
        if component == "redis":
            return f"redis://{self.addr('redis')}"
        return f"http://{self.addr(component)}"

    @property
    def registry_url(self) -> str:
        return self.url("registry")

    @property
    def token_url(self) -> str:
        return f"{self.url('auth')}/token"

    def redis_url(self, db: int = REDIS_DB_REGISTRY) -> str | None:
        return f"{self.url('redis')}/{db}" if self.settings.redis else None

    def urls(self) -> dict[str, str]:
        return {component: self.url(component) for component in self.ports}
