"""WWW-Authenticate parsing: several challenges, quoted commas and escapes, token68."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keelhaul.client.challenge import Challenge, parse_challenges

pytestmark = pytest.mark.unit


def test_distribution_bearer_challenge() -> None:
    (c,) = parse_challenges(
        [
            'Bearer realm="http://127.0.0.1:5001/token",service="keelhaul-registry",'
            'scope="repository:foo/bar:pull,push",error="insufficient_scope"'
        ]
    )
    assert c.scheme == "bearer"
    assert c.realm == "http://127.0.0.1:5001/token"
    assert c.get("service") == "keelhaul-registry"
    assert c.scopes == ("repository:foo/bar:pull,push",)
    assert c.error == "insufficient_scope"


def test_several_challenges_in_one_header_and_across_headers() -> None:
    found = parse_challenges(
        [
            'Basic realm="a, b", Bearer realm="https://auth/token",service=reg',
            "Negotiate abc123==, Basic",
        ]
    )
    assert [c.scheme for c in found] == ["basic", "bearer", "negotiate", "basic"]
    assert found[0].realm == "a, b"
    assert found[1].params == {"realm": "https://auth/token", "service": "reg"}
    assert found[2].token68 == "abc123=="
    assert found[3] == Challenge("basic")


def test_quoted_escapes_spaces_and_case() -> None:
    (c,) = parse_challenges(['BEARER Realm = "say \\"hi\\", ok" ,  Service=x'])
    assert c.scheme == "bearer"
    assert c.params == {"realm": 'say "hi", ok', "service": "x"}


def test_several_scopes_in_one_parameter() -> None:
    (c,) = parse_challenges(['Bearer realm="r",scope="repository:a:pull repository:b:pull,push"'])
    assert c.scopes == ("repository:a:pull", "repository:b:pull,push")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("", []),
        (" , ,", []),
        ("Bearer", [("bearer", {})]),
        # an unterminated quote keeps what was there rather than failing the whole header
        ('Bearer realm="unterminated', [("bearer", {"realm": "unterminated"})]),
        # junk never invents parameters: at most a bare scheme no client would act on
        ("=== junk", [("junk", {})]),
        ('"x"', [("x", {})]),
    ],
)
def test_lenient_parsing_of_malformed_headers(
    header: str, expected: list[tuple[str, dict[str, str]]]
) -> None:
    got = parse_challenges([header])
    assert [(c.scheme, c.params) for c in got] == expected


_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=0, max_size=30
)


@given(realm=_values, service=_values)
def test_any_quoted_value_round_trips(realm: str, service: str) -> None:
    def quote(v: str) -> str:
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'

    header = f"Bearer realm={quote(realm)},service={quote(service)}, Basic realm={quote(realm)}"
    bearer, basic = parse_challenges([header])
    assert bearer.params == {"realm": realm, "service": service}
    assert basic.scheme == "basic" and basic.realm == realm
