"""docker_auth configurations converted to keelhaul's (keelhaul.auth.docker_auth), checked
against an independent transcription of docker_auth's matching (docker_auth_reference)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keelhaul.auth.acl import Acl, Principal
from keelhaul.auth.docker_auth import UNSUPPORTED_SECTIONS, convert, convert_pattern, convert_rule
from keelhaul.auth.gomatch import go_path_match_regex
from keelhaul.auth.scopes import Scope
from keelhaul.auth.settings import AclRule, load_auth_settings
from support.docker_auth_reference import Request, authorize, path_match

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parents[1] / "data" / "docker_auth"


def keelhaul_grant(rules: list[dict[str, Any]], req: Request) -> list[str]:
    acl = Acl.compile([AclRule.model_validate(r) for r in rules])
    principal = Principal(
        account=req.account,
        labels={k: tuple(v) for k, v in req.labels.items()},
        ip=ipaddress.ip_address(req.ip) if req.ip else None,
        service=req.service,
    )
    return list(acl.allowed_actions(principal, Scope(req.type, req.name, tuple(req.actions))))


# --------------------------------------------------------------------- patterns


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("*", "", True),
        ("*", "a/b", False),
        ("a?c", "abc", True),
        ("a?c", "a/c", False),
        ("[a-c]x", "bx", True),
        ("[^a-c]x", "dx", True),
        ("[^a-c]x", "/x", True),  # a class is not stopped by /
        ("[a-c]x", "dx", False),
        ("\\*", "*", True),
        ("\\*", "a", False),
        ("test-*", "test-1", True),
        ("[z-a]", "m", False),
        ("[", "[", False),  # malformed: never matches
        ("a\\", "a", False),
        ("[]a]", "a", False),
        ("a[", "b", False),  # Go checks the rest of the pattern after a mismatch
    ],
)
def test_path_match_translation_agrees_with_go(pattern: str, value: str, expected: bool) -> None:
    try:
        reference = path_match(pattern, value)
    except Exception:  # noqa: BLE001 - BadPattern: docker_auth treats it as no match
        reference = False
    assert reference is expected
    rule = {"match": {"name": convert_pattern(pattern)}, "actions": ["pull"]}
    try:
        regex = go_path_match_regex(pattern)
    except ValueError:
        regex = None
    assert (regex is not None and re.fullmatch(regex, value) is not None) is expected
    req = Request("alice", "repository", value, "reg", actions=["pull"])
    assert bool(keelhaul_grant([rule], req)) is expected


def test_regex_is_an_unanchored_search_and_literals_stay_plain() -> None:
    assert convert_pattern("/b/") == {"search": "b"}
    assert convert_pattern("admin") == "admin"
    assert convert_pattern("//") == {"path_match": "//"}  # docker_auth: len > 2 for regex
    assert convert_pattern("test-*") == {"path_match": "test-*"}
    req = Request("alice", "repository", "abc", "reg", actions=["pull"])
    rules = [{"match": {"name": {"search": "b"}}, "actions": ["pull"]}]
    assert keelhaul_grant(rules, req) == ["pull"]
    assert keelhaul_grant([{"match": {"name": "/b/"}, "actions": ["pull"]}], req) == []


def test_captures_and_service_match_natively() -> None:
    rules = [
        {
            "match": {"account": {"search": "^(.+)@test.com$"}, "name": "${account:1}/**"},
            "actions": ["push"],
        },
        {"match": {"service": "other"}, "actions": ["pull"]},
    ]
    push = Request("bob@test.com", "repository", "bob/app", "reg", actions=["push"])
    assert keelhaul_grant(rules, push) == ["push"]
    push.name = "eve/app"
    assert keelhaul_grant(rules, push) == []
    pull = Request("eve", "repository", "x", "other", actions=["pull"])
    assert keelhaul_grant(rules, pull) == ["pull"]
    pull.service = "reg"
    assert keelhaul_grant(rules, pull) == []


def test_rules_that_cannot_mean_the_same_are_reported() -> None:
    assert convert_rule(0, {"match": {"name": "${name}"}, "actions": ["*"]})[0] is None
    rule, problems = convert_rule(3, {"match": {"account": "a"}, "actions": ["*", "pull"]})
    assert rule is None and problems[0].startswith("acl.3.actions")
    rule, problems = convert_rule(1, {"match": {"name": "${type:1}"}, "actions": []})
    assert rule is None and "type" in problems[0]
    rule, problems = convert_rule(2, {"match": {"name": "${account:1}"}, "actions": ["pull"]})
    assert rule is None and "acl.2.match.name" in problems[0]
    only_in_labels = {"account": "/(.+)/", "labels": {"group": "${account:1}"}}
    rule, problems = convert_rule(4, {"match": only_in_labels, "actions": ["pull"]})
    assert rule is None and problems[0].startswith("acl.4.match.labels.group")
    spanning = {"account": "/(.+)/", "name": "${account}/${account:1}"}  # captureGroupRegex
    rule, problems = convert_rule(5, {"match": spanning, "actions": ["pull"]})
    assert rule is None and "account}/${account" in problems[0]


# --------------------------------------------------------------------- the examples


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DATA / name).read_text())
    return data


def test_reference_yml() -> None:
    docker = load("reference.yml")
    imported = convert(docker, service="Docker registry", htpasswd_path="/etc/htpasswd")
    assert imported.htpasswd == [
        "admin:$2y$05$LO.vzwpWC5LZGqThvEfznu8qhb5SGqvBSWY1J3yZ4AxtMRZ3kN5jC",
        "test:$2y$05$WuwBasGDAgr.QCbGIjKJaep4dhxeai9gNZdmBnQXqpKly57oNutya",
    ]
    sections = [s for s in UNSUPPORTED_SECTIONS if s in docker]
    assert len(sections) == 14
    assert imported.left_out == [
        "server TLS (certificate/letsencrypt): keelhaul serves HTTP behind a proxy; "
        "terminate TLS there (keelhaul stack up --tls)",
        *[f"{s}: {UNSUPPORTED_SECTIONS[s]} is not available in keelhaul" for s in sections],
    ]
    config = imported.config
    assert config["token"] == {
        "issuer": "Acme auth server",
        "service": "Docker registry",
        "expiration": 900,
        "kid_format": "libtrust",
        "keys": [{"key": "/path/to/server.key", "cert": "/path/to/server.pem"}],
    }
    assert config["server"] == {"bind": "0.0.0.0:5001"}
    rules = config["acl"]
    assert len(rules) == len(docker["acl"])  # "" is a user: no anonymous deny rule first
    # every converted rule grants what docker_auth grants, on the example's own cases
    cases = [
        Request("admin", "repository", "x/y", "Docker registry", "10.0.0.1", actions=["push"]),
        Request("test", "repository", "test-1", "s", "10.0.0.1", actions=["push", "pull"]),
        Request("test", "repository", "other", "s", "10.0.0.1", actions=["pull"]),
        Request("alice", "repository", "alice/app", "s", "10.0.0.1", actions=["push"]),
        Request("alice", "registry", "catalog", "s", "10.0.0.1", actions=["*"]),
        Request("", "repository", "hello-world", "s", "10.0.0.1", actions=["pull"]),
        Request("", "repository", "other", "s", "10.0.0.1", actions=["pull"]),
        Request("x", "repository", "y", "s", "127.0.0.5", actions=["delete"]),
        Request("x", "repository", "y", "s", "::1", actions=["delete"]),
        Request("bob@test.com", "repository", "bob/a", "s", "10.0.0.1", actions=["push"]),
        Request(
            "",
            "repository",
            "vip-shared/a",
            "s",
            "10.0.0.1",
            ["group"] and {"group": ["vip"]},
            ["push"],
        ),
        Request("", "repository", "p/a", "s", "10.0.0.1", {"project": ["p"]}, ["push", "pull"]),
        Request("", "repository", "a", "s", "10.0.0.1", {"group": ["dev"]}, ["push", "pull"]),
        Request("", "repository", "a", "s", "10.0.0.1", {"group": ["VIP"]}, ["push", "pull"]),
    ]
    settings = load_auth_settings(data={"secret": "s" * 40, **config}, environ={})
    assert len(Acl.compile(settings.acl)) == len(rules)
    grants = [keelhaul_grant(rules, case) for case in cases]
    assert grants == [authorize(docker["acl"], case) for case in cases]
    assert grants[0] == ["push"] and grants[2] == [] and grants[5] == ["pull"]


def test_simple_yml_without_anonymous_user() -> None:
    docker = load("simple.yml")
    imported = convert(docker, service=None, htpasswd_path="htpasswd")
    assert [line.split(":")[0] for line in imported.htpasswd] == ["admin", "test"]
    assert imported.left_out == [
        "server TLS (certificate/letsencrypt): keelhaul serves HTTP behind a proxy; "
        "terminate TLS there (keelhaul stack up --tls)",
        "token.service: docker_auth takes the service from each request; keelhaul issues "
        "for one: give --service (the registry's auth.token.service)",
    ]
    rules = imported.config["acl"]
    assert rules[0]["match"] == {"account": ""} and rules[0]["actions"] == []
    anonymous = Request("", "repository", "x", "s", actions=["pull"])
    assert keelhaul_grant(rules, anonymous) == []
    test = Request("test", "repository", "x", "s", actions=["push", "pull"])
    assert keelhaul_grant(rules, test) == ["pull"] == authorize(docker["acl"], test)


# --------------------------------------------------------------------- property


ACCOUNTS = ["", "alice", "bob", "a.b", "bob@test.com", "x-y", "b"]
NAMES = ["alice/app", "bob/x", "test-1", "hello-world", "a.b/c", "dev-shared/x", "catalog", "b"]
LABEL_VALUES = ["VIP", "dev", "a.b", "x*", "b"]
GLOB_ATOMS = ["a", "b", "/", "-", ".", "*", "?", "[a-c]", "[^a]", "\\.", "${account}",
              "${labels:group}", "${service}", "${account:1}", "test", "x"]  # fmt: skip
REGEX_ATOMS = ["a", "b", ".", ".+", "^", "$", "(a|b)", "(.+)", "@", "/", "${account}",
               "${labels:group}", "${account:1}", "[a-c]", "x*"]  # fmt: skip


CAPTURING = ["/^(.+)@test.com$/", "/(.+)/", "/^(b)/", "/(x)?b/", "/^([a-z]+)[.@]/"]
CAPTURED = [
    "${account:1}/*",
    "/^${account:1}/",
    "${account:1}",
    "*${account:1}*",
    "/${account:1}$/",
]


def _pattern() -> st.SearchStrategy[str]:
    glob = st.lists(st.sampled_from(GLOB_ATOMS), min_size=0, max_size=4).map("".join)
    regex = st.lists(st.sampled_from(REGEX_ATOMS), min_size=1, max_size=4).map(
        lambda atoms: "/" + "".join(atoms) + "/"
    )
    return st.one_of(glob, regex, st.sampled_from(ACCOUNTS + NAMES))


@st.composite
def docker_rule(draw: st.DrawFn) -> dict[str, Any]:
    match: dict[str, Any] = {}
    for key in ("account", "type", "name", "service"):
        if draw(st.booleans()):
            match[key] = draw(
                st.sampled_from(["repository", "registry", "/repo/", "*"])
                if key == "type"
                else st.sampled_from(["reg", "other", "/re/", "*"])
                if key == "service"
                else st.one_of(_pattern(), st.sampled_from(CAPTURING))
                if key == "account"
                else _pattern()
            )
    if draw(st.integers(0, 3)) == 0:  # docker_auth's capture groups, spelled out
        match["account"] = draw(st.sampled_from(CAPTURING))
        match["name"] = draw(st.sampled_from(CAPTURED))
    if draw(st.integers(0, 4)) == 0:
        match["ip"] = draw(st.sampled_from(["127.0.0.0/8", "::1", "10.0.0.5", "10.0.0.0/24"]))
    if draw(st.integers(0, 3)) == 0:
        match["labels"] = {"group": draw(_pattern())}
    actions = draw(st.sampled_from([[], ["*"], ["pull"], ["push", "pull"], ["delete"]]))
    return {"match": match, "actions": actions}


@st.composite
def request(draw: st.DrawFn) -> Request:
    labels = draw(
        st.one_of(
            st.just({}),
            st.dictionaries(
                st.sampled_from(["group", "project"]),
                st.lists(st.sampled_from(LABEL_VALUES), max_size=2),
                max_size=2,
            ),
        )
    )
    return Request(
        account=draw(st.sampled_from(ACCOUNTS)),
        type=draw(st.sampled_from(["repository", "registry"])),
        name=draw(st.sampled_from(NAMES)),
        service=draw(st.sampled_from(["reg", "other"])),
        ip=draw(st.sampled_from([None, "127.0.0.1", "10.0.0.5", "::1", "::ffff:127.0.0.1"])),
        labels=labels,
        actions=draw(st.sampled_from([["pull"], ["push", "pull"], ["*"], ["delete", "pull"]])),
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(docker_rule(), min_size=1, max_size=4), st.lists(request(), min_size=1, max_size=5))
def test_converted_rules_grant_exactly_what_docker_auth_grants(
    rules: list[dict[str, Any]], requests: list[Request]
) -> None:
    converted: list[dict[str, Any]] = []
    for index, entry in enumerate(rules):
        rule, problems = convert_rule(index, entry)
        if rule is None:
            # only what keelhaul cannot express may be refused: a capture with no regex to
            # capture from (docker_auth then matches nothing through that field)
            assert all("${account:1}" in p or "${service" in p for p in problems), problems
            return
        converted.append(rule)
    for req in requests:
        assert sorted(keelhaul_grant(converted, req)) == sorted(authorize(rules, req)), req


def test_user_labels_and_passwords() -> None:
    docker = {
        "users": {
            "ann": {"password": "$2y$05$" + "a" * 53, "labels": {"group": ["dev", "ops"]}},
            "old": {"password": "plaintext"},
        },
        "token": {"issuer": "i", "certificate": "c.pem", "key": "k.pem", "expiration": 30},
        "acl": [{"match": {"labels": {"group": "ops"}}, "actions": ["pull"]}],
    }
    imported = convert(docker, service="reg", htpasswd_path="h")
    assert imported.htpasswd == ["ann:$2y$05$" + "a" * 53]
    assert imported.config["users"]["labels"] == {"ann": {"group": ["dev", "ops"]}}
    assert imported.left_out == ["users.old.password: not a bcrypt hash"]
    assert imported.notes == ["token.expiration: 30 s is outside 60..86400; 60 used"]
    ops = Request(
        "ann", "repository", "x", "reg", labels={"group": ["dev", "ops"]}, actions=["pull"]
    )
    assert keelhaul_grant(imported.config["acl"], ops) == ["pull"]
