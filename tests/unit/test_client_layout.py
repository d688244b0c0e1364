"""Deterministic synthetic images and OCI image layouts (skopeo reads them: see tests/e2e)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from keelhaul.client.images import build_image
from keelhaul.client.layout import (
    LayoutWriter,
    layout_tags,
    read_layout,
    write_image,
)
from keelhaul.client.media import OCI_INDEX, OCI_MANIFEST, parse_platform
from keelhaul.errors import LayoutError

pytestmark = pytest.mark.unit

ARM = (parse_platform("linux/amd64"), parse_platform("linux/arm64"))


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_same_seed_same_digests_other_seed_other_digests() -> None:
    a = build_image(layers=2, layer_size=4096, seed=7)
    b = build_image(layers=2, layer_size=4096, seed=7)
    c = build_image(layers=2, layer_size=4096, seed=8)
    assert a.digest == b.digest
    assert a.layer_data() == b.layer_data()
    assert a.digest != c.digest
    layers_a = {d.digest for d in a.root.layers}
    assert not layers_a & {d.digest for d in c.root.layers}
    assert len(layers_a) == 2


def test_layers_are_gzipped_tars_like_tarfile_writes_them() -> None:
    image = build_image(layers=2, layer_size=1000, seed=1)
    config = json.loads(image.config_data())
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    for index, (layer, diff_id) in enumerate(
        zip(image.layer_data(), config["rootfs"]["diff_ids"], strict=True)
    ):
        tar_bytes = gzip.decompress(layer)
        assert _sha(tar_bytes) == diff_id
        with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
            (member,) = tar.getmembers()
            assert (member.name, member.size, member.mtime) == (
                f"keelhaul/layer-{index}.bin",
                1000,
                0,
            )
            content = tar.extractfile(member).read()  # type: ignore[union-attr]
        # byte-for-byte what tarfile itself writes for the same file
        expected = io.BytesIO()
        with tarfile.open(fileobj=expected, mode="w", format=tarfile.USTAR_FORMAT) as out:
            info = tarfile.TarInfo(member.name)
            info.size, info.mtime, info.mode = 1000, 0, 0o644
            info.uname = info.gname = ""
            out.addfile(info, io.BytesIO(content))
        assert tar_bytes == expected.getvalue()


def test_compressible_data_compresses_random_data_does_not() -> None:
    size = 1 << 20
    random = build_image(layer_size=size, seed=2)
    low = build_image(layer_size=size, seed=2, compressible=True)
    assert len(random.layer_data()[0]) > size
    assert len(low.layer_data()[0]) < 0.7 * size


def test_multi_platform_index() -> None:
    image = build_image(layers=1, layer_size=2048, seed=3, platforms=ARM)
    assert image.root.media_type == OCI_INDEX
    assert [str(d.platform) for d in image.root.manifests] == ["linux/amd64", "linux/arm64"]
    assert [d.digest for d in image.root.manifests] == [m.digest for m in image.images]
    archs = [json.loads(image.config_data(i))["architecture"] for i in range(2)]
    assert archs == ["amd64", "arm64"]
    assert image.images[0].layers[0].digest != image.images[1].layers[0].digest


def test_write_image_layout(tmp_path: Path) -> None:
    out = tmp_path / "img"
    digest = write_image(out, layers=3, layer_size=2048, seed=3, tag="v1")
    assert json.loads((out / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((out / "index.json").read_text())
    (entry,) = index["manifests"]
    assert entry["digest"] == digest
    assert entry["mediaType"] == OCI_MANIFEST
    assert entry["annotations"] == {"org.opencontainers.image.ref.name": "v1"}
    blobs = out / "blobs" / "sha256"
    for path in blobs.iterdir():  # every blob is named by its content, no temp file is left
        assert _sha(path.read_bytes()) == f"sha256:{path.name}"
    manifest = json.loads((blobs / digest.removeprefix("sha256:")).read_bytes())
    assert len(manifest["layers"]) == 3
    assert entry["size"] == (blobs / digest.removeprefix("sha256:")).stat().st_size


def test_streamed_layout_equals_in_memory_build(tmp_path: Path) -> None:
    spec = {"layers": 2, "layer_size": (1 << 20) + 123, "seed": 11}
    assert write_image(tmp_path / "x", **spec) == build_image(**spec).digest  # type: ignore[arg-type]
    both = {"platforms": ARM, "compressible": True, "seed": 5, "layer_size": 999}
    assert write_image(tmp_path / "y", **both) == build_image(**both).digest  # type: ignore[arg-type]


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
    assert sorted(layout_tags(tmp_path / "a")) == ["latest", "other"]


def test_read_layout_picks_images(tmp_path: Path) -> None:
    out = tmp_path / "l"
    single = write_image(out, layer_size=100, seed=1, tag="one")
    assert read_layout(out).root.digest == single  # the only image needs no tag
    multi = write_image(out, layer_size=100, seed=2, tag="two", platforms=ARM)
    image = read_layout(out, "two")
    assert image.root.digest == multi and len(image.images) == 2
    assert image.blob(image.images[0].layers[0]).size == image.images[0].layers[0].size
    with pytest.raises(LayoutError, match=r"holds 2 images; name one as DIR:TAG .tags: one, two"):
        read_layout(out)
    with pytest.raises(LayoutError, match="no image tagged 'three'"):
        read_layout(out, "three")
    with pytest.raises(LayoutError, match="not an OCI image layout"):
        read_layout(tmp_path / "missing")


def test_read_layout_detects_damage(tmp_path: Path) -> None:
    out = tmp_path / "l"
    write_image(out, layer_size=100, seed=1)
    image = read_layout(out)
    layer = out / "blobs" / "sha256" / image.root.layers[0].digest.removeprefix("sha256:")
    layer.write_bytes(layer.read_bytes() + b"x")
    with pytest.raises(LayoutError, match="descriptor says"):
        read_layout(out)
    layer.unlink()
    with pytest.raises(LayoutError, match="is missing"):
        read_layout(out)
    manifest = out / "blobs" / "sha256" / image.root.digest.removeprefix("sha256:")
    manifest.write_bytes(manifest.read_bytes().replace(b"layers", b"LAYERS"))
    with pytest.raises(LayoutError, match="does not match its digest"):
        read_layout(out)


def test_file_sink_commits_or_leaves_nothing(tmp_path: Path) -> None:
    writer = LayoutWriter(tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing until the first write
    image = build_image(layer_size=100)
    descriptor = image.root.layers[0]
    sink = writer.sink(descriptor)
    sink.write(b"partial")
    assert sink.tmp.exists()
    sink.abort()
    assert list((tmp_path / "out" / "blobs" / "sha256").iterdir()) == []
    assert not writer.has(descriptor)
    sink = writer.sink(descriptor)
    sink.write(image.data(descriptor.digest))
    sink.commit()
    assert writer.has(descriptor)
    assert [p.name for p in (tmp_path / "out" / "blobs" / "sha256").iterdir()] == [
        descriptor.digest.removeprefix("sha256:")
    ]


def test_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="layers"):
        build_image(layers=0)
    with pytest.raises(ValueError, match="repeat"):
        build_image(platforms=(ARM[0], ARM[0]))
