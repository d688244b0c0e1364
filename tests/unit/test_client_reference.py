"""Image references: registry detection, tags, digests, Docker Hub normalisation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keelhaul.client.reference import (
    Reference,
    parse_reference,
    parse_registry,
    parse_repository,
)
from keelhaul.errors import InvalidReference

pytestmark = pytest.mark.unit

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5000/team/app:1.0", Reference("127.0.0.1:5000", "team/app", "1.0")),
        ("127.0.0.1:5000/app", Reference("127.0.0.1:5000", "app", "latest")),
        (f"localhost/a/b@{DIGEST}", Reference("localhost", "a/b", None, DIGEST)),
        (f"reg.example.com/a:t@{DIGEST}", Reference("reg.example.com", "a", "t", DIGEST)),
        ("ubuntu", Reference("docker.io", "library/ubuntu", "latest")),
        ("bitnami/redis:7", Reference("docker.io", "bitnami/redis", "7")),
        ("[::1]:5000/x:y", Reference("[::1]:5000", "x", "y")),
        ("host:5000/a__b/c-d.e:v1_2", Reference("host:5000", "a__b/c-d.e", "v1_2")),
    ],
)
def test_parse(text: str, expected: Reference) -> None:
    assert parse_reference(text) == expected


def test_ref_and_str() -> None:
    ref = parse_reference(f"127.0.0.1:5000/a:t@{DIGEST}")
    assert ref.ref == DIGEST
    assert str(ref) == f"127.0.0.1:5000/a:t@{DIGEST}"
    assert parse_reference("127.0.0.1:5000/a").ref == "latest"
    assert parse_reference("ubuntu").api_host == "registry-1.docker.io"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("127.0.0.1:5000/Team/app", "lowercase"),
        ("127.0.0.1:5000/a..b", "bad path component"),
        ("127.0.0.1:5000/a:-bad", "bad tag"),
        ("127.0.0.1:5000/a@sha256:zz", "64 lowercase"),
        ("127.0.0.1:5000/a@md5:00", "unsupported"),
        ("127.0.0.1:5000/", "empty"),
        ("bad_host.com:x/a", "bad registry host"),
    ],
)
def test_invalid(text: str, problem: str) -> None:
    with pytest.raises(InvalidReference, match=problem) as info:
        parse_reference(text)
    assert info.value.exit_code == 2


def test_repository_and_registry() -> None:
    assert str(parse_repository("127.0.0.1:5000/team/app")) == "127.0.0.1:5000/team/app"
    with pytest.raises(InvalidReference, match="without a tag"):
        parse_repository("127.0.0.1:5000/team/app:1")
    assert parse_registry("http://127.0.0.1:5000/") == "127.0.0.1:5000"
    with pytest.raises(InvalidReference):
        parse_registry("not a host")


_component = st.from_regex(r"[a-z0-9]{1,5}([._-][a-z0-9]{1,5}){0,2}", fullmatch=True)
_tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)


@given(path=st.lists(_component, min_size=1, max_size=3), tag=_tag, port=st.integers(1, 65535))
def test_round_trip(path: list[str], tag: str, port: int) -> None:
    text = f"127.0.0.1:{port}/{'/'.join(path)}:{tag}"
    ref = parse_reference(text)
    assert str(ref) == text
    assert parse_reference(str(ref)) == ref
