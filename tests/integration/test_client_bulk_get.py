"""Blob downloads and file-body uploads over ``bulk_get`` (http.client) against real HTTP
servers on loopback: keep-alive reuse, a body cut short becomes ``ConnectionDropped`` (and
the client resumes with ``Range``), redirects to storage drop the credentials, errors keep
their bodies, uploads arrive whole (``sendfile``) and an answer sent before the body was
read is still the answer."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from keelhaul.client.blobfiles import FileSource
from keelhaul.client.blobs import BytesSink
from keelhaul.client.httpx_transport import HttpxTransport
from keelhaul.client.media import Descriptor
from keelhaul.client.registry import RegistryClient
from keelhaul.client.transport import FileBody, Request
from keelhaul.errors import ConnectionDropped, RegistryUnreachable
from keelhaul.netutil import free_port

pytestmark = pytest.mark.integration

BLOB = bytes(range(256)) * 12_000  # 3,072,000 bytes
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()


@dataclass
class Served:
    """What the server saw, and faults to inject."""

    cut_after: list[int] = field(default_factory=list)
    requests: list[tuple[str, str | None, str | None, int]] = field(default_factory=list)
    """(path, Authorization, Range, client port)."""
    redirect_to: str | None = None
    uploads: list[tuple[str, str, int, bytes]] = field(default_factory=list)
    """(method, path, client port, body)."""
    refuse_uploads: bool = False
    """Answer 401 at once, read at most 64 KiB of the body, close (as Go's server does)."""


def _handler(served: Served) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            auth, ranged = self.headers.get("Authorization"), self.headers.get("Range")
            served.requests.append((self.path, auth, ranged, self.client_address[1]))
            if self.path.startswith("/v2/app/blobs/") and served.redirect_to:
                self.send_response(307)
                self.send_header("Location", f"{served.redirect_to}/storage/blob")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path.endswith("/missing"):
                body = b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}'
                self.send_response(404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            start = int(ranged[6:].rstrip("-")) if ranged else 0
            body = BLOB[start:]
            self.send_response(206 if ranged else 200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if served.cut_after:
                self.wfile.write(body[: served.cut_after.pop(0)])
                self.close_connection = True
                return
            self.wfile.write(body)

        def do_PATCH(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if served.refuse_uploads:
                body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
                self.send_response(401)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                self.rfile.read(min(length, 65536))
                self.close_connection = True
                return
            data = self.rfile.read(length)
            served.uploads.append((self.command, self.path, self.client_address[1], data))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_PUT = do_PATCH

    return Handler


@pytest.fixture
def servers() -> Iterator[tuple[str, Served, str, Served]]:
    """A registry-like server and a storage-like one on another origin."""
    running = []
    try:
        pairs = []
        for _ in range(2):
            served = Served()
            server = ThreadingHTTPServer(("127.0.0.1", free_port()), _handler(served))
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            running.append((server, thread))
            pairs.append((f"127.0.0.1:{server.server_address[1]}", served))
        (registry, reg_served), (storage, sto_served) = pairs
        yield registry, reg_served, storage, sto_served
    finally:
        for server, thread in running:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)


def _get(transport: HttpxTransport, url: str, **headers: str) -> tuple[int, bytes]:
    request = Request("GET", url, "blob GET", headers, stream=True, follow_redirects=True)
    with transport.send(request) as response:
        return response.status, b"".join(response.iter_bytes())


def test_keep_alive_connections_are_reused(servers: tuple[str, Served, str, Served]) -> None:
    registry, served, _, _ = servers
    transport = HttpxTransport()
    try:
        for _ in range(3):
            assert _get(transport, f"http://{registry}/v2/app/blobs/x") == (200, BLOB)
    finally:
        transport.close()
    ports = {port for *_, port in served.requests}
    assert len(served.requests) == 3 and len(ports) == 1


def test_a_cut_body_is_a_dropped_connection(servers: tuple[str, Served, str, Served]) -> None:
    registry, served, _, _ = servers
    served.cut_after = [100_000]
    transport = HttpxTransport()
    try:
        with pytest.raises(ConnectionDropped, match="short of the body"):
            _get(transport, f"http://{registry}/v2/app/blobs/x")
        assert _get(transport, f"http://{registry}/v2/app/blobs/x") == (200, BLOB)
    finally:
        transport.close()


def test_the_client_resumes_a_cut_blob_with_range(servers: tuple[str, Served, str, Served]) -> None:
    registry, served, _, _ = servers
    served.cut_after = [1_000_000, 5]
    client = RegistryClient(HttpxTransport(), registry, plain_http=True)
    sink = BytesSink()
    try:
        client.get_blob("app", Descriptor("application/octet-stream", DIGEST, len(BLOB)), sink)
    finally:
        client.close()
    assert sink.data == BLOB
    assert [r[2] for r in served.requests] == [None, "bytes=1000000-", "bytes=1000005-"]


def test_a_redirect_to_another_origin_drops_the_credentials(
    servers: tuple[str, Served, str, Served],
) -> None:
    registry, reg_served, storage, sto_served = servers
    reg_served.redirect_to = f"http://{storage}"
    transport = HttpxTransport()
    try:
        url = f"http://{registry}/v2/app/blobs/x"
        assert _get(transport, url, Authorization="Bearer secret") == (200, BLOB)
    finally:
        transport.close()
    assert reg_served.requests[0][1] == "Bearer secret"
    assert sto_served.requests == [("/storage/blob", None, None, sto_served.requests[0][3])]


def test_an_error_keeps_its_body_and_a_dead_port_is_unreachable(
    servers: tuple[str, Served, str, Served],
) -> None:
    registry, _, _, _ = servers
    transport = HttpxTransport(connect_timeout=5)
    try:
        status, body = _get(transport, f"http://{registry}/v2/app/blobs/missing")
        assert status == 404 and b"BLOB_UNKNOWN" in body
        with pytest.raises(RegistryUnreachable):
            _get(transport, f"http://127.0.0.1:{free_port()}/v2/app/blobs/x")
    finally:
        transport.close()


def _file_body(tmp_path: Path) -> FileBody:
    path = tmp_path / "blob"
    path.write_bytes(BLOB * 4)  # 12 MiB: more than one sendfile piece
    body = FileSource(path, len(BLOB) * 4).body(1000, len(BLOB) * 4)
    assert isinstance(body, FileBody)
    return body


def test_a_file_body_is_uploaded_whole_on_the_bulk_connection(
    servers: tuple[str, Served, str, Served], tmp_path: Path
) -> None:
    registry, served, _, _ = servers
    body = _file_body(tmp_path)
    transport = HttpxTransport()
    try:
        for method in ("PATCH", "PUT"):
            request = Request(method, f"http://{registry}/v2/app/blobs/uploads/u", "up", {}, body)
            with transport.send(request) as response:
                assert response.status == 202
                response.read()
        assert _get(transport, f"http://{registry}/v2/app/blobs/x") == (200, BLOB)
    finally:
        transport.close()
    assert [(m, len(b)) for m, _, _, b in served.uploads] == [
        ("PATCH", len(BLOB) * 4 - 1000),
        ("PUT", len(BLOB) * 4 - 1000),
    ]
    assert all(b == (BLOB * 4)[1000:] for *_, b in served.uploads)
    # one connection for the uploads and the streamed GET: all on the bulk pool
    assert {port for _, _, port, _ in served.uploads} == {served.requests[0][3]}


def test_an_answer_before_the_body_was_read_is_the_answer(
    servers: tuple[str, Served, str, Served], tmp_path: Path
) -> None:
    registry, served, _, _ = servers
    served.refuse_uploads = True
    body = _file_body(tmp_path)
    transport = HttpxTransport()
    try:
        request = Request("PATCH", f"http://{registry}/v2/app/blobs/uploads/u", "up", {}, body)
        with transport.send(request) as response:
            assert response.status == 401
            assert b"UNAUTHORIZED" in response.read()
            response.accept()
        served.refuse_uploads = False
        assert _get(transport, f"http://{registry}/v2/app/blobs/x") == (200, BLOB)
    finally:
        transport.close()
