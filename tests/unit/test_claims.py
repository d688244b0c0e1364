from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from keelhaul.auth.claims import build_claims, rfc3339, token_response
from keelhaul.auth.scopes import Scope

pytestmark = pytest.mark.unit

NOW = 1_700_000_000


def test_claim_set() -> None:
    claims = build_claims(
        issuer="keelhaul",
        audience="registry.local",
        subject="alice",
        access=[
            Scope("repository", "a/b", ("pull", "push")),
            Scope("repository", "p", ("pull",), "plugin"),
            Scope("registry", "catalog", ()),
        ],
        now=NOW,
        ttl=300,
        jwt_id="id-1",
    )
    assert claims == {
        "iss": "keelhaul",
        "sub": "alice",
        "aud": "registry.local",
        "exp": NOW + 300,
        "nbf": NOW,
        "iat": NOW,
        "jti": "id-1",
        "access": [
            {"type": "repository", "name": "a/b", "actions": ["pull", "push"]},
            {"type": "repository", "class": "plugin", "name": "p", "actions": ["pull"]},
            {"type": "registry", "name": "catalog", "actions": []},
        ],
    }


def test_anonymous_subject_skew_and_empty_access() -> None:
    claims = build_claims(
        issuer="i",
        audience="a",
        subject="",
        access=[],
        now=NOW,
        ttl=60,
        jwt_id="j",
        not_before_skew=5,
    )
    assert claims["sub"] == ""
    assert claims["nbf"] == NOW - 5
    assert claims["iat"] == NOW
    assert claims["exp"] == NOW + 60
    assert claims["access"] == []


def test_token_response() -> None:
    issued = datetime.fromtimestamp(NOW, UTC)
    body = token_response(token="t.o.k", ttl=300, issued_at=issued)
    assert body == {
        "token": "t.o.k",
        "access_token": "t.o.k",
        "expires_in": 300,
        "issued_at": "2023-11-14T22:13:20Z",
    }
    full = token_response(
        token="t", ttl=300, issued_at=issued, refresh_token="r", scope="repository:a:pull"
    )
    assert full["refresh_token"] == "r"
    assert full["scope"] == "repository:a:pull"


@pytest.mark.parametrize(("ttl", "expires_in"), [(1, 60), (59, 60), (60, 60), (61, 61), (0, 60)])
def test_expires_in_floor_is_60(ttl: int, expires_in: int) -> None:
    body = token_response(token="t", ttl=ttl, issued_at=datetime.fromtimestamp(NOW, UTC))
    assert body["expires_in"] == expires_in


def test_issued_at_is_utc_with_z_and_whole_seconds() -> None:
    plus2 = timezone(timedelta(hours=2))
    assert rfc3339(datetime(2024, 5, 1, 14, 0, 0, 999_999, tzinfo=plus2)) == "2024-05-01T12:00:00Z"
    assert rfc3339(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2024-01-02T03:04:05Z"


def test_naive_issued_at_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        token_response(token="t", ttl=60, issued_at=datetime(2024, 1, 1))
