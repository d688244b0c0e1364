"""Identity backends ("authn") and the contract every one of them answers.

The contract, after docker_auth: ``authenticate(name, password)`` answers *match* (an
:class:`Account`: user, labels and a *revision*), ``"wrong_password"`` or ``"no_match"``;
it raises :class:`~keelhaul.errors.BackendError` only when the backend could not decide
(a directory that does not answer). ``lookup(name)`` is the cheap half: the same account
without verifying anything, answered from memory (htpasswd, static, robots) or from a
short-lived copy of the directory's answer (LDAP).

The *revision* is what changes when the user's credentials change: the stored hash
(htpasswd), a hash of the config entry (static), the entry's DN and modification stamps
(LDAP), the secret's id (robots). The credential cache key and the refresh-token binding
are derived from it, so a password change or a removal revokes both at once; and because
``lookup`` yields it without verifying, a cached login never pays for a verification.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import bcrypt

_COST = re.compile(rb"\$2[aby]\$(\d\d)\$")
BCRYPT_MAX = 72  # bcrypt reads at most 72 bytes; htpasswd and Go's bcrypt agree

__all__ = [
    "BCRYPT_MAX",
    "Account",
    "Backend",
    "Events",
    "Labels",
    "Limit",
    "Outcome",
    "Refusal",
    "bcrypt_cost",
    "check_bcrypt",
    "labels_of",
    "looks_like_jwt",
]

Labels = Mapping[str, tuple[str, ...]]
Refusal = Literal["wrong_password", "no_match"]


class Limit(Protocol):
    """What an account may be granted at most, whatever the ACL says (an :class:`Acl`)."""

    def grant(self, principal: Any, requested: Sequence[Any]) -> list[Any]: ...


@dataclass(frozen=True, slots=True)
class Account:
    """A user a backend knows: what the ACL sees (name, labels) and the credentials' revision.

    ``limit`` (robots) is intersected with the ACL's grant: a robot gets what both allow.
    """

    name: str
    revision: bytes = field(repr=False)
    labels: Labels = field(default_factory=dict)
    backend: str = ""
    limit: Limit | None = field(default=None, repr=False)
    by_token: bool = False  # vouched for by a bearer token (OIDC), not by name + password
    details: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Who it was beyond the name, for the audit line: a CI job's claims (run, ref, sha)."""


Outcome = Account | Refusal


class Events:
    """What happened inside a backend, counted until the metrics take it (:meth:`drain`):
    directory searches, binds, timeouts, JWKS fetches, file reloads. The backend only counts;
    the app turns the counts into ``keelhaul_authn_backend_events_total``."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def note(self, event: str) -> None:
        with self._lock:
            self._counts[event] += 1

    def drain(self) -> dict[str, int]:
        if not self._counts:  # the common case, without the lock
            return {}
        with self._lock:
            counts, self._counts = dict(self._counts), Counter()
        return counts


class Backend(Protocol):
    name: str
    kind: str
    """The record in ``registry.KINDS`` it was built from (metrics label it so)."""
    events: Events
    throttled: bool
    """False for accounts whose secrets are random (robots): never throttled by others' failures."""
    by_token: bool
    """True when the password is a token that names the account (OIDC); the name is ignored."""

    def lookup(self, username: str) -> Account | None:
        """The account without verifying a password; cheap (memory or a short-TTL copy)."""
        ...

    def authenticate(self, username: str, password: str) -> Outcome:
        """Verify: match, wrong password or no match; raise BackendError if undecidable."""
        ...

    def health(self) -> tuple[bool, str]:
        """(usable, short reason) for /healthz."""
        ...

    def typical_cost(self) -> int | None:
        """The bcrypt cost of the stored hashes (for the unknown-user dummy check), if any."""
        ...

    def close(self) -> None:
        """Release connections (the app's shutdown)."""
        ...


_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")


def looks_like_jwt(password: str) -> bool:
    """A compact JWS (an identity token given as the password)."""
    return _JWT.fullmatch(password) is not None


def bcrypt_cost(hashed: bytes) -> int | None:
    m = _COST.match(hashed)
    return int(m.group(1)) if m else None


def check_bcrypt(password: str, hashed: bytes) -> bool:
    return bcrypt.checkpw(password.encode("utf-8")[:BCRYPT_MAX], hashed)


def labels_of(*sources: Mapping[str, list[str]] | Mapping[str, tuple[str, ...]]) -> Labels:
    """Merge label maps, later sources winning per key, as tuples."""
    merged: dict[str, tuple[str, ...]] = {}
    for source in sources:
        merged.update({k: tuple(v) for k, v in source.items()})
    return merged
