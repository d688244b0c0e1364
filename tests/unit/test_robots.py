"""Robot accounts: the file, the allow list ∩ ACL, expiry and revocation, cache included."""

from __future__ import annotations

from pathlib import Path

import pytest

from keelhaul.auth.acl import Acl, Principal
from keelhaul.auth.authn import Account
from keelhaul.auth.authn.authenticator import Authenticator
from keelhaul.auth.authn.robots import (
    RobotAccounts,
    RobotFile,
    new_robot,
    parse_allow,
    parse_duration,
)
from keelhaul.auth.credcache import CredentialCache, LocalCache
from keelhaul.auth.scopes import parse_scope
from keelhaul.auth.settings import AclRule, ThrottleSettings
from keelhaul.auth.throttle import Throttle
from keelhaul.errors import TooManyRequests, Unauthorized

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _create(
    path: Path, name: str, *allow: str, now: float = 0.0, expires: int | None = None
) -> str:
    robot, secret = new_robot(name, allow, now=now, expires_in=expires)
    with RobotFile(path).changing() as robots:
        robots[name] = robot
    return secret


def test_durations_and_allow_specs() -> None:
    assert parse_duration("90d") == 90 * 86400 and parse_duration("12h") == 43200
    for bad in ("90", "0d", "1y", "-1d"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)
    rule = parse_allow("repository:team/*:pull,push")
    assert rule.match.type == "repository" and rule.match.name == "team/*"
    assert rule.actions == ["pull", "push"]
    assert parse_allow("repository:host:5000/x:pull").match.name == "host:5000/x"
    for bad in ("repository:team/*", "team/*:pull", "repository:team/*:", "repository:x:P!"):
        with pytest.raises(ValueError, match="TYPE:NAME-PATTERN"):
            parse_allow(bad)
    with pytest.raises(ValueError, match="robot name"):
        new_robot("Bad Name", ("repository:x:pull",), now=0)


def test_file_keeps_no_secret_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "robots.json"
    secret = _create(path, "ci", "repository:team/*:pull,push")
    text = path.read_text()
    assert secret not in text and secret.startswith("khr_")
    assert path.stat().st_mode & 0o777 == 0o600
    assert list(RobotFile(path).read()) == ["ci"]


def test_login_cache_and_revocation_within_the_reload_interval(tmp_path: Path) -> None:
    path = tmp_path / "robots.json"
    secret = _create(path, "ci", "repository:team/*:pull")
    clock = Clock()
    robots = RobotAccounts(path, reload_interval=1.0, clock=clock)
    cache = CredentialCache(b"k" * 32, ttl=3600, local=LocalCache(100, clock=clock))
    authn = Authenticator([robots], cache, dummy_cost=4)
    assert authn.authenticate("ci", secret).cache == "miss"
    assert authn.authenticate("ci", secret).cache == "local"
    with pytest.raises(Unauthorized):
        authn.authenticate("ci", secret + "x")
    with RobotFile(path).changing() as all_robots:
        del all_robots["ci"]
    clock.now += 2
    with pytest.raises(Unauthorized):  # cached, but revoked
        authn.authenticate("ci", secret)
    again = _create(path, "ci", "repository:team/*:pull")  # same name, new secret and id
    clock.now += 2
    with pytest.raises(Unauthorized):
        authn.authenticate("ci", secret)
    assert authn.authenticate("ci", again).cache == "miss"


def test_expiry_ends_cached_logins_too(tmp_path: Path) -> None:
    path = tmp_path / "robots.json"
    secret = _create(path, "ci", "repository:x:pull", now=5000.0, expires=60)
    wall = Clock(5000.0)
    robots = RobotAccounts(path, now=wall)
    cache = CredentialCache(b"k" * 32, ttl=3600, local=LocalCache(100))
    authn = Authenticator([robots], cache, dummy_cost=4)
    assert authn.authenticate("ci", secret).cache == "miss"
    assert authn.authenticate("ci", secret).cache == "local"
    wall.now += 61
    with pytest.raises(Unauthorized):
        authn.authenticate("ci", secret)
    assert robots.health() == (True, "0 active robots")


def test_grant_is_the_allow_list_intersected_with_the_acl(tmp_path: Path) -> None:
    path = tmp_path / "robots.json"
    _create(path, "ci", "repository:team/*:pull,push", "repository:shared/base:pull")
    account = RobotAccounts(path).lookup("ci")
    assert isinstance(account, Account) and account.limit is not None
    acl = Acl.compile(
        [
            AclRule.model_validate({"match": {"name": "team/secret"}, "actions": ["pull"]}),
            AclRule.model_validate({"match": {"account": "/.+/"}, "actions": ["*"]}),
        ]
    )
    principal = Principal(account="ci", labels=account.labels, ip=None)
    requested = [
        parse_scope("repository:team/app:pull,push,delete"),  # robot: no delete
        parse_scope("repository:team/secret:pull,push"),  # ACL: pull only
        parse_scope("repository:shared/base:pull,push"),  # robot: pull only
        parse_scope("repository:other/x:pull"),  # robot: nothing
    ]
    granted = account.limit.grant(principal, acl.grant(principal, requested))
    assert [g.actions for g in granted] == [("pull", "push"), ("pull",), ("pull",), ()]
    assert account.labels == {"robot": ("ci",)}


def test_robots_are_not_throttled_by_other_failures(tmp_path: Path) -> None:
    path = tmp_path / "robots.json"
    secret = _create(path, "ci", "repository:x:pull")
    throttle = Throttle(ThrottleSettings(max_failures=1, max_failures_per_ip=1))
    from keelhaul.auth.authn.htpasswd import HtpasswdFile, hash_password

    users = tmp_path / "htpasswd"
    users.write_text(f"alice:{hash_password('pw', 4)}\n")
    authn = Authenticator(
        [HtpasswdFile(users), RobotAccounts(path)], None, throttle=throttle, dummy_cost=4
    )
    with pytest.raises(Unauthorized):  # another client on the same address fails ...
        authn.authenticate("alice", "wrong", "10.0.0.1")
    with pytest.raises(TooManyRequests):  # ... and is throttled, and so would be this address
        authn.authenticate("alice", "wrong", "10.0.0.1")
    assert authn.authenticate("ci", secret, "10.0.0.1").user.name == "ci"
