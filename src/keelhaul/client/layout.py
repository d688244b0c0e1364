"""A deterministic OCI image layout writer: the same arguments give the same digests.

:func:`build_image` is pure (bytes in memory, nothing written); :func:`write_image` puts
its blobs into an OCI image layout directory (``oci-layout``, ``index.json``,
``blobs/sha256/``) that ``skopeo copy oci:DIR:TAG docker://...`` can push.

Each layer is a gzip'd tar holding one file of pseudo-random bytes derived from the seed
and the layer's index, with every timestamp and owner fixed, so layers of different seeds
never share a digest and a rebuild never changes one.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import random
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "MEDIA_CONFIG",
    "MEDIA_INDEX",
    "MEDIA_LAYER",
    "MEDIA_MANIFEST",
    "Blob",
    "BuiltImage",
    "build_image",
    "write_image",
]

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
EPOCH = "1970-01-01T00:00:00Z"


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class BuiltImage:
    layers: tuple[Blob, ...]
    config: Blob
    manifest: Blob

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def blobs(self) -> tuple[Blob, ...]:
        return (*self.layers, self.config, self.manifest)


def _canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _payload(seed: int, index: int, size: int) -> bytes:
    layer_seed = int.from_bytes(hashlib.sha256(f"keelhaul:{seed}:{index}".encode()).digest()[:8])
    return random.Random(layer_seed).randbytes(size)  # noqa: S311 - test data, not a secret


def _tar(name: str, content: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        info.mtime = 0
        info.mode = 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def _gzip(data: bytes) -> bytes:
    buf = io.BytesIO()
    # mtime=0 and no file name in the header: the output depends on the input only
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as gz:
        gz.write(data)
    return buf.getvalue()


def build_image(*, layers: int = 1, layer_size: int = 1 << 20, seed: int = 0) -> BuiltImage:
    """The blobs of a ``linux/amd64`` image with ``layers`` random layers. Pure."""
    if layers < 1:
        raise ValueError("layers must be at least 1")
    if layer_size < 0:
        raise ValueError("layer_size must not be negative")
    blobs: list[Blob] = []
    diff_ids: list[str] = []
    for index in range(layers):
        tar = _tar(f"keelhaul/layer-{index}.bin", _payload(seed, index, layer_size))
        diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
        blobs.append(Blob(MEDIA_LAYER, _gzip(tar)))
    config = Blob(
        MEDIA_CONFIG,
        _canonical(
            {
                "architecture": "amd64",
                "os": "linux",
                "created": EPOCH,
                "config": {"Labels": {"org.opencontainers.image.title": f"keelhaul-{seed}"}},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
                "history": [
                    {"created": EPOCH, "created_by": f"keelhaul write_image layer {i}"}
                    for i in range(layers)
                ],
            }
        ),
    )
    manifest = Blob(
        MEDIA_MANIFEST,
        _canonical(
            {
                "schemaVersion": 2,
                "mediaType": MEDIA_MANIFEST,
                "config": config.descriptor(),
                "layers": [blob.descriptor() for blob in blobs],
            }
        ),
    )
    return BuiltImage(layers=tuple(blobs), config=config, manifest=manifest)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _index_with(out: Path, manifest: Blob, tag: str) -> dict[str, Any]:
    """The layout's ``index.json`` with ``tag`` (re)pointed at ``manifest``; other tags kept."""
    entries: list[dict[str, Any]] = []
    with contextlib.suppress(FileNotFoundError, ValueError):
        existing = json.loads((out / "index.json").read_text(encoding="utf-8"))
        entries = [
            m
            for m in existing.get("manifests", [])
            if isinstance(m, dict) and m.get("annotations", {}).get(REF_NAME) != tag
        ]
    entries.append({**manifest.descriptor(), "annotations": {REF_NAME: tag}})
    return {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": entries}


def write_image(
    out: Path,
    *,
    layers: int = 1,
    layer_size: int = 1 << 20,
    seed: int = 0,
    tag: str = "latest",
) -> str:
    """Write (or add ``tag`` to) the OCI image layout ``out``; returns the manifest digest."""
    image = build_image(layers=layers, layer_size=layer_size, seed=seed)
    blob_dir = out / "blobs" / "sha256"
    blob_dir.mkdir(parents=True, exist_ok=True)
    for blob in image.blobs():
        path = blob_dir / blob.digest.removeprefix("sha256:")
        if not path.exists():
            _write_atomic(path, blob.data)
    _write_atomic(out / "oci-layout", _canonical({"imageLayoutVersion": "1.0.0"}))
    _write_atomic(out / "index.json", _canonical(_index_with(out, image.manifest, tag)))
    return image.digest
