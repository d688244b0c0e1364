"""Blob downloads over ``bulk_get`` (http.client) against real HTTP servers on loopback:
keep-alive reuse, a body cut short becomes ``ConnectionDropped`` (and the client resumes
with ``Range``), redirects to storage drop the credentials, errors keep their bodies."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from keelhaul.client.blobs import BytesSink
from keelhaul.client.httpx_transport import HttpxTransport
from keelhaul.client.media import Descriptor
from keelhaul.client.registry import RegistryClient
from keelhaul.client.transport import Request
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
