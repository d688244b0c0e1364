"""``keelhaul image`` as a user runs it, against the stack, cross-checked with skopeo."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.e2e.conftest import Skopeo

    from support.stacks import StackInfo

pytestmark = pytest.mark.e2e

Cli = Callable[..., subprocess.CompletedProcess[str]]


class Image:
    """Runs ``keelhaul image ...`` with a private HOME and the stack's admin in the env."""

    def __init__(self, cli: Cli, stack: StackInfo, home: Path) -> None:
        self.cli = cli
        self.stack = stack
        self.home = home

    def env(self, user: str | None = "admin", **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEELHAUL_")}
        env.update({"HOME": str(self.home), "DOCKER_CONFIG": str(self.home / ".docker")})
        env.pop("XDG_RUNTIME_DIR", None)
        env.pop("REGISTRY_AUTH_FILE", None)
        if user is not None:
            env["KEELHAUL_REGISTRY_USERNAME"] = user
            env["KEELHAUL_REGISTRY_PASSWORD"] = self.stack.password(user)
        env.update(extra)
        return env

    def run(
        self, *args: str, user: str | None = "admin", env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.cli("image", *args, env=env if env is not None else self.env(user))

    def ok(self, *args: str, user: str | None = "admin") -> dict[str, Any]:
        result = self.run(*args, "--json", user=user)
        assert result.returncode == 0, result.stderr
        document: dict[str, Any] = json.loads(result.stdout)
        return document

    def ref(self, repo: str) -> str:
        return f"{self.stack.host}/{repo}"


@pytest.fixture
def image(cli: Cli, stack: StackInfo, tmp_path: Path) -> Image:
    home = tmp_path / "home"
    home.mkdir()
    return Image(cli, stack, home)


def _blobs(layout: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (layout / "blobs" / "sha256").iterdir()}


def _top(layout: Path) -> str:
    (entry,) = json.loads((layout / "index.json").read_text())["manifests"]
    return str(entry["digest"])


def test_push_pull_is_byte_identical_and_a_second_push_uploads_nothing(
    image: Image, tmp_path: Path
) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    built = image.ok("build", str(src), "--layers", "2", "--layer-size", "1MiB", "--seed", "9001")
    first = image.ok("push", str(src), image.ref("admin/cli:1"), "--plain-http")
    assert first["digest"] == built["digest"]
    assert (first["uploaded"], first["exists"]) == (3, 0)
    second = image.ok("push", str(src), image.ref("admin/cli:1"), "--plain-http")
    assert (second["uploaded"], second["exists"], second["bytes_uploaded"]) == (0, 3, 0)
    pulled = image.ok("pull", image.ref("admin/cli:1"), str(out), "--plain-http")
    assert pulled["digest"] == built["digest"] and pulled["blobs"] == 3
    assert _blobs(out) == _blobs(src)
    assert _top(out) == built["digest"]
    again = image.ok("pull", image.ref("admin/cli:1"), str(out), "--plain-http")
    assert again["skipped"] == 3 and again["bytes"] == 0


def test_human_output(image: Image, tmp_path: Path) -> None:
    image.ok("build", str(tmp_path / "h"), "--layer-size", "64k", "--seed", "9002")
    result = image.run("push", str(tmp_path / "h"), image.ref("admin/human:1"), "--plain-http")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"pushed {image.ref('admin/human:1')}\n  digest    sha256:")
    assert "2 uploaded" in result.stdout
    tags = image.run("tags", image.ref("admin/human"), "--plain-http")
    assert tags.stdout == "1\n"
    inspect = image.run("inspect", image.ref("admin/human:1"), "--plain-http")
    assert "config      os=linux, architecture=amd64" in inspect.stdout


def test_keelhaul_pushes_skopeo_agrees(image: Image, skopeo: Skopeo, tmp_path: Path) -> None:
    built = image.ok("build", str(tmp_path / "src"), "--layer-size", "300k", "--seed", "9003")
    image.ok("push", str(tmp_path / "src"), image.ref("admin/k2s:1"), "--plain-http")
    authfile = skopeo.authfile("admin")
    inspected = skopeo.run(
        "inspect", "--tls-verify=false", "--authfile", str(authfile),
        f"docker://{image.ref('admin/k2s:1')}",
    )  # fmt: skip
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["Digest"] == built["digest"]
    copied = skopeo.pull("admin/k2s:1", tmp_path / "copy", user="admin")
    assert copied.returncode == 0, copied.stderr
    index = json.loads((tmp_path / "copy" / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [built["digest"]]
    assert _blobs(tmp_path / "copy") == _blobs(tmp_path / "src")


def test_skopeo_pushes_keelhaul_pulls_and_verifies(
    image: Image, skopeo: Skopeo, tmp_path: Path
) -> None:
    from keelhaul.client.layout import write_image

    digest = write_image(tmp_path / "src", layers=2, layer_size=200_000, seed=9004)
    pushed = skopeo.push(tmp_path / "src", "admin/s2k:1", user="admin")
    assert pushed.returncode == 0, pushed.stderr
    pulled = image.ok("pull", image.ref("admin/s2k:1"), str(tmp_path / "out"), "--plain-http")
    assert pulled["digest"] == digest
    assert _blobs(tmp_path / "out") == _blobs(tmp_path / "src")
    inspect = image.ok("inspect", image.ref("admin/s2k:1"), "--plain-http")
    assert inspect["digest"] == digest and len(inspect["manifest"]["layers"]) == 2


def test_multi_platform_build_push_pull(image: Image, tmp_path: Path) -> None:
    built = image.ok(
        "build", str(tmp_path / "m"), "--layer-size", "10k", "--seed", "9005",
        "--platforms", "linux/amd64,linux/arm64",
    )  # fmt: skip
    assert built["media_type"] == "application/vnd.oci.image.index.v1+json"
    image.ok("push", str(tmp_path / "m"), image.ref("admin/multi-cli:1"), "--plain-http")
    info = image.ok("inspect", image.ref("admin/multi-cli:1"), "--plain-http")
    assert [p["platform"] for p in info["platforms"]] == ["linux/amd64", "linux/arm64"]
    arm = image.ok(
        "pull", image.ref("admin/multi-cli:1"), str(tmp_path / "arm"),
        "--plain-http", "--platform", "linux/arm64",
    )  # fmt: skip
    assert arm["digest"] == info["platforms"][1]["digest"]
    assert arm["platforms"] == ["linux/arm64"]
    everything = image.ok(
        "pull", image.ref("admin/multi-cli:1"), str(tmp_path / "all"),
        "--plain-http", "--all-platforms",
    )  # fmt: skip
    assert everything["digest"] == built["digest"]
    assert _blobs(tmp_path / "all") == _blobs(tmp_path / "m")


def test_catalog_tags_and_rm(image: Image, tmp_path: Path) -> None:
    image.ok("build", str(tmp_path / "r"), "--layer-size", "1k", "--seed", "9006")
    for tag in ("a", "b"):
        image.ok("push", str(tmp_path / "r"), image.ref(f"admin/rm:{tag}"), "--plain-http")
    assert sorted(image.ok("tags", image.ref("admin/rm"), "--plain-http")["tags"]) == ["a", "b"]
    catalog = image.ok("catalog", image.stack.host, "--plain-http", "--page-size", "2")
    assert "admin/rm" in catalog["repositories"]
    deleted = image.ok("rm", image.ref("admin/rm:a"), "--plain-http")
    gone = image.run("inspect", image.ref("admin/rm:b"), "--plain-http")
    assert gone.returncode == 13, gone.stderr  # one manifest: both tags went with it
    assert deleted["deleted"].startswith("sha256:")


def test_corrupted_blob_exits_15_and_leaves_nothing(
    image: Image, stack: StackInfo, tmp_path: Path
) -> None:
    built = image.ok("build", str(tmp_path / "c"), "--layer-size", "100k", "--seed", "9007")
    image.ok("push", str(tmp_path / "c"), image.ref("admin/corrupt-cli:1"), "--plain-http")
    manifest = json.loads(
        (tmp_path / "c" / "blobs" / "sha256" / built["digest"].removeprefix("sha256:")).read_bytes()
    )
    victim = manifest["layers"][0]["digest"].removeprefix("sha256:")
    data = stack.dir / "data/docker/registry/v2/blobs/sha256" / victim[:2] / victim / "data"
    raw = bytearray(data.read_bytes())
    raw[500:510] = b"0123456789"
    data.write_bytes(bytes(raw))
    out = tmp_path / "out"
    result = image.run("pull", image.ref("admin/corrupt-cli:1"), str(out), "--plain-http")
    assert result.returncode == 15, result.stderr
    assert result.stderr.startswith("keelhaul: blob from ")
    assert f"does not match its digest: expected sha256:{victim}, got sha256:" in result.stderr
    assert "nothing was kept" in result.stderr
    left = [p.name for p in (out / "blobs" / "sha256").iterdir()] if out.exists() else []
    assert victim not in left and not [n for n in left if n.startswith(".")]


def test_errors_are_one_line_with_their_exit_codes(
    image: Image, stack: StackInfo, tmp_path: Path
) -> None:
    from keelhaul.netutil import free_port

    image.ok("build", str(tmp_path / "e"), "--layer-size", "1k", "--seed", "9008")
    image.ok("push", str(tmp_path / "e"), image.ref("admin/err:1"), "--plain-http")
    cases: list[tuple[list[str], str | None, int, str]] = [
        (["inspect", image.ref("admin/err:nope"), "--plain-http"], "admin", 13, "manifest not"),
        (["tags", image.ref("admin/none"), "--plain-http"], "admin", 12, "repository not"),
        (["push", str(tmp_path / "e"), image.ref("admin/err:2"), "--plain-http"], "reader", 11,
         "may not"),
        (["inspect", image.ref("admin/err:1"), "--plain-http"], None, 10, "authentication"),
        (["inspect", image.ref("admin/err:1")], "admin", 17, "--plain-http"),
        (["inspect", f"127.0.0.1:{free_port()}/x:1", "--plain-http"], "admin", 16, "cannot reach"),
        (["inspect", image.ref("Admin/err:1"), "--plain-http"], "admin", 2, "lowercase"),
        (["push", str(tmp_path / "missing"), image.ref("admin/err:3"), "--plain-http"], "admin",
         20, "not an OCI image layout"),
        (["catalog", stack.host, "--plain-http"], "reader", 11, "may not list the catalog"),
    ]  # fmt: skip
    for args, user, code, text in cases:
        result = image.run(*args, user=user)
        assert result.returncode == code, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("keelhaul: "), args
        assert text in result.stderr and "Traceback" not in result.stderr, args
    wrong = image.env("admin", KEELHAUL_REGISTRY_PASSWORD="not-it")
    result = image.run("inspect", image.ref("admin/err:1"), "--plain-http", env=wrong)
    assert result.returncode == 10 and "rejected the credentials of admin" in result.stderr
    usage = image.run("pull", image.ref("admin/err:1"))
    assert usage.returncode == 2 and "Missing argument" in usage.stderr


def test_credentials_from_files_and_never_printed(
    image: Image, stack: StackInfo, tmp_path: Path
) -> None:
    password = stack.password("admin")
    image.ok("build", str(tmp_path / "p"), "--layer-size", "1k", "--seed", "9009")
    docker = image.home / ".docker"
    docker.mkdir()
    auth = base64.b64encode(f"admin:{password}".encode()).decode()
    (docker / "config.json").write_text(json.dumps({"auths": {stack.host: {"auth": auth}}}))
    outputs = [
        image.run("push", str(tmp_path / "p"), image.ref("admin/creds:1"), "--plain-http",
                  user=None),
        image.run("inspect", image.ref("admin/creds:1"), "--plain-http", "--json", user=None),
        image.run("tags", image.ref("admin/creds"), "--plain-http", "--json", user=None),
        image.run("pull", image.ref("admin/creds:1"), str(tmp_path / "o"), "--plain-http"),
        image.run("inspect", image.ref("admin/creds:nope"), "--plain-http"),
        image.cli(
            "image", "tags", image.ref("admin/creds"), "--plain-http", "-u", "admin",
            "--password", password, env=image.env(None),
        ),
    ]  # fmt: skip
    assert [r.returncode for r in outputs] == [0, 0, 0, 0, 13, 0]
    for result in outputs:
        assert password not in result.stdout and password not in result.stderr
        assert auth not in result.stdout and auth not in result.stderr
    (docker / "config.json").write_text(json.dumps({"credHelpers": {stack.host: "pass"}}))
    helper = image.run("tags", image.ref("admin/creds"), "--plain-http", user=None)
    assert helper.returncode == 19 and "docker-credential-pass" in helper.stderr
