"""Digests: parsing, and the streaming verifier for sha256 and sha512."""

from __future__ import annotations

import hashlib

import pytest

from keelhaul.client.digest import Verifier, digest_of, parse_digest
from keelhaul.errors import DigestMismatch

pytestmark = pytest.mark.unit

DATA = b"keelhaul" * 10_000


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_verifies_while_streaming(algorithm: str) -> None:
    digest = parse_digest(digest_of(DATA, algorithm))
    verifier = digest.verifier(len(DATA))
    for i in range(0, len(DATA), 4096):
        verifier.update(DATA[i : i + 4096])
    assert verifier.check() == f"{algorithm}:{hashlib.new(algorithm, DATA).hexdigest()}"


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_mismatch_names_both_digests(algorithm: str) -> None:
    expected = digest_of(DATA, algorithm)
    verifier = Verifier(parse_digest(expected))
    verifier.update(DATA[:-1] + b"X")
    with pytest.raises(DigestMismatch) as info:
        verifier.check()
    assert info.value.expected == expected
    assert info.value.actual == digest_of(DATA[:-1] + b"X", algorithm)
    assert expected in str(info.value)


def test_size_mismatch_is_a_mismatch() -> None:
    verifier = Verifier(parse_digest(digest_of(DATA)), len(DATA) + 1)
    verifier.update(DATA)
    with pytest.raises(DigestMismatch, match="expected 80001 bytes, got 80000"):
        verifier.check()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("abc", "lacks"),
        ("md5:" + "0" * 32, "unsupported"),
        ("sha256:" + "0" * 63, "64 lowercase"),
        ("sha256:" + "A" * 64, "64 lowercase"),
        ("sha512:" + "0" * 64, "128 lowercase"),
    ],
)
def test_parse_rejects(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_digest(text)
