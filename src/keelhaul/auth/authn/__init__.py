"""User stores ("authn backends") and the authenticator that consults them in order.

The contract, after docker_auth: a backend's ``lookup(name)`` answers *match* (a
:class:`StoredUser` with its password hash) or *no match* (``None``); it raises
:class:`~keelhaul.errors.BackendError` only when it could not decide. The password check
itself (bcrypt, behind the credential cache) lives in :mod:`.authenticator`, so every
backend gets the cache, the constant-cost miss and the same outcomes: match, wrong
password, no match.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

_COST = re.compile(rb"\$2[aby]\$(\d\d)\$")

__all__ = ["Backend", "StoredUser", "bcrypt_cost"]


@dataclass(frozen=True, slots=True)
class StoredUser:
    name: str
    password_hash: bytes = field(repr=False)
    labels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    backend: str = ""


class Backend(Protocol):
    name: str

    def lookup(self, username: str) -> StoredUser | None: ...

    def health(self) -> tuple[bool, str]:
        """(usable, short reason) for /healthz."""
        ...

    def typical_cost(self) -> int | None:
        """The bcrypt cost of the stored hashes (for the unknown-user dummy check)."""
        ...


def bcrypt_cost(hashed: bytes) -> int | None:
    m = _COST.match(hashed)
    return int(m.group(1)) if m else None
