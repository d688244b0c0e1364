"""Registry error answers become keelhaul errors with distinct exit codes."""

from __future__ import annotations

import json

import pytest

from keelhaul.client.failures import What, error_codes, registry_error
from keelhaul.client.transport import Headers
from keelhaul.errors import (
    BlobNotFound,
    DigestMismatch,
    ManifestNotFound,
    RegistryClientError,
    RegistryDenied,
    RegistryUnauthorized,
    RepositoryNotFound,
    UnsupportedMediaType,
)
from keelhaul.units import parse_size

pytestmark = pytest.mark.unit


def _body(code: str, message: str = "m") -> bytes:
    return json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()


@pytest.mark.parametrize(
    ("status", "body", "what", "error", "exit_code"),
    [
        (404, _body("NAME_UNKNOWN"), "tags", RepositoryNotFound, 12),
        (404, b"", "tags", RepositoryNotFound, 12),
        (404, _body("MANIFEST_UNKNOWN"), "manifest", ManifestNotFound, 13),
        (404, b"", "manifest", ManifestNotFound, 13),
        (404, b"", "blob", BlobNotFound, 14),
        (400, _body("MANIFEST_BLOB_UNKNOWN"), "manifest", BlobNotFound, 14),
        (400, _body("DIGEST_INVALID"), "upload", DigestMismatch, 15),
        (401, _body("UNAUTHORIZED"), "ping", RegistryUnauthorized, 10),
        (403, _body("DENIED"), "manifest", RegistryDenied, 11),
        (415, b"", "manifest", UnsupportedMediaType, 18),
        (405, _body("UNSUPPORTED"), "delete", RegistryClientError, 4),
        (500, b"oops", "blob", RegistryClientError, 4),
    ],
)
def test_mapping(
    status: int, body: bytes, what: What, error: type[RegistryClientError], exit_code: int
) -> None:
    found = registry_error(status, body, what=what, subject="r/x:1", registry="r")
    assert type(found) is error
    assert found.exit_code == exit_code


def test_messages_are_cleaned_and_bounded() -> None:
    codes = error_codes(_body("DENIED", "a\x1b[31mb" + "x" * 500))
    assert codes[0][0] == "DENIED"
    assert "\x1b" not in codes[0][1] and len(codes[0][1]) <= 160
    assert error_codes(b"not json") == [] and error_codes(b'{"errors": 3}') == []
    found = registry_error(405, b"", what="delete", subject="s", registry="r")
    assert "storage.delete.enabled" in str(found)


def test_headers_are_case_insensitive_and_multi_valued() -> None:
    headers = Headers([("WWW-Authenticate", "Bearer a"), ("www-authenticate", "Basic b")])
    assert headers.get("Www-Authenticate") == "Bearer a"
    assert headers.get_all("WWW-AUTHENTICATE") == ["Bearer a", "Basic b"]
    assert "www-authenticate" in headers and headers.get("x") is None


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4096", 4096),
        ("512k", 512 << 10),
        ("64MiB", 64 << 20),
        ("1.5g", 3 << 29),
        ("2MB", 2_000_000),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size
