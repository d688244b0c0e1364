"""Tags pagination end to end over HTTP, against a server that paginates them.

docker-registry 2.8 (the stack's) answers ``tags/list`` in one page whatever ``n`` says;
the OCI distribution spec (and distribution 3, Harbor, Zot) page it with ``n``/``last`` and
a ``Link`` header. This loopback server implements exactly that part of the spec, so the
client's paging is exercised over real HTTP; the catalog's paging runs against the real
registry in test_client_registry.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from keelhaul.client.httpx_transport import HttpxTransport
from keelhaul.client.registry import RegistryClient
from keelhaul.errors import RepositoryNotFound

pytestmark = pytest.mark.e2e

TAGS = sorted(f"v{i:02d}" for i in range(11))


class _Handler(BaseHTTPRequestHandler):
    pages: list[str]

    def log_message(self, format: str, *args: object) -> None:
        return

    def _send(self, status: int, body: dict[str, object], link: str | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if link:
            self.send_header("Link", link)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        self.server.pages.append(self.path)  # type: ignore[attr-defined]
        if url.path == "/v2/":
            self._send(200, {})
            return
        if url.path != "/v2/team/app/tags/list":
            self._send(404, {"errors": [{"code": "NAME_UNKNOWN", "message": "unknown"}]})
            return
        query = parse_qs(url.query)
        n = int(query.get("n", ["1000"])[0])
        last = query.get("last", [""])[0]
        rest = [t for t in TAGS if t > last]
        page = rest[:n]
        link = None
        if len(rest) > n:
            link = f'</v2/team/app/tags/list?{urlencode({"n": n, "last": page[-1]})}>; rel="next"'
        self._send(200, {"name": "team/app", "tags": page}, link)


@pytest.fixture
def paging_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.pages = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_tags_follow_link_headers_across_pages(paging_server: ThreadingHTTPServer) -> None:
    host = f"127.0.0.1:{paging_server.server_address[1]}"
    with RegistryClient(HttpxTransport(), host, plain_http=True) as client:
        assert client.tags("team/app", page_size=4) == TAGS
        pages = list(paging_server.pages)  # type: ignore[attr-defined]
        assert pages == [
            "/v2/team/app/tags/list?n=4",
            "/v2/team/app/tags/list?n=4&last=v03",
            "/v2/team/app/tags/list?n=4&last=v07",
        ]
        assert client.tags("team/app") == TAGS  # one page when n is not given
        with pytest.raises(RepositoryNotFound, match=f"{host}/team/other"):
            client.tags("team/other")
