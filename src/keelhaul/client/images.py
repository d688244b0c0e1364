"""Deterministic synthetic images: the same spec gives the same bytes and digests. Pure.

Each layer is a gzip'd tar holding one file of pseudo-random bytes: an AES-256-CTR keystream
keyed by the seed, the platform and the layer's index (fast, and any two layers differ).
``compressible`` maps those bytes onto a 16-symbol alphabet (4 bits of entropy per byte,
gzip level 1 halves it); otherwise the data cannot be compressed and gzip stores it
(level 0), as real compressors end up doing with random data, at disk speed. Timestamps,
owners and the gzip header are fixed. Several platforms give one image per platform under
an OCI index.

Blobs go to a :class:`BlobStore` as chunk streams, so a 256 MiB layer never sits in memory
when it is written to an OCI layout; :class:`MemoryStore` keeps them for small images.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from keelhaul.client.blobs import BytesSource
from keelhaul.client.media import (
    DEFAULT_PLATFORM,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Descriptor,
    Manifest,
    Platform,
    parse_manifest,
)
from keelhaul.errors import BlobNotFound

__all__ = [
    "BlobStore",
    "BuiltImage",
    "ImageSpec",
    "MemoryStore",
    "build",
    "build_image",
    "canonical_json",
]

EPOCH = "1970-01-01T00:00:00Z"
BLOCK = 1 << 20
RECORD = tarfile.RECORDSIZE
_ZERO_BLOCK = bytes(BLOCK)
_LOW_ENTROPY = bytes.maketrans(bytes(range(256)), b"abcdefghijklmno\n" * 16)


class BlobStore(Protocol):
    def add(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        """Store a blob given as chunks; returns ``(sha256 digest, size)``."""
        ...


@dataclass(frozen=True)
class ImageSpec:
    layers: int = 1
    layer_size: int = BLOCK
    seed: int = 0
    compressible: bool = False
    platforms: tuple[Platform, ...] = (DEFAULT_PLATFORM,)

    def __post_init__(self) -> None:
        if self.layers < 1:
            raise ValueError("layers must be at least 1")
        if self.layer_size < 0:
            raise ValueError("layer_size must not be negative")
        if not self.platforms:
            raise ValueError("at least one platform is needed")
        if len(set(self.platforms)) != len(self.platforms):
            raise ValueError("platforms must not repeat")


def canonical_json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _payload(spec: ImageSpec, platform: Platform, index: int) -> Iterator[bytes]:
    key = hashlib.sha256(f"keelhaul:{spec.seed}:{platform}:{index}".encode()).digest()
    stream = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
    left = spec.layer_size
    while left > 0:
        n = min(BLOCK, left)
        block = stream.update(_ZERO_BLOCK[:n] if n < BLOCK else _ZERO_BLOCK)
        yield block.translate(_LOW_ENTROPY) if spec.compressible else block
        left -= n


def _tar_stream(name: str, size: int, payload: Iterable[bytes]) -> Iterator[bytes]:
    """What ``tarfile`` writes for one regular file, produced incrementally."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    header = info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
    yield header
    yield from payload
    written = len(header) + size
    pad = -size % tarfile.BLOCKSIZE
    trailer = 2 * tarfile.BLOCKSIZE
    written += pad + trailer
    yield bytes(pad + trailer + (-written % RECORD))


def _layer(spec: ImageSpec, platform: Platform, index: int, diff: Any) -> Iterator[bytes]:
    compressor = zlib.compressobj(1 if spec.compressible else 0, zlib.DEFLATED, 31)
    tar = _tar_stream(
        f"keelhaul/layer-{index}.bin", spec.layer_size, _payload(spec, platform, index)
    )
    for chunk in tar:
        diff.update(chunk)
        out = compressor.compress(chunk)
        if out:
            yield out
    yield compressor.flush()


def _image(spec: ImageSpec, platform: Platform, store: BlobStore) -> Manifest:
    layers: list[Descriptor] = []
    diff_ids: list[str] = []
    for index in range(spec.layers):
        diff = hashlib.sha256()
        digest, size = store.add(_layer(spec, platform, index, diff))
        diff_ids.append(f"sha256:{diff.hexdigest()}")
        layers.append(Descriptor(OCI_LAYER_GZIP, digest, size))
    config_doc: dict[str, Any] = {
        **platform.to_json(),
        "created": EPOCH,
        "config": {"Labels": {"org.opencontainers.image.title": f"keelhaul-{spec.seed}"}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [
            {"created": EPOCH, "created_by": f"keelhaul image build layer {i}"}
            for i in range(spec.layers)
        ],
    }
    config_raw = canonical_json(config_doc)
    config_digest, config_size = store.add([config_raw])
    raw = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": Descriptor(OCI_CONFIG, config_digest, config_size).to_json(),
            "layers": [layer.to_json() for layer in layers],
        }
    )
    digest, _ = store.add([raw])
    return parse_manifest(raw, OCI_MANIFEST, digest)


def build(spec: ImageSpec, store: BlobStore) -> tuple[Manifest, tuple[Manifest, ...]]:
    """Write every blob to ``store``; returns ``(root, image manifests)``."""
    images = tuple(_image(spec, platform, store) for platform in spec.platforms)
    if len(images) == 1:
        return images[0], images
    raw = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                Descriptor(m.media_type, m.digest, len(m.raw), platform).to_json()
                for m, platform in zip(images, spec.platforms, strict=True)
            ],
        }
    )
    digest, _ = store.add([raw])
    return parse_manifest(raw, OCI_INDEX, digest), images


class MemoryStore:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def add(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        data = b"".join(chunks)
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        self.blobs[digest] = data
        return digest, len(data)


@dataclass(frozen=True)
class BuiltImage:
    """An image held in memory; pushable as is (an :class:`ImageSource`)."""

    root: Manifest
    images: tuple[Manifest, ...]
    contents: dict[str, bytes] = field(repr=False)

    @property
    def digest(self) -> str:
        return self.root.digest

    def data(self, digest: str) -> bytes:
        try:
            return self.contents[digest]
        except KeyError:
            raise BlobNotFound(f"blob {digest} is not part of this image") from None

    def blob(self, descriptor: Descriptor) -> BytesSource:
        return BytesSource(self.data(descriptor.digest))

    def layer_data(self) -> list[bytes]:
        return [self.data(d.digest) for m in self.images for d in m.layers]

    def config_data(self, index: int = 0) -> bytes:
        config = self.images[index].config
        assert config is not None
        return self.data(config.digest)


def build_image(
    *,
    layers: int = 1,
    layer_size: int = BLOCK,
    seed: int = 0,
    compressible: bool = False,
    platforms: tuple[Platform, ...] = (DEFAULT_PLATFORM,),
) -> BuiltImage:
    """A synthetic image in memory, for small images (tests, the load kit)."""
    store = MemoryStore()
    spec = ImageSpec(layers, layer_size, seed, compressible, platforms)
    root, images = build(spec, store)
    return BuiltImage(root, images, store.blobs)
