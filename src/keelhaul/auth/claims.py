"""The token's claim set and the token endpoint's JSON body, per the registry token spec.

Pure: the clock reading and the token id are arguments, so a test pins both.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from keelhaul.auth.scopes import Scope

__all__ = ["MIN_EXPIRES_IN", "build_claims", "rfc3339", "token_response"]

MIN_EXPIRES_IN = 60
"""The spec: a client assumes 60 seconds when ``expires_in`` is missing or lower."""


def build_claims(
    *,
    issuer: str,
    audience: str,
    subject: str,
    access: Sequence[Scope],
    now: int,
    ttl: int,
    jwt_id: str,
    not_before_skew: int = 0,
) -> dict[str, object]:
    """The JWT payload; ``subject`` is "" for anonymous, ``access`` the granted scopes.

    ``not_before_skew`` back-dates ``nbf`` so a registry whose clock runs a little behind
    still accepts a fresh token.
    """
    return {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "exp": now + ttl,
        "nbf": now - not_before_skew,
        "iat": now,
        "jti": jwt_id,
        "access": [scope.to_access() for scope in access],
    }


def rfc3339(moment: datetime) -> str:
    """``2024-05-01T12:00:00Z``: UTC, whole seconds. A naive datetime is refused."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("issued_at must be timezone-aware (e.g. datetime.now(UTC))")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def token_response(
    *,
    token: str,
    ttl: int,
    issued_at: datetime,
    refresh_token: str | None = None,
    scope: str | None = None,
) -> dict[str, object]:
    """The token endpoint's body; ``token`` and ``access_token`` both, for old and new clients."""
    body: dict[str, object] = {
        "token": token,
        "access_token": token,
        "expires_in": max(ttl, MIN_EXPIRES_IN),
        "issued_at": rfc3339(issued_at),
    }
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    if scope is not None:
        body["scope"] = scope
    return body
