"""The deterministic OCI image layout writer (skopeo reads it: see tests/e2e)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from keelhaul.client.layout import MEDIA_MANIFEST, build_image, write_image

pytestmark = pytest.mark.unit


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_same_seed_same_digests_other_seed_other_digests() -> None:
    a = build_image(layers=2, layer_size=4096, seed=7)
    b = build_image(layers=2, layer_size=4096, seed=7)
    c = build_image(layers=2, layer_size=4096, seed=8)
    assert a.digest == b.digest
    assert [layer.digest for layer in a.layers] == [layer.digest for layer in b.layers]
    assert a.digest != c.digest
    assert not {layer.digest for layer in a.layers} & {layer.digest for layer in c.layers}
    assert a.layers[0].digest != a.layers[1].digest


def test_layers_are_gzipped_tars_and_diff_ids_match() -> None:
    image = build_image(layers=2, layer_size=1000, seed=1)
    config = json.loads(image.config.data)
    assert config["architecture"] == "amd64"
    assert config["os"] == "linux"
    for layer, diff_id in zip(image.layers, config["rootfs"]["diff_ids"], strict=True):
        tar_bytes = gzip.decompress(layer.data)
        assert _sha(tar_bytes) == diff_id
        with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
            (member,) = tar.getmembers()
            assert member.size == 1000
            assert member.mtime == 0


def test_write_image_layout(tmp_path: Path) -> None:
    out = tmp_path / "img"
    digest = write_image(out, layers=3, layer_size=2048, seed=3, tag="v1")
    assert json.loads((out / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((out / "index.json").read_text())
    (entry,) = index["manifests"]
    assert entry["digest"] == digest
    assert entry["mediaType"] == MEDIA_MANIFEST
    assert entry["annotations"] == {"org.opencontainers.image.ref.name": "v1"}
    blobs = out / "blobs" / "sha256"
    for path in blobs.iterdir():  # every blob is named by its content
        assert _sha(path.read_bytes()) == f"sha256:{path.name}"
    manifest = json.loads((blobs / digest.removeprefix("sha256:")).read_bytes())
    assert len(manifest["layers"]) == 3
    for descriptor in [manifest["config"], *manifest["layers"]]:
        blob = blobs / descriptor["digest"].removeprefix("sha256:")
        assert blob.stat().st_size == descriptor["size"]
    assert entry["size"] == (blobs / digest.removeprefix("sha256:")).stat().st_size


def test_write_image_is_reproducible_and_keeps_other_tags(tmp_path: Path) -> None:
    first = write_image(tmp_path / "a", layers=1, layer_size=512, seed=5)
    again = write_image(tmp_path / "b", layers=1, layer_size=512, seed=5)
    assert first == again
    other = write_image(tmp_path / "a", layers=1, layer_size=512, seed=6, tag="other")
    retagged = write_image(tmp_path / "a", layers=1, layer_size=512, seed=9)
    index = json.loads((tmp_path / "a" / "index.json").read_text())
    tags = {
        m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
        for m in index["manifests"]
    }
    assert tags == {"other": other, "latest": retagged}


def test_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="layers"):
        build_image(layers=0)
