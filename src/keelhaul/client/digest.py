"""Content digests (``sha256:<hex>``, ``sha512:<hex>``) and a verifier fed while streaming. Pure.

A blob is hashed as its bytes pass by, never re-read: :class:`Verifier` is updated chunk by
chunk and :meth:`Verifier.check` raises :class:`~keelhaul.errors.DigestMismatch` (and names
both digests) when the content or its size is not what the descriptor promised.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from keelhaul.errors import DigestMismatch

__all__ = ["ALGORITHMS", "Digest", "Verifier", "digest_of", "parse_digest"]

ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}
"""Supported algorithms and their hex lengths (the OCI image spec's registered ones)."""

_HEX_RE = re.compile(r"[0-9a-f]+")


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    def verifier(self, size: int | None = None) -> Verifier:
        return Verifier(self, size)


def parse_digest(text: str) -> Digest:
    """Parse and validate; raises ``ValueError`` with a message fit for a user."""
    algorithm, sep, hexpart = text.partition(":")
    if not sep:
        raise ValueError(f"digest {text[:80]!r} lacks '<algorithm>:'")
    length = ALGORITHMS.get(algorithm)
    if length is None:
        supported = ", ".join(ALGORITHMS)
        raise ValueError(
            f"unsupported digest algorithm {algorithm[:20]!r} (supported: {supported})"
        )
    if len(hexpart) != length or _HEX_RE.fullmatch(hexpart) is None:
        raise ValueError(f"a {algorithm} digest is {length} lowercase hex characters")
    return Digest(algorithm, hexpart)


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


class Verifier:
    """Hashes what it is fed; :meth:`check` compares digest and (if known) size."""

    __slots__ = ("_hash", "expected", "expected_size", "size")

    def __init__(self, expected: Digest, expected_size: int | None = None) -> None:
        self.expected = expected
        self.expected_size = expected_size
        self.size = 0
        self._hash = hashlib.new(expected.algorithm)

    def update(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self.size += len(chunk)

    @property
    def actual(self) -> str:
        return f"{self.expected.algorithm}:{self._hash.hexdigest()}"

    def check(self, what: str = "blob") -> str:
        """The verified digest; raises :class:`DigestMismatch` otherwise."""
        expected = str(self.expected)
        if self.expected_size is not None and self.size != self.expected_size:
            raise DigestMismatch(
                f"{what} {expected}: expected {self.expected_size} bytes, got {self.size}",
                expected=expected,
                actual=self.actual,
            )
        actual = self.actual
        if actual != expected:
            raise DigestMismatch(
                f"{what} does not match its digest: expected {expected}, got {actual}",
                expected=expected,
                actual=actual,
            )
        return actual
