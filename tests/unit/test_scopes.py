from __future__ import annotations

import pytest

from keelhaul.auth.scopes import Scope, parse_scope, parse_scopes
from keelhaul.errors import BadRequest, ScopeError

pytestmark = pytest.mark.unit

VALID = [
    ("repository:ubuntu:pull", Scope("repository", "ubuntu", ("pull",))),
    (
        "repository:library/ubuntu:pull,push",
        Scope("repository", "library/ubuntu", ("pull", "push")),
    ),
    ("repository:a/b/c/d:push", Scope("repository", "a/b/c/d", ("push",))),
    (
        "repository:my-org/my.app__x_y--z:pull",
        Scope("repository", "my-org/my.app__x_y--z", ("pull",)),
    ),
    (
        "repository:localhost:5000/foo/bar:pull",
        Scope("repository", "localhost:5000/foo/bar", ("pull",)),
    ),
    (
        "repository:Registry.Example-1.com:443/team/app:pull",
        Scope("repository", "Registry.Example-1.com:443/team/app", ("pull",)),
    ),
    (
        "repository(plugin):vieux/sshfs:pull",
        Scope("repository", "vieux/sshfs", ("pull",), "plugin"),
    ),
    ("registry:catalog:*", Scope("registry", "catalog", ("*",))),
    ("repository:foo:pull,push,pull,push", Scope("repository", "foo", ("pull", "push"))),
    ("repository:foo:push,delete,pull", Scope("repository", "foo", ("delete", "pull", "push"))),
    ("repository:foo:*,pull", Scope("repository", "foo", ("*", "pull"))),
    # action := /[a-z]*/ may be empty: an empty action asks for nothing and is dropped
    ("repository:foo:", Scope("repository", "foo", ())),
    ("repository:foo:pull,,push,", Scope("repository", "foo", ("pull", "push"))),
    ("r2d2:x0:pull", Scope("r2d2", "x0", ("pull",))),
]


@pytest.mark.parametrize(("text", "expected"), VALID, ids=[t for t, _ in VALID])
def test_valid_scopes_parse(text: str, expected: Scope) -> None:
    scope = parse_scope(text)
    assert scope == expected
    assert parse_scope(str(scope)) == scope


INVALID = [
    ("", "empty"),
    ("repository", "expected <type>:<name>:<actions>"),
    ("repository:foo", "expected <type>:<name>:<actions>"),
    (":foo:pull", "resource type is empty"),
    ("repository::pull", "resource name is empty"),
    ("Repository:foo:pull", "resource type must be lowercase"),
    ("repository(:foo:pull", "resource type must be lowercase"),
    ("repository():foo:pull", "resource type must be lowercase"),
    ("repository:Ubuntu:pull", "path component 1 has uppercase letters"),
    ("repository:library/Ubuntu:pull", "path component 2 has uppercase letters"),
    ("repository:a//b:pull", "empty path component ('//')"),
    ("repository:/a:pull", "starts with '/'"),
    ("repository:a/:pull", "ends with '/'"),
    ("repository:_a:pull", "path component 1 starts with a separator"),
    ("repository:a/-b:pull", "path component 2 starts with a separator"),
    ("repository:a.:pull", "path component 1 ends with a separator"),
    ("repository:a..b:pull", "path component 1 has an invalid separator"),
    ("repository:a___b:pull", "path component 1 has an invalid separator"),
    ("repository:a_-b:pull", "path component 1 has an invalid separator"),
    ("repository:a+b:pull", "path component 1 has a character outside"),
    ("repository:foo:latest:pull", "only as hostname:port"),
    ("repository:localhost:5000:pull", "only as hostname:port"),
    ("repository:localhost:port/foo:pull", "hostname port must be digits"),
    ("repository:-bad-.com:80/foo:pull", "hostname must be letters"),
    ("repository:foo:PULL", "action 1 must be lowercase letters or '*'"),
    ("repository:foo:pull,pu-sh", "action 2 must be lowercase letters or '*'"),
    ("repository:foo:pull,**", "action 2 must be lowercase letters or '*'"),
    ("repository:foo bar:pull", "contains a space at position 15"),
    ("repository:caf\u00e9:pull", "non-ASCII character (U+00E9) at position 15"),
    ("repository:\u202efoo:pull", "non-ASCII character (U+202E) at position 12"),
    ("repository:foo\x00:pull", "control character (U+0000) at position 15"),
    ("repository:foo:pull\n", "control character (U+000A) at position 20"),
    ("repository:foo:pull\t", "control character (U+0009)"),
]


@pytest.mark.parametrize(("text", "problem"), INVALID, ids=[repr(t) for t, _ in INVALID])
def test_invalid_scopes_name_the_problem(text: str, problem: str) -> None:
    with pytest.raises(ScopeError) as caught:
        parse_scope(text)
    assert problem in str(caught.value)
    assert str(caught.value).startswith(f"invalid scope {text[:64]!r}")


def test_scope_error_is_a_400_with_the_spec_code() -> None:
    with pytest.raises(BadRequest) as caught:
        parse_scope("nope")
    assert caught.value.status == 400
    assert caught.value.code == "INVALID_SCOPE"


def test_too_long_is_refused_and_the_message_quotes_only_64_characters() -> None:
    text = "repository:" + "a" * 600 + ":pull"
    with pytest.raises(ScopeError) as caught:
        parse_scope(text)
    message = str(caught.value)
    assert "too long: 616 characters (limit 512)" in message
    assert "a" * 65 not in message
    assert parse_scope(text, max_length=1000).name == "a" * 600


def test_control_characters_are_escaped_in_the_message() -> None:
    with pytest.raises(ScopeError) as caught:
        parse_scope("repository:\x1b[31mred:pull")
    assert "\x1b" not in str(caught.value)
    assert "\\x1b" in str(caught.value)


def test_to_access_and_str() -> None:
    plain = Scope("repository", "a/b", ("pull", "push"))
    assert plain.to_access() == {"type": "repository", "name": "a/b", "actions": ["pull", "push"]}
    assert str(plain) == "repository:a/b:pull,push"
    plugin = Scope("repository", "a", ("pull",), "plugin")
    assert plugin.to_access() == {
        "type": "repository",
        "class": "plugin",
        "name": "a",
        "actions": ["pull"],
    }
    assert str(plugin) == "repository(plugin):a:pull"
    assert str(Scope("repository", "a", ())) == "repository:a:"


def test_parse_scopes_splits_merges_and_keeps_first_seen_order() -> None:
    scopes = parse_scopes(
        [
            "repository:b:pull  repository:a:push ",
            "",
            "registry:catalog:* repository:b:push repository(plugin):b:pull",
            "repository:a:push",
        ]
    )
    assert scopes == [
        Scope("repository", "b", ("pull", "push")),
        Scope("repository", "a", ("push",)),
        Scope("registry", "catalog", ("*",)),
        Scope("repository", "b", ("pull",), "plugin"),
    ]


def test_parse_scopes_empty() -> None:
    assert parse_scopes([]) == []
    assert parse_scopes(["", "   "]) == []


def test_parse_scopes_limits_distinct_resources() -> None:
    many = [f"repository:r{i}:pull" for i in range(33)]
    with pytest.raises(ScopeError, match=r"too many scopes: 33 \(limit 32\)"):
        parse_scopes([" ".join(many)])
    assert len(parse_scopes(many[:32])) == 32
    # repeats of one resource merge before the limit is applied
    assert len(parse_scopes(["repository:a:pull repository:a:push"] * 50, max_scopes=1)) == 1
    with pytest.raises(ScopeError, match=r"too many scopes: 3 \(limit 2\)"):
        parse_scopes(many[:3], max_scopes=2)


def test_parse_scopes_reports_the_bad_piece() -> None:
    with pytest.raises(ScopeError, match="'repository:Bad:pull'"):
        parse_scopes(["repository:good:pull repository:Bad:pull"])


def test_parse_scopes_passes_max_length() -> None:
    with pytest.raises(ScopeError, match="too long"):
        parse_scopes(["repository:abcdefghij:pull"], max_length=20)


@pytest.mark.parametrize(
    "text",
    [
        "repository:" + "a-" * 250 + "!:pull",
        "repository:" + "a" * 490 + "!:pull",
        "repository:" + "a." * 245 + "a/!:pull",
        "repository:" + "a-" * 245 + ":1/!:pull",
        "repository:" + "a/" * 245 + "A:pull",
        "repository:a:" + "a," * 245 + "A",
    ],
)
def test_adversarial_input_fails_fast(text: str) -> None:
    # pathological backtracking would take seconds here; the pytest timeout is the guard
    with pytest.raises(ScopeError):
        parse_scope(text)
