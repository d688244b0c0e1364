"""One token request, start to finish: parse, authenticate, authorize, sign.

No HTTP here: :mod:`keelhaul.auth.app` turns a Flask request into a :class:`TokenRequest`
and an :class:`Issued` (or a :class:`~keelhaul.errors.RequestError`) back into a response.
Clock, ids and the stage timer are injected so the whole flow runs in unit tests.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from keelhaul.auth.acl import Acl, Principal
from keelhaul.auth.authn.authenticator import Authenticator, AuthnTrace, CacheResult
from keelhaul.auth.claims import build_claims, token_response
from keelhaul.auth.refresh import RefreshTokens
from keelhaul.auth.scopes import Scope, parse_scopes
from keelhaul.auth.settings import AuthSettings, reuse_limit
from keelhaul.auth.signing import KeyRing
from keelhaul.errors import BadRequest, Unauthorized

__all__ = ["Grant", "Issued", "Progress", "TokenRequest", "TokenService"]

Grant = Literal["anonymous", "basic", "password", "refresh_token"]
Stage = Literal["parse", "authn", "authz", "sign"]


@dataclass(frozen=True, slots=True)
class TokenRequest:
    grant: Grant
    service: str | None
    scopes: tuple[str, ...] = ()
    client_ip: str = ""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    offline: bool = False
    client_id: str | None = None
    account: str | None = None


@dataclass(slots=True)
class Issued:
    body: dict[str, object]
    account: str
    requested: list[Scope]
    granted: list[Scope]
    cache: CacheResult | None
    stages: dict[Stage, float]


@dataclass(slots=True)
class Progress:
    """What is known so far; the app reads it for the audit line when a stage fails."""

    account: str = ""
    backend: str = ""  # which identity backend vouched (htpasswd, ldap, robots, ...)
    requested: list[Scope] = field(default_factory=list)
    cache: CacheResult | None = None
    stages: dict[Stage, float] = field(default_factory=dict)
    reused: bool = False
    """The answer carries a token signed moments ago for the same account and access."""
    identity: Mapping[str, str] | None = None
    """The account's details for the audit line (a CI job's claims), when it has any."""
    authn: AuthnTrace = field(default_factory=AuthnTrace)
    """Which backend a password login reached and how it ended (per-backend metrics)."""


_MAX_SIGNED = 4096


@functools.lru_cache(maxsize=4096)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client address, parsed once per address (clients come back); None if junk."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _scope_param(granted: list[Scope]) -> str:
    """The OAuth2 ``scope`` response field: what was actually granted, nothing denied."""
    return " ".join(str(s) for s in granted if s.actions)


class TokenService:
    def __init__(
        self,
        settings: AuthSettings,
        *,
        authenticator: Authenticator,
        acl: Acl,
        keys: KeyRing,
        refresh: RefreshTokens,
        clock: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.perf_counter,
        new_id: Callable[[], str] = lambda: os.urandom(16).hex(),
        reuse_seconds: float | None = None,
    ) -> None:
        self.settings = settings
        self.authenticator = authenticator
        self.acl = acl
        self.keys = keys
        self.refresh = refresh
        self._clock = clock
        self._timer = timer
        self._new_id = new_id
        # reuse of a signed token (token.reuse_seconds unless given): at most 10 s and a
        # 30th of the lifetime (see _signed_token)
        wanted = settings.token.reuse_seconds if reuse_seconds is None else reuse_seconds
        self._reuse_seconds = max(0.0, min(wanted, reuse_limit(settings.token.expiration)))
        self._signed: dict[tuple[object, ...], tuple[str, int]] = {}

    def _signed_token(
        self, subject: str, revision: bytes, granted: list[Scope], now: float, p: Progress
    ) -> tuple[str, int]:
        """A signed token for ``subject`` and ``granted``, and when it was issued.

        With ``reuse_seconds`` > 0 (``token.reuse_seconds``), a token signed for the same
        account at the same credentials' revision, the same granted access and the same
        signing key at most that long ago is handed out again instead of signing anew. The
        rule that keeps this safe: every request is still authenticated (throttle
        included), authorized and audited, so a removed user, an old password or a lost
        grant gets nothing; a changed password (a new revision) gets a newly signed token;
        only the signature is shared. The window is at most 10 s, a 30th of the lifetime
        and what keeps 60 s left (``reuse_limit``); the answer's ``expires_in`` is what is
        left (so a client never holds a token longer than it is valid, and gets at least
        29/30 of the lifetime it expects) and ``issued_at`` is the token's own. Off by
        default.
        """
        tok = self.settings.token
        reusable = self._reuse_seconds > 0
        key = (self.keys.signer.kid, subject, revision, tuple(granted)) if reusable else None
        if key is not None:
            known = self._signed.get(key)
            if known is not None and 0 <= now - known[1] <= self._reuse_seconds:
                p.reused = True
                return known
        claims = build_claims(
            issuer=tok.issuer,
            audience=tok.service,
            subject=subject,
            access=granted,
            now=int(now),
            ttl=tok.expiration,
            jwt_id=self._new_id(),
        )
        signed = (self.keys.sign(claims), int(now))
        if key is not None:
            if len(self._signed) >= _MAX_SIGNED:
                self._signed.clear()
            self._signed[key] = signed
        return signed

    def issue(self, req: TokenRequest, progress: Progress | None = None) -> Issued:
        p = progress if progress is not None else Progress()
        tok = self.settings.token
        lim = self.settings.limits
        t0 = self._timer()

        # --- parse
        if not req.service:
            raise BadRequest("the service parameter is required", code="INVALID_REQUEST")
        if req.service != tok.service:
            raise BadRequest(
                "unknown service; this token service issues tokens for another registry",
                code="INVALID_REQUEST",
            )
        p.requested = parse_scopes(
            req.scopes, max_scopes=lim.max_scopes, max_length=lim.max_scope_length
        )
        ip = _address(req.client_ip) if req.client_ip else None
        t1 = self._timer()
        p.stages["parse"] = t1 - t0

        # --- authn
        user = None
        if req.grant in ("basic", "password"):
            if req.username is None or req.password is None:
                raise BadRequest("username and password are required", code="INVALID_REQUEST")
            if (
                len(req.username) > lim.max_username_length
                or len(req.password) > lim.max_password_length
            ):
                raise Unauthorized("authentication failed: wrong username or password")
            p.account = req.username
            result = self.authenticator.authenticate(
                req.username, req.password, req.client_ip, p.authn
            )
            user, p.cache = result.user, result.cache
            p.account = user.name  # an identity token names its own account
        elif req.grant == "refresh_token":
            if not req.refresh_token:
                raise BadRequest("refresh_token is required", code="INVALID_REQUEST")
            user = self.refresh.verify(req.refresh_token, tok.service, self.authenticator.find)
            p.account = user.name
        if (
            req.account
            and user is not None
            and not user.by_token
            and req.account.casefold() != user.name.casefold()  # docker sends what was typed
        ):
            raise BadRequest(
                "account does not match the authenticated user", code="INVALID_REQUEST"
            )
        if user is not None:
            p.backend = user.backend
            p.identity = user.details or None
        principal = Principal(
            account=user.name if user is not None else "",
            labels=user.labels if user is not None else {},
            ip=ip,
            service=req.service or "",
        )
        t2 = self._timer()
        p.stages["authn"] = t2 - t1

        # --- authz
        granted = self.acl.grant(principal, p.requested)
        if user is not None and user.limit is not None:  # a robot: its allow list ∩ the ACL
            granted = user.limit.grant(principal, granted)
        t3 = self._timer()
        p.stages["authz"] = t3 - t2

        # --- sign
        now = self._clock()
        revision = user.revision if user is not None else b""
        token, issued = self._signed_token(principal.account, revision, granted, now, p)
        refresh = None
        # never for an identity token (OIDC): a refresh token would outlive the job's token;
        # docker then keeps the token itself as the password, verified again at each use
        if req.offline and user is not None and not user.by_token:
            refresh = self.refresh.issue(user, tok.service)
        body = token_response(
            token=token,
            ttl=issued + tok.expiration - int(now),  # what is left of its lifetime
            issued_at=datetime.fromtimestamp(issued, UTC),
            refresh_token=refresh,
            scope=_scope_param(granted) if req.grant in ("password", "refresh_token") else None,
        )
        p.stages["sign"] = self._timer() - t3
        return Issued(body, principal.account, p.requested, granted, p.cache, p.stages)
