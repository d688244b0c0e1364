"""A small in-memory registry and token service behind :class:`MockTransport`.

It follows the distribution API and the token spec where the client's loops depend on
them: ``401`` with a ``Bearer`` challenge naming the scope, ``invalid_token`` for an
unknown or revoked token, ``insufficient_scope`` when the token lacks an action, ``206``
with ``Content-Range`` for ``Range: bytes=N-``, upload sessions with ``Location`` and
``Range: 0-<last>``, ``GET <location>`` for the status, ``404`` for a lost session and
``400 BLOB_UPLOAD_INVALID`` for a session whose stored size no longer matches (what
distribution answers after a request broke mid-body).

Faults are queued by the test: each blob ``GET`` pops :attr:`FakeRegistry.drop_blob_after`
(the response breaks after that many bytes), each ``PATCH`` pops
:attr:`FakeRegistry.drop_patch_after` (the request breaks after the registry stored that
many bytes), :attr:`FakeRegistry.lose_uploads` sessions are forgotten.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from keelhaul.client.mock_transport import MockTransport, Reply, request_body
from keelhaul.client.transport import Request
from keelhaul.errors import ConnectionDropped

HOST = "registry.test"
REALM = "http://auth.test/token"
SERVICE = "fake-registry"
CHUNK = 64 << 10

_PATH_RE = re.compile(r"/v2/(?P<name>.+?)/(?P<kind>manifests|blobs|tags)/(?P<rest>.*)")


def _errors(code: str, message: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": message}]}).encode()


@dataclass
class _Upload:
    repository: str
    data: bytearray = field(default_factory=bytearray)
    broken: bool = False


@dataclass
class FakeRegistry:
    """``users`` maps a name to (password, actions granted on every repository);
    ``anonymous`` are the actions granted without credentials."""

    users: dict[str, tuple[str, frozenset[str]]] = field(
        default_factory=lambda: {"alice": ("pw", frozenset({"pull", "push", "delete"}))}
    )
    anonymous: frozenset[str] = frozenset()
    blobs: dict[str, bytes] = field(default_factory=dict)
    repo_blobs: dict[str, set[str]] = field(default_factory=dict)
    manifests: dict[str, dict[str, tuple[str, bytes]]] = field(default_factory=dict)
    tokens: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    uploads: dict[str, _Upload] = field(default_factory=dict)
    drop_blob_after: list[int] = field(default_factory=list)
    drop_patch_after: list[int] = field(default_factory=list)
    lose_uploads: int = 0
    drop_breaks_session: bool = True
    """distribution's way: after a broken ``PATCH`` the session answers
    ``BLOB_UPLOAD_INVALID``; ``False``: it reports what it stored, and the upload resumes."""
    hold_tokens: int = 0
    """When positive, a token request waits until this many are in flight (or 0.5 s)."""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._token_waiting = 0

    def transport(self) -> MockTransport:
        return MockTransport(self)

    # --- seeding --------------------------------------------------------------------

    def put_blob(self, repository: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blobs[digest] = data
        self.repo_blobs.setdefault(repository, set()).add(digest)
        return digest

    def revoke_all(self) -> None:
        self.tokens.clear()

    # --- dispatch --------------------------------------------------------------------

    def __call__(self, request: Request) -> Reply:
        url = urlsplit(request.url)
        if url.netloc == "auth.test":
            return self._token(request, parse_qs(url.query))
        assert url.netloc == HOST, request.url
        if url.path == "/v2/":
            denied = self._authorize(request, None, "")
            return denied or Reply(200, {"Content-Type": "application/json"}, b"{}")
        match = _PATH_RE.fullmatch(url.path)
        if match is None:
            return Reply(404, {}, _errors("NOT_FOUND", "no such endpoint"))
        name, kind, rest = match.group("name", "kind", "rest")
        query = parse_qs(url.query)
        action = {"GET": "pull", "HEAD": "pull", "DELETE": "delete"}.get(request.method, "push")
        denied = self._authorize(request, name, action)
        if denied is not None:
            return denied
        if kind == "manifests":
            return self._manifest(request, name, rest)
        if kind == "tags":
            tags = sorted(ref for ref in self.manifests.get(name, {}) if ":" not in ref)
            return Reply(200, {}, json.dumps({"name": name, "tags": tags}).encode())
        if rest.startswith("uploads/"):
            return self._upload(request, name, rest.removeprefix("uploads/"), query)
        return self._blob(request, name, rest)

    # --- the token service ----------------------------------------------------------

    def _token(self, request: Request, query: dict[str, list[str]]) -> Reply:
        self._wait_for_peers()
        granted_actions = self.anonymous
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            known = self.users.get(user)
            if known is None or known[0] != password:
                return Reply(401, {}, _errors("UNAUTHORIZED", "bad credentials"))
            granted_actions = known[1]
        access: set[tuple[str, str]] = set()
        for scope in query.get("scope", []):
            _type, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access |= {(name, a) for a in actions.split(",") if a in granted_actions}
        value = uuid.uuid4().hex
        with self._lock:
            self.tokens[value] = access
        return Reply(200, {}, json.dumps({"token": value, "expires_in": 300}).encode())

    def _wait_for_peers(self) -> None:
        if self.hold_tokens <= 0:
            return
        with self._arrived:
            self._token_waiting += 1
            self._arrived.notify_all()
            self._arrived.wait_for(lambda: self._token_waiting >= self.hold_tokens, timeout=0.5)

    def _authorize(self, request: Request, name: str | None, action: str) -> Reply | None:
        scope = f"repository:{name}:{action}" if name else ""
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        params = f'Bearer realm="{REALM}",service="{SERVICE}"'
        if scope:
            params += f',scope="{scope}"'
        if token is None:
            return self._challenge(params)
        access = self.tokens.get(token)
        if access is None:
            return self._challenge(params + ',error="invalid_token"')
        if name is not None and (name, action) not in access:
            return self._challenge(params + ',error="insufficient_scope"')
        return None

    @staticmethod
    def _challenge(value: str) -> Reply:
        body = _errors("UNAUTHORIZED", "authentication required")
        return Reply(401, {"WWW-Authenticate": value}, body)

    # --- manifests and blobs ----------------------------------------------------------

    def _manifest(self, request: Request, name: str, ref: str) -> Reply:
        stored = self.manifests.setdefault(name, {})
        if request.method == "PUT":
            raw = request_body(request)
            digest = "sha256:" + hashlib.sha256(raw).hexdigest()
            media_type = request.headers.get("Content-Type", "")
            stored[ref] = stored[digest] = (media_type, raw)
            return Reply(201, {"Docker-Content-Digest": digest}, b"")
        if ref not in stored:
            return Reply(404, {}, _errors("MANIFEST_UNKNOWN", "manifest unknown"))
        media_type, raw = stored[ref]
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        headers = {
            "Content-Type": media_type,
            "Docker-Content-Digest": digest,
            "Content-Length": str(len(raw)),
        }
        return Reply(200, headers, b"" if request.method == "HEAD" else raw)

    def _blob(self, request: Request, name: str, digest: str) -> Reply:
        if digest not in self.repo_blobs.get(name, set()):
            return Reply(404, {}, _errors("BLOB_UNKNOWN", "blob unknown"))
        data = self.blobs[digest]
        if request.method == "HEAD":
            return Reply(200, {"Content-Length": str(len(data))}, b"")
        start, status = 0, 200
        headers = {"Docker-Content-Digest": digest}
        ranged = request.headers.get("Range", "")
        if ranged.startswith("bytes="):
            start, status = int(ranged[6:].rstrip("-")), 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        headers["Content-Length"] = str(len(data) - start)
        drop = self.drop_blob_after.pop(0) if self.drop_blob_after else None
        return Reply(status, headers, _chunks(data[start:], drop))

    # --- uploads ----------------------------------------------------------------------

    def _upload(
        self, request: Request, name: str, ident: str, query: dict[str, list[str]]
    ) -> Reply:
        if request.method == "POST" and not ident:
            mount, source = query.get("mount", [""])[0], query.get("from", [""])[0]
            if mount and mount in self.repo_blobs.get(source, set()):
                self.repo_blobs.setdefault(name, set()).add(mount)
                return Reply(201, {"Location": f"/v2/{name}/blobs/{mount}"}, b"")
            ident = uuid.uuid4().hex
            self.uploads[ident] = _Upload(name)
            return Reply(202, self._where(name, ident, 0), b"")
        upload = self.uploads.get(ident)
        if upload is None or (request.method in ("PATCH", "PUT") and self._lose(ident)):
            return Reply(404, {}, _errors("BLOB_UPLOAD_UNKNOWN", "upload unknown"))
        if request.method == "GET":
            if upload.broken:
                return Reply(400, {}, _errors("BLOB_UPLOAD_INVALID", "stored size changed"))
            return Reply(204, self._where(name, ident, len(upload.data)), b"")
        content_range = request.headers.get("Content-Range")
        if content_range is not None and int(content_range.split("-")[0]) != len(upload.data):
            return Reply(416, {}, _errors("BLOB_UPLOAD_INVALID", "out of order"))
        if request.method == "PATCH":
            self._receive(request, upload)
            return Reply(202, self._where(name, ident, len(upload.data)), b"")
        upload.data += request_body(request)
        digest = query.get("digest", [""])[0]
        actual = "sha256:" + hashlib.sha256(upload.data).hexdigest()
        if digest != actual:
            return Reply(400, {}, _errors("DIGEST_INVALID", "digest mismatch"))
        del self.uploads[ident]
        self.put_blob(name, bytes(upload.data))
        return Reply(
            201, {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest}
        )

    def _receive(self, request: Request, upload: _Upload) -> None:
        drop = self.drop_patch_after.pop(0) if self.drop_patch_after else None
        if drop is None:
            upload.data += request_body(request)
            return
        body = request.body
        assert body is not None and not isinstance(body, bytes)
        for chunk in body:
            take = min(len(chunk), drop)
            upload.data += bytes(chunk)[:take]
            drop -= take
            if drop <= 0:
                break
        upload.broken = self.drop_breaks_session
        raise ConnectionDropped("connection to registry.test broke: reset by peer")

    def _lose(self, ident: str) -> bool:
        if self.lose_uploads <= 0:
            return False
        self.lose_uploads -= 1
        del self.uploads[ident]
        return True

    @staticmethod
    def _where(name: str, ident: str, size: int) -> dict[str, str]:
        return {
            "Location": f"/v2/{name}/blobs/uploads/{ident}?_state={uuid.uuid4().hex[:8]}",
            "Range": f"0-{max(size - 1, 0)}",
            "Docker-Upload-UUID": ident,
        }


def _chunks(data: bytes, drop_after: int | None) -> Iterator[bytes]:
    view = memoryview(data)
    sent = 0
    while sent < len(view):
        end = min(len(view), sent + CHUNK)
        if drop_after is not None and end > drop_after:
            end = drop_after
            if end > sent:
                yield bytes(view[sent:end])
            raise ConnectionDropped("connection to registry.test broke: reset by peer")
        yield bytes(view[sent:end])
        sent = end
