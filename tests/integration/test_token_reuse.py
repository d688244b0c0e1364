"""Reuse of an already-signed token (off by default): only for the same account, access and
key, only within the window, with what is left of its lifetime; every request is still
authenticated and authorized, so a wrong password gets nothing."""

from __future__ import annotations

import pytest

from keelhaul.auth.service import Progress, TokenRequest, TokenService
from keelhaul.auth.wiring import build
from keelhaul.errors import Unauthorized

pytestmark = pytest.mark.integration

PULL = ("repository:alice/app:pull",)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _service(auth_env, reuse: float) -> tuple[TokenService, Clock]:  # type: ignore[no-untyped-def]
    settings = auth_env.settings()
    parts = build(settings)
    base = parts.service
    clock = Clock()
    service = TokenService(
        settings,
        authenticator=base.authenticator,
        acl=base.acl,
        keys=base.keys,
        refresh=base.refresh,
        clock=clock,
        reuse_seconds=reuse,
    )
    return service, clock


def _ask(service: TokenService, user: str, password: str, scopes=PULL) -> tuple[dict, Progress]:  # type: ignore[no-untyped-def,type-arg]
    progress = Progress()
    req = TokenRequest(
        "basic", "test-registry", scopes, "127.0.0.1", username=user, password=password
    )
    return service.issue(req, progress).body, progress


def test_reuse_within_the_window_with_the_remaining_lifetime(auth_env) -> None:  # type: ignore[no-untyped-def]
    service, clock = _service(auth_env, reuse=5)
    first, p1 = _ask(service, "alice", "alice-pw")
    clock.now += 3
    again, p2 = _ask(service, "alice", "alice-pw")
    assert not p1.reused and p2.reused
    assert again["token"] == first["token"] and again["issued_at"] == first["issued_at"]
    assert again["expires_in"] == first["expires_in"] - 3
    other, p3 = _ask(service, "alice", "alice-pw", ("repository:alice/app:pull,push",))
    assert not p3.reused and other["token"] != first["token"]
    clock.now += 3  # 6 s after signing: past the window
    late, p4 = _ask(service, "alice", "alice-pw")
    assert not p4.reused and late["token"] != first["token"]


def test_every_request_is_still_authenticated(auth_env) -> None:  # type: ignore[no-untyped-def]
    service, _ = _service(auth_env, reuse=5)
    _ask(service, "alice", "alice-pw")
    with pytest.raises(Unauthorized):
        _ask(service, "alice", "wrong")  # a reusable token exists; the password is checked
    denied, p = _ask(service, "reader", "reader-pw", ("repository:alice/app:push",))
    assert not p.reused and denied["token"]  # another account: its own token, its own grant


def test_off_by_default_and_the_window_is_capped(auth_env) -> None:  # type: ignore[no-untyped-def]
    service, _ = _service(auth_env, reuse=0)
    first, _ = _ask(service, "alice", "alice-pw")
    again, p = _ask(service, "alice", "alice-pw")
    assert not p.reused and again["token"] != first["token"]
    capped, clock = _service(auth_env, reuse=3600)
    _ask(capped, "alice", "alice-pw")
    clock.now += 11  # the cap: 10 s (and a 30th of the 300 s lifetime)
    assert not _ask(capped, "alice", "alice-pw")[1].reused
