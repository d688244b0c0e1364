"""RegistryClient over httpx against the real stack: uploads, mounts, paging, auth, damage."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from keelhaul.client.blobs import BytesSink, BytesSource
from keelhaul.client.httpx_transport import HttpxTransport
from keelhaul.client.images import build_image
from keelhaul.client.layout import LayoutWriter
from keelhaul.client.media import Descriptor, parse_platform
from keelhaul.client.registry import RegistryClient
from keelhaul.client.tokens import Credentials
from keelhaul.client.transport import Request, Response
from keelhaul.errors import (
    ConnectionDropped,
    DigestMismatch,
    ManifestNotFound,
    RegistryDenied,
    RegistryUnauthorized,
)

if TYPE_CHECKING:
    from support.stacks import StackInfo

pytestmark = pytest.mark.e2e

MIB = 1 << 20


class Recording:
    """The real transport, with a log of (request name, status) for assertions."""

    def __init__(self, inner: HttpxTransport) -> None:
        self.inner = inner
        self.sent: list[tuple[str, int]] = []
        self.drop: tuple[int, int] | None = None
        """(n, after): the n-th PATCH (from 1) loses its connection after ``after`` bytes."""

    def send(self, request: Request) -> Response:
        if request.name == "upload PATCH" and self.drop is not None:
            nth, after = self.drop
            if self.count("upload PATCH") + 1 == nth:
                request = dataclasses.replace(request, body=_Breaking(request, after))
                self.drop = None
        response = self.inner.send(request)
        self.sent.append((request.name, response.status))
        return response

    def count(self, name: str) -> int:
        return sum(1 for n, _ in self.sent if n == name)

    def close(self) -> None:
        self.inner.close()


class _Breaking:
    """A request body whose connection 'drops' after ``after`` bytes."""

    def __init__(self, request: Request, after: int) -> None:
        assert request.body is not None and not isinstance(request.body, bytes)
        self.body = request.body
        self.after = after

    def __len__(self) -> int:
        return len(self.body)

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        for chunk in self.body:
            if sent + len(chunk) >= self.after:
                if self.after > sent:
                    yield chunk[: self.after - sent]
                raise ConnectionDropped("simulated: the connection dropped mid-PATCH")
            sent += len(chunk)
            yield chunk


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


MakeClient = Callable[..., tuple[RegistryClient, Recording]]


@pytest.fixture
def make_client(stack: StackInfo) -> Iterator[MakeClient]:
    made: list[RegistryClient] = []

    def make(user: str | None = "admin", **kwargs: object) -> tuple[RegistryClient, Recording]:
        transport = Recording(HttpxTransport(timeout=30))
        creds = Credentials(user, stack.password(user), source="test") if user else None
        client = RegistryClient(
            transport,
            stack.host,
            credentials=creds,
            plain_http=True,
            **kwargs,  # type: ignore[arg-type]
        )
        made.append(client)
        return client, transport

    yield make
    for client in made:
        client.close()


def _random(size: int, seed: int) -> bytes:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = hashlib.sha256(f"e2e-{seed}".encode()).digest()
    return Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor().update(bytes(size))


def _blob(data: bytes) -> tuple[str, Descriptor]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return digest, Descriptor("application/octet-stream", digest, len(data))


def test_chunked_upload_of_64_mib(make_client: MakeClient) -> None:
    client, transport = make_client(chunk_size=8 * MIB, monolithic_max=MIB)
    data = _random(64 * MIB, 1)
    digest, descriptor = _blob(data)
    assert client.upload_blob("admin/chunked", digest, BytesSource(data)) == "uploaded"
    assert transport.count("upload PATCH") == 8
    assert transport.count("upload PUT") == 1
    assert client.blob_size("admin/chunked", digest) == 64 * MIB
    size = client.get_blob("admin/chunked", descriptor)  # hashed on the way, then discarded
    assert size == 64 * MIB
    again = client.upload_blob("admin/chunked", digest, BytesSource(data))
    assert again == "exists"
    assert transport.count("upload PATCH") == 8


def test_upload_resumes_from_the_registrys_range(make_client: MakeClient) -> None:
    """The connection drops as the 2nd PATCH starts: the session is intact, the registry
    says it holds the first chunk, and only the rest is sent."""
    client, transport = make_client(chunk_size=4 * MIB, monolithic_max=MIB)
    data = _random(10 * MIB, 2)
    digest, descriptor = _blob(data)
    transport.drop = (2, 0)
    assert client.upload_blob("admin/resume", digest, BytesSource(data)) == "uploaded"
    assert ("upload status", 204) in transport.sent
    assert transport.count("upload start") == 1
    assert transport.count("upload PATCH") == 3  # chunks 1, 2 (again) and 3; not chunk 1 again
    sink = BytesSink()
    client.get_blob("admin/resume", descriptor, sink)
    assert sink.data == data


def test_upload_restarts_when_the_session_is_lost(make_client: MakeClient) -> None:
    """Dropped mid-body, distribution's session no longer matches its signed state: it
    answers the status request with 404, or, when the status request overtakes the broken
    PATCH (the registry still reading it), the next PATCH with 400 BLOB_UPLOAD_INVALID or,
    once the broken PATCH has ended the session, 404 BLOB_UPLOAD_UNKNOWN; each time the
    upload starts over in a new session, once."""
    client, transport = make_client(chunk_size=4 * MIB, monolithic_max=MIB)
    data = _random(10 * MIB, 3)
    digest, descriptor = _blob(data)
    transport.drop = (1, 3 * MIB)
    assert client.upload_blob("admin/restart", digest, BytesSource(data)) == "uploaded"
    assert transport.count("upload status") == 1
    lost = {("upload status", 404), ("upload PATCH", 400), ("upload PATCH", 404)}
    assert lost & set(transport.sent), transport.sent
    assert transport.count("upload start") == 2
    sink = BytesSink()
    client.get_blob("admin/restart", descriptor, sink)
    assert sink.data == data


def test_mount_between_repositories(make_client: MakeClient) -> None:
    client, transport = make_client()
    data = _random(2 * MIB, 4)
    digest, _ = _blob(data)
    assert client.upload_blob("admin/mount-src", digest, BytesSource(data)) == "uploaded"
    outcome = client.upload_blob(
        "admin/mount-dst", digest, BytesSource(data), mount_from="admin/mount-src"
    )
    assert outcome == "mounted"
    assert client.blob_size("admin/mount-dst", digest) == len(data)
    assert ("upload start", 201) in transport.sent


def test_catalog_spans_several_pages(make_client: MakeClient) -> None:
    client, transport = make_client()
    image = build_image(layer_size=1024, seed=501)
    repos = [f"admin/paged-{i}" for i in range(3)]
    for repo in repos:
        client.push_image(repo, "t0", image)
    for i in range(1, 7):
        client.put_manifest(repos[0], f"t{i}", image.root.raw, image.root.media_type)
    # docker-registry 2.8 ignores ?n= on tags/list (pagination came with distribution 3):
    # one page here; test_client_tags_paging.py pages tags through a server that does paginate
    tags = client.tags(repos[0], page_size=3)
    assert sorted(tags) == [f"t{i}" for i in range(7)]
    catalog = client.catalog(page_size=2)
    assert set(repos) <= set(catalog)
    assert catalog == sorted(catalog) and len(catalog) == len(set(catalog))
    assert transport.count("catalog") >= (len(catalog) + 1) // 2
    assert client.catalog() == catalog


def test_delete_then_not_found(make_client: MakeClient) -> None:
    client, _ = make_client()
    image = build_image(layer_size=512, seed=502)
    pushed = client.push_image("admin/deleted", "gone", image)
    client.delete_manifest("admin/deleted", pushed.digest)
    with pytest.raises(ManifestNotFound):
        client.head_manifest("admin/deleted", "gone")


def test_multi_platform_push_and_pull(make_client: MakeClient, tmp_path: Path) -> None:
    client, _ = make_client()
    platforms = (parse_platform("linux/amd64"), parse_platform("linux/arm64"))
    image = build_image(layer_size=4096, seed=503, platforms=platforms)
    client.push_image("admin/multi", "1", image)
    arm = client.pull_image("admin/multi", "1", platform=platforms[1])
    assert arm.digest == image.images[1].digest and arm.platforms == ("linux/arm64",)
    everything = client.pull_image(
        "admin/multi", "1", layout=LayoutWriter(tmp_path / "all"), all_platforms=True
    )
    assert everything.digest == image.digest
    assert everything.manifests == tuple(m.digest for m in image.images)


def test_expired_token_is_refreshed_transparently(make_client: MakeClient) -> None:
    clock = Clock()
    client, transport = make_client(clock=clock)
    image = build_image(layer_size=512, seed=504)
    client.push_image("admin/expiry", "1", image)
    tokens = transport.count("token")
    client.pull_image("admin/expiry", "1")
    assert transport.count("token") == tokens  # pull,push token still good for a pull
    clock.now += 3600
    client.pull_image("admin/expiry", "1")
    assert transport.count("token") == tokens + 1
    assert all(status != 401 for name, status in transport.sent if name == "manifest GET")


def test_rejected_token_gives_one_reauth_and_retry(make_client: MakeClient) -> None:
    client, transport = make_client()
    image = build_image(layer_size=512, seed=505)
    client.push_image("admin/invalid", "1", image)
    for key, token in list(client.auth._tokens.items()):
        client.auth._tokens[key] = dataclasses.replace(token, value=token.value[:-8] + "AAAAAAAA")
    before = len(transport.sent)
    client.head_manifest("admin/invalid", "1")
    assert transport.sent[before:] == [
        ("manifest HEAD", 401),
        ("token", 200),
        ("manifest HEAD", 200),
    ]


def test_denied_and_unauthorized(make_client: MakeClient, stack: StackInfo) -> None:
    admin, _ = make_client()
    image = build_image(layer_size=512, seed=506)
    admin.push_image("admin/private", "1", image)
    admin.push_image("public/open", "1", image)
    reader, _ = make_client("reader")
    assert reader.pull_image("admin/private", "1").digest == image.digest
    with pytest.raises(RegistryDenied, match=r"reader .from test. may not pull/push admin/private"):
        reader.push_image("admin/private", "2", image)
    anonymous, _ = make_client(None)
    assert anonymous.pull_image("public/open", "1").digest == image.digest
    with pytest.raises(RegistryUnauthorized, match="authentication required"):
        anonymous.pull_image("admin/private", "1")
    wrong = RegistryClient(
        HttpxTransport(),
        stack.host,
        credentials=Credentials("admin", "not-the-password", source="test"),
        plain_http=True,
    )
    with wrong, pytest.raises(RegistryUnauthorized, match="rejected the credentials of admin"):
        wrong.tags("admin/private")


def test_oauth2_post_and_refresh_token(make_client: MakeClient) -> None:
    client, transport = make_client(token_method="post")
    image = build_image(layer_size=512, seed=507)
    client.push_image("admin/oauth", "1", image)
    assert client.auth.refresh_token
    client.auth._tokens.clear()
    tokens = transport.count("token")
    assert client.get_token(("repository:admin/oauth:pull",), reuse=False)
    assert client.tags("admin/oauth") == ["1"]
    assert transport.count("token") == tokens + 1  # the refresh grant's token serves the listing
    password = client.auth.credentials.password
    assert password and password not in repr(client.auth.credentials)


def test_corrupted_blob_is_a_digest_mismatch_and_nothing_is_kept(
    make_client: MakeClient, stack: StackInfo, tmp_path: Path
) -> None:
    client, _ = make_client()
    image = build_image(layers=2, layer_size=256 * 1024, seed=508)
    client.push_image("admin/corrupt", "1", image)
    victim = image.root.layers[1].digest.removeprefix("sha256:")
    data = stack.dir / "data/docker/registry/v2/blobs/sha256" / victim[:2] / victim / "data"
    with data.open("r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x00corrupted\x00")
    out = tmp_path / "out"
    with pytest.raises(DigestMismatch, match="nothing was kept") as info:
        client.pull_image("admin/corrupt", "1", layout=LayoutWriter(out))
    assert info.value.expected == image.root.layers[1].digest
    kept = {p.name for p in (out / "blobs" / "sha256").iterdir()}
    assert victim not in kept
    assert not [name for name in kept if name.startswith(".")]  # no partial file either
    assert not (out / "index.json").exists()


def test_blob_download_survives_nothing_but_reports_unreachable(stack: StackInfo) -> None:
    from keelhaul.errors import RegistryUnreachable
    from keelhaul.netutil import free_port

    client = RegistryClient(HttpxTransport(), f"127.0.0.1:{free_port()}", plain_http=True)
    with client, pytest.raises(RegistryUnreachable, match="cannot reach"):
        client.ping()
    assert os.environ.get("KEELHAUL_REGISTRY_USERNAME") is None
