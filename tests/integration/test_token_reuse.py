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


def _service(auth_env, reuse: float | None, **token: object) -> tuple[TokenService, Clock]:  # type: ignore[no-untyped-def]
    """A service on a clock the test moves; ``reuse`` None: the window from the settings."""
    settings = auth_env.settings(token=token) if token else auth_env.settings()
    base = build(settings).service
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


# --- the token.reuse_seconds setting ---------------------------------------------------


def _configured(auth_env, reuse: float, expiration: int = 300) -> tuple[TokenService, Clock]:  # type: ignore[no-untyped-def]
    """The window from ``token.reuse_seconds``, as the wiring builds the service."""
    return _service(auth_env, None, reuse_seconds=reuse, expiration=expiration)


def test_the_setting_turns_reuse_on_and_off(auth_env) -> None:  # type: ignore[no-untyped-def]
    assert auth_env.settings().token.reuse_seconds == 0
    off, _ = _configured(auth_env, 0)
    _ask(off, "alice", "alice-pw")
    assert not _ask(off, "alice", "alice-pw")[1].reused
    on, _ = _configured(auth_env, 4)
    _ask(on, "alice", "alice-pw")
    assert _ask(on, "alice", "alice-pw")[1].reused
    built = build(auth_env.settings(token={"reuse_seconds": 4})).service
    _ask(built, "alice", "alice-pw")
    assert _ask(built, "alice", "alice-pw")[1].reused  # what `auth serve` runs


def test_remaining_lifetime_never_below_the_bound(auth_env) -> None:  # type: ignore[no-untyped-def]
    service, clock = _configured(auth_env, 3, expiration=90)  # the cap: 90 / 30 = 3 s
    issued, token, reused = int(clock.now), _ask(service, "alice", "alice-pw")[0]["token"], 0
    for _ in range(16):  # quarter seconds across the window and past it
        clock.now += 0.25
        body, p = _ask(service, "alice", "alice-pw")
        if p.reused:
            assert body["token"] == token and clock.now - issued <= 3
            reused += 1
        else:
            assert body["token"] != token and clock.now - issued > 3
            issued, token = int(clock.now), body["token"]
        assert body["expires_in"] == issued + 90 - int(clock.now)  # what is left
        assert body["expires_in"] >= 90 - 3  # 29/30 of the lifetime, at worst
    assert reused >= 12


def test_a_removed_user_and_an_old_password_get_nothing(auth_env) -> None:  # type: ignore[no-untyped-def]
    import time

    service, _ = _configured(auth_env, 5)
    _ask(service, "alice", "alice-pw")
    _ask(service, "reader", "reader-pw")
    auth_env.write_users({"admin": "admin-pw", "reader": "reader-pw", "alice": "alice-new"})
    time.sleep(0.2)  # past the htpasswd reload interval (0.05 s)
    with pytest.raises(Unauthorized):
        _ask(service, "alice", "alice-pw")  # a reusable token exists; the old password fails
    changed, p = _ask(service, "alice", "alice-new")
    assert not p.reused  # a new revision: a newly signed token
    assert _ask(service, "alice", "alice-new")[0]["token"] == changed["token"]
    auth_env.write_users({"admin": "admin-pw", "alice": "alice-new"})
    time.sleep(0.2)
    with pytest.raises(Unauthorized):
        _ask(service, "reader", "reader-pw")  # removed: no reused token either


def test_the_window_is_validated_against_the_lifetime(auth_env) -> None:  # type: ignore[no-untyped-def]
    from keelhaul.errors import ConfigError

    with pytest.raises(ConfigError, match=r"token\.reuse_seconds.*at most 3 s"):
        auth_env.settings(token={"reuse_seconds": 5, "expiration": 90})
    with pytest.raises(ConfigError, match=r"token\.reuse_seconds.*at most 0 s"):
        auth_env.settings(token={"reuse_seconds": 1, "expiration": 60})  # 60 s floor
    assert auth_env.settings(token={"reuse_seconds": 10, "expiration": 300}).token
    with pytest.raises(ConfigError, match=r"token\.reuse_seconds"):
        auth_env.settings(token={"reuse_seconds": 11, "expiration": 3600})
    with pytest.raises(ConfigError, match=r"token\.reuse_seconds"):
        auth_env.settings(token={"reuse_seconds": -1})
