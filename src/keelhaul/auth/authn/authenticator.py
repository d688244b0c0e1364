"""Verification across the configured backends, behind the credential cache."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import bcrypt

from keelhaul.auth.authn import BCRYPT_MAX, Account, Backend, looks_like_jwt
from keelhaul.auth.credcache import CredentialCache
from keelhaul.auth.throttle import Throttle
from keelhaul.errors import BackendError, TooManyRequests, Unauthorized

__all__ = ["Authenticator", "AuthnResult", "AuthnTrace", "CacheResult", "TraceResult"]

CacheResult = Literal["local", "redis", "miss", "off"]
TraceResult = Literal[
    "", "cached", "match", "wrong_password", "no_match", "rejected", "throttled", "error"
]


@dataclass(slots=True)
class AuthnTrace:
    """Which backend a login reached and how it ended, for the per-backend metrics.

    Filled as the login goes, so one that fails (401, 429, 503) still says where: ``backend``
    is the backend's name ("" when none knew the user), ``result`` one of
    :data:`TraceResult` (``cached``: the credential cache answered, nothing was verified;
    ``rejected``: an identity token refused; ``error``: the backend could not decide), and
    ``seconds`` the whole authentication, lookups, cache and verification included.
    """

    backend: str = ""
    result: TraceResult = ""
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class AuthnResult:
    user: Account
    cache: CacheResult


class Authenticator:
    """Backends in order: the first that knows the user decides (match or wrong password).

    Order of work, cheapest first: the backends' ``lookup`` (memory, or a short-lived copy
    of a directory's answer) gives the account and its revision; the credential cache,
    keyed by user, password and revision (a hit succeeds at once, even for a throttled key:
    only the right password can hit); then the brute-force throttle (429 before any
    verification); then the backend's own ``authenticate`` (bcrypt, an LDAP bind). An
    unknown user costs one bcrypt check against a dummy hash of the configured cost, so
    that response time does not tell which accounts exist.
    """

    def __init__(
        self,
        backends: Sequence[Backend],
        cache: CredentialCache | None,
        *,
        throttle: Throttle | None = None,
        dummy_cost: int = 10,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._timer = timer
        self._backends = tuple(b for b in backends if not b.by_token)
        self._token_backends = tuple(b for b in backends if b.by_token)
        self._cache = cache
        self._throttle = throttle
        self._dummy = bcrypt.hashpw(b"keelhaul-dummy-password", bcrypt.gensalt(rounds=dummy_cost))

    @property
    def backends(self) -> tuple[Backend, ...]:
        return self._backends + self._token_backends

    def _owner(
        self, username: str, trace: AuthnTrace | None = None
    ) -> tuple[Backend, Account] | None:
        for backend in self._backends:
            if trace is not None:
                trace.backend = backend.name  # a lookup that raises is that backend's error
            account = backend.lookup(username)
            if account is not None:
                return backend, account
        if trace is not None:
            trace.backend = ""
        return None

    def find(self, username: str) -> Account | None:
        """The account as its backend knows it now (refresh tokens check its revision)."""
        owner = self._owner(username)
        return owner[1] if owner is not None else None

    def _refuse(self, username: str, client_ip: str, backend: Backend | None) -> Unauthorized:
        if self._throttle is not None and (backend is None or backend.throttled):
            self._throttle.failed(username, client_ip)
        return Unauthorized("authentication failed: wrong username or password")

    def _by_token(self, username: str, password: str, trace: AuthnTrace) -> Account:
        """An identity token as the password: the issuer it names verifies it (no cache,
        no throttle: a signature check is cheap and a token cannot be guessed)."""
        for backend in self._token_backends:
            trace.backend = backend.name
            try:
                outcome = backend.authenticate(username, password)
            except Unauthorized:
                trace.result = "rejected"
                raise
            if isinstance(outcome, Account):
                trace.result = "match"
                return outcome
            if outcome == "wrong_password":
                break
        trace.backend, trace.result = "", "rejected"
        raise Unauthorized("identity token refused: issuer not trusted")

    def authenticate(
        self,
        username: str,
        password: str,
        client_ip: str = "",
        trace: AuthnTrace | None = None,
    ) -> AuthnResult:
        t = trace if trace is not None else AuthnTrace()
        started = self._timer()
        try:
            return self._authenticate(username, password, client_ip, t)
        except BackendError:
            t.result = "error"
            raise
        finally:
            t.seconds = self._timer() - started

    def _authenticate(
        self, username: str, password: str, client_ip: str, t: AuthnTrace
    ) -> AuthnResult:
        if self._token_backends and looks_like_jwt(password):
            return AuthnResult(self._by_token(username, password, t), "off")
        owner = self._owner(username, t)
        backend = owner[0] if owner is not None else None
        # the throttle counts the account, not the spelling (an LDAP "Alice" is alice)
        account = owner[1].name if owner is not None else username
        if owner is not None and self._cache is not None:
            hit = self._cache.lookup(self._cache.key(username, password, owner[1].revision))
            if hit is not None:
                t.result = "cached"
                return AuthnResult(owner[1], hit)
        if self._throttle is not None and (backend is None or backend.throttled):
            wait = self._throttle.retry_after(account, client_ip)
            if wait > 0:
                t.result = "throttled"
                raise TooManyRequests(
                    "too many failed logins for this account from this address; retry later",
                    retry_after=math.ceil(wait),
                )
        if backend is None:
            bcrypt.checkpw(password.encode("utf-8")[:BCRYPT_MAX], self._dummy)
            t.result = "no_match"
            raise self._refuse(username, client_ip, None)
        outcome = backend.authenticate(username, password)
        if not isinstance(outcome, Account):
            t.result = outcome
            raise self._refuse(account, client_ip, backend)
        t.result = "match"
        if self._cache is None:
            return AuthnResult(outcome, "off")
        # the revision the verification saw: a change between lookup and bind is not cached stale
        self._cache.remember(self._cache.key(username, password, outcome.revision))
        return AuthnResult(outcome, "miss")
