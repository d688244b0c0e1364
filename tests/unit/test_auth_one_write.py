"""One write per response: the status line and headers wait for the body's first write."""

from __future__ import annotations

import socket

import pytest

from keelhaul.auth.workers import OneWriteSocket

pytestmark = pytest.mark.unit


class Recording:
    """The socket edge: records each ``sendall`` and passes it to a real socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.writes: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.writes.append(data)
        self.sock.sendall(data)

    def fileno(self) -> int:
        return self.sock.fileno()

    def sendfile(self, *args: object) -> int:
        raise AssertionError("not called in these tests")


def _pair() -> tuple[Recording, socket.socket]:
    left, right = socket.socketpair()
    return Recording(left), right


def test_headers_go_with_the_first_body_write_and_later_writes_pass_through() -> None:
    raw, peer = _pair()
    out = OneWriteSocket(raw)
    out.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
    assert raw.writes == []
    out.sendall(b"body-1")
    out.sendall(b"body-2")
    out.flush()
    assert raw.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody-1", b"body-2"]
    assert peer.recv(100) == b"HTTP/1.1 200 OK\r\n\r\nbody-1body-2"
    raw.sock.close()
    peer.close()


def test_a_response_without_a_body_is_flushed_and_sendfile_gets_the_headers_first() -> None:
    raw, peer = _pair()
    out = OneWriteSocket(raw)
    out.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
    out.flush()
    out.flush()
    assert raw.writes == [b"HTTP/1.1 204 No Content\r\n\r\n"]
    again = OneWriteSocket(raw)
    again.sendall(b"HEAD")
    assert again.fileno() == raw.fileno()
    assert raw.writes[-1] == b"HEAD"
    assert peer.recv(100) == b"HTTP/1.1 204 No Content\r\n\r\nHEAD"
    third = OneWriteSocket(raw)
    third.sendall(b"headers;")
    assert third.sendfile is not None  # gunicorn's sendfile path: flushed before it writes
    assert raw.writes[-1] == b"headers;"
    raw.sock.close()
    peer.close()
