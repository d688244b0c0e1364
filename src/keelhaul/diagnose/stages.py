"""Request stages, named as the load kit names them (``token``, ``manifest GET``...). Pure.

The proxy's access log names a request by method and URI, the registry's metrics by handler
and method; both are mapped here onto :data:`keelhaul.load.stats.STAGE_ORDER`'s names, so
that the client's, the proxy's and the registry's view of one stage line up.
"""

from __future__ import annotations

import re

__all__ = ["REGISTRY_HANDLERS", "registry_stage", "stage_of", "upstream_of"]

_V2 = re.compile(
    r"^/v2/(?:(?P<catalog>_catalog)|(?P<name>.+?)/"
    r"(?:(?P<manifests>manifests)/[^/]+|(?P<uploads>blobs/uploads)(?:/[^/]*)?|"
    r"(?P<blobs>blobs)/[^/]+|(?P<tags>tags/list)))$"
)

REGISTRY_HANDLERS = {
    ("base", "GET"): "ping",
    ("manifest", "GET"): "manifest GET",
    ("manifest", "HEAD"): "manifest HEAD",
    ("manifest", "PUT"): "manifest PUT",
    ("manifest", "DELETE"): "manifest DELETE",
    ("blob", "GET"): "blob GET",
    ("blob", "HEAD"): "blob HEAD",
    ("blob", "DELETE"): "blob DELETE",
    ("blob_upload", "POST"): "upload start",
    ("blob_upload_chunk", "PATCH"): "upload PATCH",
    ("blob_upload_chunk", "PUT"): "upload PUT",
    ("blob_upload_chunk", "GET"): "upload status",
    ("blob_upload_chunk", "DELETE"): "upload cancel",
    ("tags", "GET"): "tags",
    ("catalog", "GET"): "catalog",
}


def stage_of(method: str, uri: str) -> str:
    """``GET /v2/team/app/manifests/1`` → ``manifest GET``; ``/token`` → ``token``."""
    path = uri.split("?", 1)[0]
    if path == "/token":
        return "token"
    if path in ("/v2/", "/v2"):
        return "ping"
    m = _V2.match(path)
    if m is None:
        return "other"
    method = method.upper()
    if m["catalog"]:
        return "catalog"
    if m["tags"]:
        return "tags"
    if m["uploads"]:
        if method == "POST":
            return "upload start"
        return {"PATCH": "upload PATCH", "PUT": "upload PUT", "GET": "upload status"}.get(
            method, "upload cancel"
        )
    kind = "manifest" if m["manifests"] else "blob"
    return f"{kind} {method}"


def registry_stage(handler: str, method: str) -> str:
    return REGISTRY_HANDLERS.get((handler, method.upper()), f"{handler} {method.upper()}")


def upstream_of(stage: str) -> str:
    """Which tier answers a stage behind the proxy."""
    if stage == "token":
        return "auth"
    if stage == "other":
        return "none"
    return "registry"
