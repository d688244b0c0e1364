"""``DIR/stack.json``: everything a client, a test or ``stack down`` needs to know.

Written atomically (temporary file + rename) and created with mode 0600 from the start,
because it holds the users' passwords.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_serializer

from keelhaul.atomicfile import write_text
from keelhaul.errors import StackError
from keelhaul.stack.redisurl import redact_redis_url

__all__ = [
    "STATE_VERSION",
    "ComponentIdentity",
    "StackState",
    "now_iso",
    "read_state",
    "write_state",
]

STATE_VERSION = 1
Status = Literal["starting", "running", "stopped", "failed"]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ComponentIdentity(BaseModel):
    """How ``stack down`` recognises a pid as still being this component."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    starttime: int | None = None
    match: list[str] = Field(default_factory=list)
    group_match: list[str] = Field(default_factory=list)


class StackState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    version: int = STATE_VERSION
    status: Status = "starting"
    dir: str
    started_at: str
    stopped_at: str | None = None
    registry: str
    """The registry itself (behind the proxy)."""
    token_url: str
    """The token service itself (behind the proxy)."""
    service: str
    issuer: str
    redis_url: str | None
    entry: str | None = None
    """The proxy: the one address clients use (``docker login``, skopeo, the load kit)."""
    realm: str | None = None
    """The token realm the registry announces: ``<entry>/token``."""
    ca_cert: str | None = None
    """With ``--tls``: the CA clients must trust (``skopeo --cert-dir``)."""
    access_log: str | None = None
    """nginx's JSON access log (one line per request, upstream timings): for the diagnosis."""
    prometheus: str | None = None
    """With ``--monitoring``: the stack's Prometheus (``http://127.0.0.1:<port>``), which
    scrapes every tier each second (jobs nginx, auth, registry, redis, node, process)."""
    users: dict[str, SecretStr] = Field(default_factory=dict)
    pids: dict[str, int] = Field(default_factory=dict)
    identities: dict[str, ComponentIdentity] = Field(default_factory=dict)
    logs: dict[str, str] = Field(default_factory=dict)
    ports: dict[str, int] = Field(default_factory=dict)
    urls: dict[str, str] = Field(default_factory=dict)
    config: dict[str, str] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_serializer("users", when_used="json")
    def _reveal(self, users: dict[str, SecretStr]) -> dict[str, str]:
        return {name: secret.get_secret_value() for name, secret in users.items()}

    def password(self, user: str) -> str:
        return self.users[user].get_secret_value()

    @property
    def external_redis(self) -> bool:
        """The stack uses a Redis it does not run (``settings.redis_url``)."""
        return bool(self.settings.get("redis_url"))

    def public(self) -> dict[str, Any]:
        """Everything but the passwords (user names stay; an external Redis' is ``***``)."""
        data = self.model_dump(mode="json", exclude={"users", "identities"})
        data["users"] = sorted(self.users)
        data["redis_url"] = redact_redis_url(self.redis_url)
        if data["settings"].get("redis_url"):
            data["settings"]["redis_url"] = redact_redis_url(data["settings"]["redis_url"])
        return data


def write_state(path: Path, state: StackState) -> None:
    """0600 from the start (it holds passwords), durable before the rename."""
    write_text(path, state.model_dump_json(indent=2) + "\n", mode=0o600, fsync=True, error=None)


def read_state(path: Path) -> StackState | None:
    """None when there is no ``stack.json``; StackError when it is not one of ours."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StackError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return StackState.model_validate(json.loads(text))
    except (ValueError, ValidationError):
        raise StackError(
            f"{path} is not a keelhaul stack state; remove it or choose another --dir"
        ) from None
