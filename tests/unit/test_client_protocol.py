"""The client's request loops over a fake registry: challenge -> token -> retry, single-flight
token fetches, ``Range`` resume, upload resume and restart (the real client code; only the
transport is fake, see ``fake_registry``)."""

from __future__ import annotations

import threading

import pytest

from keelhaul.client.blobs import BytesSink, BytesSource, Cancelled
from keelhaul.client.digest import digest_of
from keelhaul.client.images import build_image
from keelhaul.client.media import Descriptor
from keelhaul.client.mock_transport import MockTransport
from keelhaul.client.registry import RegistryClient
from keelhaul.client.tokens import Credentials
from keelhaul.errors import (
    ConnectionDropped,
    DigestMismatch,
    RegistryDenied,
    RegistryUnauthorized,
)
from support.fake_registry import HOST, FakeRegistry

pytestmark = pytest.mark.unit

ALICE = Credentials("alice", "pw", source="test")
REPO = "team/app"


def _client(
    registry: FakeRegistry, creds: Credentials | None = ALICE, **kw: object
) -> tuple[RegistryClient, MockTransport]:
    transport = registry.transport()
    client = RegistryClient(transport, HOST, credentials=creds, plain_http=True, **kw)  # type: ignore[arg-type]
    return client, transport


def _blob(registry: FakeRegistry, size: int, seed: int = 1) -> tuple[bytes, Descriptor]:
    data = bytes((i * seed + i // 251) % 256 for i in range(size))
    digest = registry.put_blob(REPO, data)
    return data, Descriptor("application/octet-stream", digest, size)


# --- challenge -> token -> retry --------------------------------------------------------------


def test_challenge_then_token_then_retry_and_the_token_is_reused() -> None:
    registry = FakeRegistry()
    client, transport = _client(registry)
    image = build_image(layers=2, layer_size=10_000, seed=3)
    result = client.push_image(REPO, "1.0", image)
    assert result.count("uploaded") == 3
    pulled = client.pull_image(REPO, "1.0")
    assert pulled.digest == image.digest and pulled.blobs == 3
    names = transport.names()
    # the probe learns the challenge; the push's token covers pull: one token in all
    assert names[:2] == ["ping", "token"]
    assert names.count("token") == 1
    assert all(e.status != 401 for e in transport.log[2:])


def test_a_request_without_a_known_challenge_collects_a_401_first() -> None:
    registry = FakeRegistry()
    _, descriptor = _blob(registry, 1000)
    client, transport = _client(registry)
    client.get_blob(REPO, descriptor)
    statuses = [(e.name, e.status) for e in transport.log]
    assert statuses == [("blob GET", 401), ("token", 200), ("blob GET", 200)]
    token_request = transport.log[1]
    assert "scope=repository%3Ateam%2Fapp%3Apull" in token_request.url
    assert token_request.headers["Authorization"].startswith("Basic ")
    assert transport.log[2].headers["Authorization"].startswith("Bearer ")


def test_a_revoked_token_is_dropped_and_replaced_once() -> None:
    registry = FakeRegistry()
    _, descriptor = _blob(registry, 1000)
    client, transport = _client(registry)
    client.get_blob(REPO, descriptor)
    registry.revoke_all()
    client.get_blob(REPO, descriptor)
    assert [(e.name, e.status) for e in transport.log[3:]] == [
        ("blob GET", 401),
        ("token", 200),
        ("blob GET", 200),
    ]


def test_insufficient_scope_after_a_fresh_token_is_a_denial_not_a_loop() -> None:
    registry = FakeRegistry(users={"bob": ("pw", frozenset({"pull"}))})
    client, transport = _client(registry, Credentials("bob", "pw", source="test"))
    with pytest.raises(RegistryDenied, match="bob"):
        client.upload_blob(REPO, digest_of(b"x"), BytesSource(b"x"), check_exists=False)
    assert transport.names().count("token") == 1


def test_wrong_password_and_anonymous_are_unauthorized() -> None:
    registry = FakeRegistry()
    _, descriptor = _blob(registry, 10)
    client, _ = _client(registry, Credentials("alice", "nope", source="test"))
    with pytest.raises(RegistryUnauthorized, match="rejected the credentials of alice"):
        client.get_blob(REPO, descriptor)
    anonymous, _ = _client(registry, None)
    with pytest.raises(RegistryUnauthorized, match="authentication required"):
        anonymous.get_blob(REPO, descriptor)


def test_anonymous_pull_where_the_token_service_allows_it() -> None:
    registry = FakeRegistry(anonymous=frozenset({"pull"}))
    data, descriptor = _blob(registry, 5000)
    client, transport = _client(registry, None)
    sink = BytesSink()
    client.get_blob(REPO, descriptor, sink)
    assert sink.data == data
    assert "Authorization" not in transport.log[1].headers


def test_parallel_requests_share_one_token_fetch() -> None:
    """Eight threads find no token at once: one fetch, the others wait for it. Without the
    single flight, the fake holds each token request until all eight arrived."""
    registry = FakeRegistry(hold_tokens=8)
    descriptors = [_blob(registry, 2000, seed=s)[1] for s in range(1, 9)]
    client, transport = _client(registry)
    errors: list[BaseException] = []

    def pull(descriptor: Descriptor) -> None:
        try:
            client.get_blob(REPO, descriptor)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=pull, args=(d,)) for d in descriptors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert transport.names().count("token") == 1
    assert transport.names().count("blob GET") >= 8


# --- Range resume --------------------------------------------------------------------------


def test_a_dropped_download_resumes_with_range_and_verifies() -> None:
    registry = FakeRegistry()
    data, descriptor = _blob(registry, 300_000)
    registry.drop_blob_after = [100_000, 50_000]
    client, transport = _client(registry)
    sink = BytesSink()
    assert client.get_blob(REPO, descriptor, sink) == len(data)
    assert sink.data == data
    gets = [e for e in transport.log if e.name == "blob GET" and e.status != 401]
    assert [e.headers.get("Range") for e in gets] == [None, "bytes=100000-", "bytes=150000-"]
    assert [e.status for e in gets] == [200, 206, 206]


def test_too_many_drops_give_up_and_keep_nothing() -> None:
    registry = FakeRegistry()
    _, descriptor = _blob(registry, 300_000)
    registry.drop_blob_after = [1000, 1000, 1000]
    client, _ = _client(registry, max_resumes=2)
    sink = BytesSink()
    with pytest.raises(ConnectionDropped):
        client.get_blob(REPO, descriptor, sink)
    assert sink.data is None


def test_a_blob_that_does_not_match_its_digest_is_not_kept() -> None:
    registry = FakeRegistry()
    data, descriptor = _blob(registry, 70_000)
    registry.blobs[descriptor.digest] = data[:-1] + b"\0"
    client, _ = _client(registry)
    sink = BytesSink()
    with pytest.raises(DigestMismatch, match="nothing was kept"):
        client.get_blob(REPO, descriptor, sink)
    assert sink.data is None


def test_a_cancelled_download_stops_and_keeps_nothing() -> None:
    registry = FakeRegistry()
    _, descriptor = _blob(registry, 300_000)
    client, _ = _client(registry)
    sink = BytesSink()
    with pytest.raises(Cancelled):
        client.get_blob(REPO, descriptor, sink, cancelled=lambda: True)
    assert sink.data is None


# --- upload resume and restart --------------------------------------------------------------


def _chunked_client(registry: FakeRegistry) -> tuple[RegistryClient, MockTransport]:
    return _client(registry, chunk_size=40_000, monolithic_max=1000)


def test_a_dropped_patch_resumes_from_the_registrys_range() -> None:
    registry = FakeRegistry(drop_breaks_session=False, drop_patch_after=[15_000])
    data = bytes(range(256)) * 400  # 102,400 bytes: 3 chunks of 40,000
    client, transport = _chunked_client(registry)
    assert client.upload_blob(REPO, digest_of(data), BytesSource(data)) == "uploaded"
    assert registry.blobs[digest_of(data)] == data
    patches = [e.headers["Content-Range"] for e in transport.log if e.name == "upload PATCH"]
    assert patches == ["0-39999", "15000-54999", "55000-94999", "95000-102399"]
    assert transport.names().count("upload status") == 1
    assert transport.names().count("upload start") == 1


def test_a_broken_session_restarts_the_upload() -> None:
    """distribution refuses a session whose stored size changed under a broken request
    (BLOB_UPLOAD_INVALID): the client starts over in a new session."""
    registry = FakeRegistry(drop_patch_after=[15_000])
    data = bytes(range(256)) * 400
    client, transport = _chunked_client(registry)
    assert client.upload_blob(REPO, digest_of(data), BytesSource(data)) == "uploaded"
    assert registry.blobs[digest_of(data)] == data
    assert transport.names().count("upload start") == 2
    statuses = [e.status for e in transport.log if e.name == "upload status"]
    assert statuses == [400]


def test_a_lost_session_restarts_and_gives_up_after_max_resumes() -> None:
    registry = FakeRegistry(lose_uploads=1)
    data = bytes(range(256)) * 400
    client, transport = _chunked_client(registry)
    assert client.upload_blob(REPO, digest_of(data), BytesSource(data)) == "uploaded"
    assert transport.names().count("upload start") == 2
    stubborn = FakeRegistry(lose_uploads=10)
    client, _ = _chunked_client(stubborn)
    with pytest.raises(Exception, match="lost the upload session 4 times"):
        client.upload_blob(REPO, digest_of(data), BytesSource(data))


def test_a_present_blob_is_skipped_and_another_repositorys_is_mounted() -> None:
    registry = FakeRegistry()
    data, descriptor = _blob(registry, 3000)
    client, transport = _client(registry)
    assert client.upload_blob(REPO, descriptor.digest, BytesSource(data)) == "exists"
    outcome = client.upload_blob(
        "team/other", descriptor.digest, BytesSource(data), mount_from=REPO
    )
    assert outcome == "mounted"
    assert "upload PATCH" not in transport.names()
