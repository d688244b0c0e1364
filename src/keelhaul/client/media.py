"""Media types, ``Accept`` headers, manifests as data, and platform selection. Pure.

keelhaul speaks the four manifest types every current client speaks: OCI image manifest and
index, Docker v2 schema 2 manifest and manifest list. Docker schema 1 (signed or not) is
refused with :class:`~keelhaul.errors.UnsupportedMediaType`, as containerd does.

A manifest's bytes are kept exactly as received: its digest is over those bytes, so it is
pushed and stored verbatim and only parsed to find what it refers to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from keelhaul.errors import ManifestNotFound, UnsupportedMediaType

__all__ = [
    "DEFAULT_PLATFORM",
    "DOCKER_CONFIG",
    "DOCKER_LAYER",
    "DOCKER_LIST",
    "DOCKER_MANIFEST",
    "IMAGE_TYPES",
    "INDEX_TYPES",
    "MANIFEST_ACCEPT",
    "MANIFEST_TYPES",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER_GZIP",
    "OCI_MANIFEST",
    "Descriptor",
    "Manifest",
    "Platform",
    "parse_manifest",
    "parse_platform",
    "select_platform",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)

IMAGE_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = IMAGE_TYPES | INDEX_TYPES

MANIFEST_ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
"""One ``Accept`` value listing everything keelhaul can read, indexes first (as containerd)."""

IMAGE_ACCEPT = ", ".join((OCI_MANIFEST, DOCKER_MANIFEST))
"""For a child manifest fetched by digest from an index: only image manifests make sense."""


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base

    def to_json(self) -> dict[str, str]:
        data = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            data["variant"] = self.variant
        return data


DEFAULT_PLATFORM = Platform("linux", "amd64")

# containerd's normalisation: a missing variant means the architecture's default one
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7"}
_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm"}


def parse_platform(text: str) -> Platform:
    """``os/arch[/variant]``; raises ``ValueError`` with a message fit for a user."""
    parts = text.strip().lower().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"platform {text[:40]!r}: expected os/arch[/variant], e.g. linux/arm64")
    arch = _ARCH_ALIASES.get(parts[1], parts[1])
    return Platform(parts[0], arch, parts[2] if len(parts) == 3 else "")


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.platform is not None:
            data["platform"] = self.platform.to_json()
        if self.annotations:
            data["annotations"] = dict(self.annotations)
        return data


@dataclass(frozen=True, slots=True)
class Manifest:
    """A manifest's exact bytes plus what was parsed out of them."""

    raw: bytes = field(repr=False)
    media_type: str
    digest: str
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    def blobs(self) -> tuple[Descriptor, ...]:
        """What an image manifest refers to: config first, then layers."""
        return ((self.config,) if self.config is not None else ()) + self.layers

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw))


def _descriptor(item: Any, where: str) -> Descriptor:
    if not isinstance(item, dict):
        raise UnsupportedMediaType(f"{where}: a descriptor is not an object")
    try:
        media_type = str(item.get("mediaType", ""))
        digest = str(item["digest"])
        size = int(item["size"])
    except (KeyError, TypeError, ValueError):
        raise UnsupportedMediaType(f"{where}: a descriptor lacks digest or size") from None
    platform = None
    raw_platform = item.get("platform")
    if isinstance(raw_platform, dict):
        platform = Platform(
            str(raw_platform.get("os", "")),
            str(raw_platform.get("architecture", "")),
            str(raw_platform.get("variant", "")),
        )
    annotations = item.get("annotations")
    return Descriptor(
        media_type,
        digest,
        size,
        platform,
        {str(k): str(v) for k, v in annotations.items()} if isinstance(annotations, dict) else {},
    )


def _sniff(document: dict[str, Any]) -> str:
    """The media type when the registry sent none usable (OCI allows an absent field)."""
    if isinstance(document.get("manifests"), list):
        return OCI_INDEX
    if document.get("schemaVersion") == 1:
        return DOCKER_SCHEMA1[0]
    return OCI_MANIFEST


def parse_manifest(raw: bytes, content_type: str, digest: str) -> Manifest:
    """Parse manifest bytes; the media type is the body's own, else the ``Content-Type``."""
    try:
        document = json.loads(raw)
    except ValueError:
        raise UnsupportedMediaType(f"manifest {digest} is not JSON") from None
    if not isinstance(document, dict):
        raise UnsupportedMediaType(f"manifest {digest} is not a JSON object")
    declared = document.get("mediaType")
    header = content_type.split(";", 1)[0].strip().lower()
    if isinstance(declared, str) and declared:
        media_type = declared
    elif header in MANIFEST_TYPES:
        media_type = header
    else:
        media_type = _sniff(document)
    if media_type not in MANIFEST_TYPES:
        if media_type in DOCKER_SCHEMA1 or document.get("schemaVersion") == 1:
            raise UnsupportedMediaType(
                f"manifest {digest} is Docker schema 1, which keelhaul does not support; "
                "re-push the image with a current client"
            )
        raise UnsupportedMediaType(f"manifest {digest} has unsupported media type {media_type!r}")
    if media_type in INDEX_TYPES:
        items = document.get("manifests")
        if not isinstance(items, list):
            raise UnsupportedMediaType(f"index {digest} has no manifests list")
        children = tuple(_descriptor(m, f"index {digest}") for m in items)
        return Manifest(raw, media_type, digest, manifests=children)
    config = document.get("config")
    layers = document.get("layers", [])
    if not isinstance(layers, list):
        raise UnsupportedMediaType(f"manifest {digest}: layers is not a list")
    return Manifest(
        raw,
        media_type,
        digest,
        config=_descriptor(config, f"manifest {digest}") if config is not None else None,
        layers=tuple(_descriptor(layer, f"manifest {digest}") for layer in layers),
    )


def _variant(platform: Platform) -> str:
    return platform.variant or _DEFAULT_VARIANT.get(platform.architecture, "")


def select_platform(index: Manifest, wanted: Platform) -> Descriptor:
    """The index entry for ``wanted``: os and architecture must match; the variant too when
    either side names one (a missing variant means the default, ``v8`` on arm64). Attestation
    manifests (``unknown/unknown``) are never chosen."""
    fallback: Descriptor | None = None
    for entry in index.manifests:
        p = entry.platform
        if p is None or p.os != wanted.os or p.architecture != wanted.architecture:
            continue
        if _variant(p) == _variant(wanted):
            return entry
        if not wanted.variant and fallback is None:
            fallback = entry
    if fallback is not None:
        return fallback
    available = ", ".join(sorted({str(e.platform) for e in index.manifests if e.platform})) or (
        "none"
    )
    raise ManifestNotFound(
        f"index {index.digest} has no manifest for {wanted} (available: {available}); "
        "choose one with --platform"
    )
