"""What a registry's error answer means, as a keelhaul error with a message a user can act on.

The registry's ``{"errors": [{"code": ..., "message": ...}]}`` body names the problem more
precisely than the status (a ``404`` may be ``NAME_UNKNOWN``, ``MANIFEST_UNKNOWN`` or
``BLOB_UNKNOWN``); a ``HEAD`` has no body, so ``what`` was being asked for decides. Pure.
"""

from __future__ import annotations

import json
from typing import Literal

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

__all__ = ["What", "error_codes", "registry_error"]

What = Literal["manifest", "blob", "upload", "tags", "catalog", "delete", "ping"]

_MAX_MESSAGE = 160


def _clean(text: object) -> str:
    shown = "".join(c if c.isprintable() else " " for c in str(text))
    return shown[:_MAX_MESSAGE]


def error_codes(body: bytes) -> list[tuple[str, str]]:
    """``(code, message)`` of each entry of a Docker-style error body (empty if none)."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        return []
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list):
        return []
    return [
        (str(e.get("code", "")).upper(), _clean(e.get("message", "")))
        for e in errors
        if isinstance(e, dict)
    ]


def registry_error(
    status: int, body: bytes, *, what: What, subject: str, registry: str
) -> RegistryClientError:
    """``subject`` names the thing asked for, e.g. ``127.0.0.1:5000/app:1`` or a digest."""
    codes = error_codes(body)
    names = {code for code, _ in codes}
    detail = "; ".join(f"{c}: {m}" if m else c for c, m in codes) or f"HTTP {status}"
    if "NAME_UNKNOWN" in names or (status == 404 and what in ("tags",)):
        return RepositoryNotFound(f"repository not found: {subject}")
    if "MANIFEST_UNKNOWN" in names or (status == 404 and what in ("manifest", "delete")):
        return ManifestNotFound(f"manifest not found: {subject}")
    if "BLOB_UNKNOWN" in names or (status == 404 and what == "blob"):
        return BlobNotFound(f"blob not found: {subject}")
    if "MANIFEST_BLOB_UNKNOWN" in names:
        return BlobNotFound(f"{subject}: the registry lacks a blob the manifest refers to")
    if "DIGEST_INVALID" in names or "SIZE_INVALID" in names:
        return DigestMismatch(
            f"{subject}: the registry says the uploaded content does not match its digest "
            f"({detail}); the local copy may be corrupt",
            expected=subject,
            actual="",
        )
    if status == 401:
        return RegistryUnauthorized(f"{registry}: unauthorized ({detail})")
    if status == 403 or "DENIED" in names:
        return RegistryDenied(f"{registry}: access to {subject} denied ({detail})")
    if status == 415 or ("MANIFEST_INVALID" in names and "media type" in detail.lower()):
        return UnsupportedMediaType(f"{registry} does not accept {subject}: {detail}")
    if status == 405 or "UNSUPPORTED" in names:
        if what == "delete":
            return RegistryClientError(
                f"{registry} does not allow deleting (its storage.delete.enabled is off)"
            )
        return RegistryClientError(f"{registry} does not support this operation: {detail}")
    if status == 429:
        return RegistryClientError(f"{registry} is throttling requests; try again later")
    if status >= 500:
        return RegistryClientError(f"{registry} failed with HTTP {status} ({detail})")
    return RegistryClientError(f"{registry} refused the {what} request for {subject}: {detail}")
