"""What ``make images`` sends and starts, checked without an engine: the build context
follows the Dockerfile's .dockerignore, the daemon's flags keep it private, and the image
names go to ``stack render`` as its options."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from keelhaul.engine.dockerd import Dockerd
from keelhaul.engine.images import ImageNames, build_context, repo_root

pytestmark = pytest.mark.unit


def _names(context: bytes) -> set[str]:
    with tarfile.open(fileobj=io.BytesIO(context)) as tar:
        return set(tar.getnames())


def test_build_context_is_the_dockerignore_allow_list(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    for rel in (
        "locks/dev.txt", "locks/auth.txt", "locks/other.txt", "deploy/lock_subset.py",
        "deploy/auth.Dockerfile", "deploy/README.md", "pyproject.toml", "README.md",
        "src/keelhaul/__init__.py", "src/keelhaul/__pycache__/x.cpython-311.pyc",
        "src/keelhaul/y.pyc", ".venv/bin/python", "tests/test_x.py",
    ):  # fmt: skip
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    (root / "deploy/auth.Dockerfile.dockerignore").write_text(
        (repo_root() / "deploy/auth.Dockerfile.dockerignore").read_text()
    )
    names = _names(build_context(root, root / "deploy/auth.Dockerfile"))
    assert names == {
        "locks/dev.txt", "locks/auth.txt", "deploy/lock_subset.py", "deploy/auth.Dockerfile",
        "pyproject.toml", "README.md", "src/keelhaul/__init__.py",
    }  # fmt: skip


def test_build_context_of_this_checkout_is_stable() -> None:
    """Same files, same bytes: an unchanged checkout hits docker build's cache."""
    root = repo_root()
    first = build_context(root, root / "deploy/auth.Dockerfile")
    assert first == build_context(root, root / "deploy/auth.Dockerfile")
    assert "src/keelhaul/engine/images.py" in _names(first)


def test_dockerd_flags_keep_it_private(tmp_path: Path) -> None:
    daemon = Dockerd(tmp_path / "data", extra_args=("--debug",))
    daemon.run_dir = tmp_path / "run"
    argv = daemon.argv()
    flags = dict(zip(argv[1::2], argv[2::2], strict=False))
    assert argv[0] == "/usr/sbin/dockerd"
    assert flags["--host"] == f"unix://{tmp_path}/run/docker.sock"
    assert flags["--data-root"] == str(tmp_path / "data")
    assert flags["--config-file"].startswith(str(tmp_path / "run"))
    for flag in ("--iptables=false", "--ip6tables=false", "--ip-masq=false"):
        assert flag in argv
    assert argv[argv.index("--storage-driver") + 1] == "vfs"
    assert argv[argv.index("--bridge") + 1] == "none"
    assert argv[-1] == "--debug"
    assert daemon.env()["DOCKER_HOST"] == daemon.host


def test_image_names_become_render_options() -> None:
    names = ImageNames()
    options = names.render_options()
    assert options == [
        f"--auth-image={names.auth}",
        f"--registry-image={names.registry}",
        f"--nginx-image={names.nginx}",
        f"--redis-image={names.redis}",
    ]
