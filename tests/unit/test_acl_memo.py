"""Memoised ACL decisions answer exactly what a fresh decision would, for every part of the
key: account, labels, address (when a rule tests one), scopes, and the rules' version."""

from __future__ import annotations

import ipaddress

import pytest

from keelhaul.auth.acl import Acl, Principal
from keelhaul.auth.scopes import Scope
from keelhaul.auth.settings import AclRule

pytestmark = pytest.mark.unit

ALL = ("delete", "pull", "push")


def rule(actions: list[str], **match: object) -> AclRule:
    return AclRule.model_validate({"match": match, "actions": actions})


def who(account: str, ip: str | None = None, **labels: list[str]) -> Principal:
    return Principal(
        account=account,
        labels={k: tuple(v) for k, v in labels.items()},
        ip=ipaddress.ip_address(ip) if ip else None,
    )


def actions(acl: Acl, principal: Principal, name: str) -> tuple[str, ...]:
    (granted,) = acl.grant(principal, [Scope("repository", name, ALL)])
    return granted.actions


RULES = [
    rule(["pull", "push"], name="${labels:team}/**"),
    rule(["pull"], ip="10.0.0.0/8", name="internal/**"),
    rule(["pull"], account="/.+/", name="shared/**"),
]


def test_memoised_answers_follow_every_part_of_the_key() -> None:
    acl = Acl.compile(RULES)
    for _ in range(2):  # the second round is answered from the memo
        assert actions(acl, who("a", team=["red"]), "red/app") == ("pull", "push")
        assert actions(acl, who("a", team=["blue"]), "red/app") == ()
        assert actions(acl, who("a", ip="10.1.2.3"), "internal/x") == ("pull",)
        assert actions(acl, who("a", ip="192.0.2.1"), "internal/x") == ()
        assert actions(acl, who("a"), "shared/x") == ("pull",)
        assert actions(acl, who(""), "shared/x") == ()


def test_the_memo_is_keyed_by_the_rules_version() -> None:
    first, same, other = Acl.compile(RULES), Acl.compile(RULES), Acl.compile(RULES[1:])
    assert first.version == same.version != other.version
    assert actions(first, who("a", team=["red"]), "red/app") == ("pull", "push")
    assert actions(other, who("a", team=["red"]), "red/app") == ()


def test_a_full_memo_is_emptied_not_wrong() -> None:
    acl = Acl.compile(RULES)
    for n in range(5000):
        assert actions(acl, who(f"u{n}", team=[f"t{n}"]), f"t{n}/app") == ("pull", "push")
    assert actions(acl, who("u1", team=["t2"]), "t1/app") == ()


def test_the_memo_is_keyed_by_the_service() -> None:
    acl = Acl.compile([rule(["pull", "push"], service="staging", name="app/**")])
    for _ in range(2):
        staging = Principal(account="a", service="staging")
        prod = Principal(account="a", service="production")
        assert acl.grant(staging, [Scope("repository", "app/x", ALL)])[0].actions == (
            "pull",
            "push",
        )
        assert acl.grant(prod, [Scope("repository", "app/x", ALL)])[0].actions == ()
