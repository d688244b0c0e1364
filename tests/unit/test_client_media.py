"""Manifests as data, Accept headers, platform selection."""

from __future__ import annotations

import json

import pytest

from keelhaul.client.digest import digest_of
from keelhaul.client.media import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    MANIFEST_ACCEPT,
    OCI_INDEX,
    OCI_MANIFEST,
    Platform,
    parse_manifest,
    parse_platform,
    select_platform,
)
from keelhaul.errors import ManifestNotFound, UnsupportedMediaType

pytestmark = pytest.mark.unit


def _index(entries: list[dict[str, str]], media_type: str = OCI_INDEX) -> bytes:
    manifests = [
        {"mediaType": OCI_MANIFEST, "digest": "sha256:" + f"{i:064x}", "size": 100, "platform": p}
        for i, p in enumerate(entries)
    ]
    return json.dumps(
        {"schemaVersion": 2, "mediaType": media_type, "manifests": manifests}
    ).encode()


def test_accept_lists_all_four_types() -> None:
    for media_type in (OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST):
        assert media_type in MANIFEST_ACCEPT


def test_image_manifest_parse_keeps_bytes() -> None:
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": "c", "digest": "sha256:" + "1" * 64, "size": 10},
            "layers": [{"mediaType": "l", "digest": "sha256:" + "2" * 64, "size": 20}],
        },
        indent=3,
    ).encode()
    manifest = parse_manifest(raw, "application/json", digest_of(raw))
    assert manifest.raw is raw
    assert manifest.media_type == DOCKER_MANIFEST
    assert [b.size for b in manifest.blobs()] == [10, 20]
    assert not manifest.is_index


def test_media_type_from_header_or_sniffed() -> None:
    raw = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    assert parse_manifest(raw, DOCKER_LIST + "; charset=utf-8", "d").media_type == DOCKER_LIST
    assert parse_manifest(raw, "", "d").media_type == OCI_INDEX


def test_schema1_is_refused() -> None:
    raw = json.dumps({"schemaVersion": 1, "name": "x", "fsLayers": []}).encode()
    with pytest.raises(UnsupportedMediaType, match="schema 1"):
        parse_manifest(raw, "application/vnd.docker.distribution.manifest.v1+prettyjws", "d")
    with pytest.raises(UnsupportedMediaType, match="not JSON"):
        parse_manifest(b"<html>", "text/html", "d")


PLATFORMS = [
    {"os": "linux", "architecture": "amd64"},
    {"os": "linux", "architecture": "arm64", "variant": "v8"},
    {"os": "linux", "architecture": "arm", "variant": "v6"},
    {"os": "linux", "architecture": "arm", "variant": "v7"},
    {"os": "unknown", "architecture": "unknown"},
]


@pytest.mark.parametrize(
    ("wanted", "index"),
    [
        ("linux/amd64", 0),
        ("linux/arm64", 1),
        ("linux/arm64/v8", 1),
        ("linux/aarch64", 1),
        ("linux/arm", 3),  # default variant v7
        ("linux/arm/v6", 2),
    ],
)
def test_platform_selection(wanted: str, index: int) -> None:
    manifest = parse_manifest(_index(PLATFORMS, DOCKER_LIST), "", "sha256:idx")
    assert manifest.is_index
    assert select_platform(manifest, parse_platform(wanted)).digest == "sha256:" + f"{index:064x}"


def test_platform_missing_names_what_exists() -> None:
    manifest = parse_manifest(_index(PLATFORMS[:2]), "", "sha256:idx")
    with pytest.raises(ManifestNotFound, match=r"linux/s390x.*linux/amd64, linux/arm64/v8"):
        select_platform(manifest, Platform("linux", "s390x"))


def test_variant_missing_in_index_matches_default() -> None:
    manifest = parse_manifest(_index([{"os": "linux", "architecture": "arm64"}]), "", "i")
    assert select_platform(manifest, parse_platform("linux/arm64/v8")).size == 100


@pytest.mark.parametrize("text", ["linux", "linux/", "/amd64", "a/b/c/d"])
def test_parse_platform_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="os/arch"):
        parse_platform(text)
