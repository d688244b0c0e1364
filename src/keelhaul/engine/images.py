"""The stack's images from what this host can reach: Debian's mirror and PyPI, no image
registry. ``make images`` and the end-to-end tests call :func:`build_images`; every step is
skipped when its result is already in the daemon's data root (the cache).

* **base** (``keelhaul-local/base:bookworm``): ``debootstrap --variant=minbase`` with
  python3 and a virtual environment at ``/opt/python`` first on ``PATH`` (so ``python``
  and ``pip`` behave as in the official python image), a ``policy-rc.d`` that keeps
  package scripts from starting daemons, then ``docker import``. Built once; the
  downloaded packages stay in ``CACHE/debootstrap`` for a rebuild.
* **auth** (``keelhaul-auth:VERSION``): ``deploy/auth.Dockerfile`` unchanged, with the base
  as its ``PYTHON_IMAGE`` build argument. The locked wheels (``locks/auth.txt`` and the
  build backend's lines of ``locks/dev.txt``) are downloaded on the host with
  ``pip download --require-hashes`` into ``CACHE/wheels`` and served to the build from
  127.0.0.1 (``PIP_NO_INDEX``, ``PIP_FIND_LINKS``): the image installs exactly the hashed
  wheels, and a build container never needs PyPI (nor the host's proxy certificates).
* **registry, nginx, redis** (``keelhaul-local/<tier>:bookworm``): ``deploy/images/
  <tier>.Dockerfile`` from the same base, Debian's packages (``docker-registry``,
  ``nginx-light``, ``redis-server``) installed by apt from the Debian mirror.

Builds use the classic builder (BuildKit would fetch its ``# syntax`` frontend image from
Docker Hub) and the host's network namespace (``--network host``; the daemon runs with
``--bridge=none``). The classic builder ignores ``auth.Dockerfile.dockerignore``, so the
build context is sent as a tar made here from that file's allow-list.
"""

from __future__ import annotations

import concurrent.futures
import fnmatch
import functools
import http.server
import io
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from keelhaul import __version__
from keelhaul.engine.dockerd import DOCKER, Dockerd
from keelhaul.errors import ComponentError, MissingBinaryError

__all__ = [
    "DEFAULT_CACHE",
    "BuildReport",
    "ImageNames",
    "build_context",
    "build_images",
    "repo_root",
]

DEFAULT_CACHE = Path("/var/cache/keelhaul")
"""Outside any checkout: ``docker/`` (the private daemon's data root, i.e. the image
cache), ``debootstrap/`` (downloaded .debs), ``wheels/`` (the locked wheels)."""
DEBOOTSTRAP = Path("/usr/sbin/debootstrap")
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
VENV = "/opt/python"
BASE_PACKAGES = ("python3", "python3-venv")
TIERS = ("registry", "nginx", "redis")

Say = Callable[[str], None]


@dataclass(frozen=True)
class ImageNames:
    """What :func:`build_images` tags; ``keelhaul stack render --*-image`` takes the same."""

    base: str = f"keelhaul-local/base:{SUITE}"
    auth: str = f"keelhaul-auth:{__version__}"
    registry: str = f"keelhaul-local/registry:{SUITE}"
    nginx: str = f"keelhaul-local/nginx:{SUITE}"
    redis: str = f"keelhaul-local/redis:{SUITE}"

    def tier(self, name: str) -> str:
        value: str = getattr(self, name)
        return value

    def render_options(self) -> list[str]:
        """The ``keelhaul stack render`` options that use these images."""
        return [
            f"--{tier}-image={self.tier(tier)}" for tier in ("auth", "registry", "nginx", "redis")
        ]


@dataclass
class BuildReport:
    """Seconds spent per image, and which ones were already there."""

    seconds: dict[str, float] = field(default_factory=dict)
    cached: list[str] = field(default_factory=list)


def repo_root() -> Path:
    """The checkout this module runs from (``src/keelhaul/engine/`` is three levels down)."""
    return Path(__file__).resolve().parents[3]


def _run(argv: list[str], what: str, *, cwd: Path | None = None) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        raise ComponentError(what, f"{argv[0]} exited {done.returncode}", tail)


def _has_image(daemon: Dockerd, name: str) -> bool:
    return daemon.docker("image", "inspect", name, check=False).returncode == 0


# --- base ----------------------------------------------------------------------------------
def _trim(rootfs: Path) -> None:
    """What an image does not need: package caches and indexes, docs, man pages, locales."""
    for pattern in ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*"):
        for path in rootfs.glob(pattern):
            if path.is_file():
                path.unlink()
    for sub in ("usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/info"):
        shutil.rmtree(rootfs / sub, ignore_errors=True)


def build_base(daemon: Dockerd, cache: Path, name: str, say: Say) -> None:
    if not DEBOOTSTRAP.exists():
        raise MissingBinaryError(str(DEBOOTSTRAP), "debootstrap")
    work = cache / "rootfs.tmp"
    shutil.rmtree(work, ignore_errors=True)
    debs = cache / "debootstrap"
    debs.mkdir(parents=True, exist_ok=True)
    say(f"debootstrap --variant=minbase {SUITE} (downloads once into {debs})")
    try:
        _run(
            [
                str(DEBOOTSTRAP), "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
                f"--cache-dir={debs}", SUITE, str(work), MIRROR,
            ],
            "debootstrap",
        )  # fmt: skip
        _run(["chroot", str(work), "python3", "-m", "venv", VENV], "base venv")
        policy = work / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\n# no daemon starts while an image is built\nexit 101\n")
        policy.chmod(0o755)
        _trim(work)
        say(f"docker import -> {name}")
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "--xattrs", "-C", str(work), "-c", "."],
            stdout=subprocess.PIPE,
        )
        path = f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        changes = [f"ENV PATH={path}", "ENV LANG=C.UTF-8", 'CMD ["bash"]']
        argv = ["import", *(x for c in changes for x in ("--change", c)), "-", name]
        assert tar.stdout is not None
        done = subprocess.run(
            [str(DOCKER), *argv],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            env=daemon.env(),
            check=False,
        )
        tar.stdout.close()
        if tar.wait() != 0 or done.returncode != 0:
            raise ComponentError("docker import", "the base image was not imported", done.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- the token service's build context ------------------------------------------------------
def _ignore_rules(path: Path) -> tuple[list[str], list[str]]:
    """The allow-list (``!path``) and the exclusions (``**/x``) of a .dockerignore that
    starts with ``*``: the only shape :func:`build_context` needs to follow."""
    allow: list[str] = []
    deny: list[str] = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or line == "*":
            continue
        if line.startswith("!"):
            allow.append(line[1:].rstrip("/"))
        else:
            deny.append(line.removeprefix("**/"))
    return allow, deny


def _context_files(root: Path, dockerfile: Path) -> Iterator[Path]:
    allow, deny = _ignore_rules(dockerfile.with_name(dockerfile.name + ".dockerignore"))
    for entry in allow:
        path = root / entry
        candidates = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in candidates:
            rel = file.relative_to(root)
            if file.is_file() and not any(
                fnmatch.fnmatch(part, pattern) for part in rel.parts for pattern in deny
            ):
                yield rel


def build_context(root: Path, dockerfile: Path) -> bytes:
    """The build context BuildKit would send for ``dockerfile`` (its ``.dockerignore``),
    plus the Dockerfile itself, as a tar."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        names = {*_context_files(root, dockerfile), dockerfile.relative_to(root)}
        for rel in sorted(names):
            info = tar.gettarinfo(str(root / rel), arcname=str(rel))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0  # unchanged files keep the build cache
            with (root / rel).open("rb") as fh:
                tar.addfile(info, fh)
    return buffer.getvalue()


def download_wheels(root: Path, wheels: Path, say: Say) -> None:
    """Every hashed line of locks/auth.txt and the build backend's lines of locks/dev.txt."""
    wheels.mkdir(parents=True, exist_ok=True)
    subset = subprocess.run(
        [sys.executable, str(root / "deploy/lock_subset.py"), str(root / "locks/dev.txt")],
        capture_output=True,
        text=True,
        check=False,
    )
    if subset.returncode != 0:
        raise ComponentError("lock_subset", "no build backend in locks/dev.txt", subset.stderr)
    build_lock = wheels / "build.txt"
    build_lock.write_text(subset.stdout)
    for lock in (root / "locks/auth.txt", build_lock):
        say(f"pip download --require-hashes -r {lock.name} -> {wheels}")
        _run(
            [
                sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                "--require-hashes", "--no-deps", "--only-binary=:all:", "-r", str(lock),
                "-d", str(wheels),
            ],
            "pip download",
        )  # fmt: skip


WHEELS_PORT = 38417
"""Fixed: the classic builder keys its cache on build arguments, and PIP_FIND_LINKS names the
port; a random one would rebuild every RUN step each time. Busy -> any port (cache miss)."""


@contextmanager
def serve_directory(directory: Path, port: int = WHEELS_PORT) -> Iterator[str]:
    """``http://127.0.0.1:PORT/``: a directory listing pip reads as ``--find-links``."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

    handler = functools.partial(Quiet, directory=str(directory))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _build(
    daemon: Dockerd,
    context: bytes,
    dockerfile: str,
    tag: str,
    args: dict[str, str],
    target: str | None = None,
) -> None:
    argv = ["build", "--network", "host", "-f", dockerfile, "-t", tag]
    if target is not None:
        argv += ["--target", target]
    for key, value in args.items():
        argv += ["--build-arg", f"{key}={value}"]
    done = daemon.docker(
        *argv, "-", input=context, env={"DOCKER_BUILDKIT": "0"}, check=False, timeout=1800
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        raise ComponentError("docker build", f"{tag} from {dockerfile} failed", tail)


def build_auth(daemon: Dockerd, root: Path, cache: Path, names: ImageNames, say: Say) -> None:
    wheels = cache / "wheels"
    download_wheels(root, wheels, say)
    dockerfile = root / "deploy/auth.Dockerfile"
    context = build_context(root, dockerfile)
    say(f"docker build -f deploy/auth.Dockerfile --build-arg PYTHON_IMAGE={names.base}")
    with serve_directory(wheels) as url:
        args = {"PYTHON_IMAGE": names.base, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": url}
        # the build stage gets a tag of its own: untagged, the prune below would take it
        # and with it the cache of the wheel (whose bytes differ each time it is rebuilt)
        stage = names.auth.rsplit(":", 1)[0] + "-build-stage:cache"
        _build(daemon, context, "deploy/auth.Dockerfile", stage, args, target="build")
        _build(daemon, context, "deploy/auth.Dockerfile", names.auth, args)


def build_tier(daemon: Dockerd, root: Path, tier: str, names: ImageNames, say: Say) -> None:
    rel = Path("deploy/images") / f"{tier}.Dockerfile"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tar.gettarinfo(str(root / rel), arcname=str(rel))
        info.mtime = 0
        with (root / rel).open("rb") as fh:
            tar.addfile(info, fh)
    say(f"docker build -f {rel} --build-arg BASE={names.base}")
    _build(daemon, buffer.getvalue(), str(rel), names.tier(tier), {"BASE": names.base})


def build_images(
    daemon: Dockerd,
    *,
    cache: Path = DEFAULT_CACHE,
    names: ImageNames | None = None,
    root: Path | None = None,
    say: Say = lambda _: None,
) -> BuildReport:
    """Every image the rendered compose file needs; what is cached is reused. The base is
    kept as long as its tag exists; the others go through ``docker build``, whose layer
    cache makes an unchanged image a matter of seconds.

    After the base, two lanes run side by side: the token service's image, and the three
    tier images one after another. With vfs a build step is mostly one process copying the
    file system (one core, waiting on the disk), so two lanes take the longest lane's time
    instead of the sum on a 2-core host (measured in the README's deployment section)."""
    names = names or ImageNames()
    root = root or repo_root()
    report = BuildReport()
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def timed(label: str, step: Callable[[], None]) -> None:
        t0 = time.monotonic()
        step()
        report.seconds[label] = round(time.monotonic() - t0, 1)
        say(f"{label}: {names.tier(label)} ready in {report.seconds[label]} s")

    if _has_image(daemon, names.base):
        report.cached.append("base")
        report.seconds["base"] = 0.0
    else:
        timed("base", lambda: build_base(daemon, cache, names.base, say))

    def tiers() -> None:
        for tier in TIERS:
            timed(tier, functools.partial(build_tier, daemon, root, tier, names, say))

    lanes = [lambda: timed("auth", lambda: build_auth(daemon, root, cache, names, say)), tiers]
    with concurrent.futures.ThreadPoolExecutor(len(lanes), "keelhaul-build") as pool:
        futures = [pool.submit(lane) for lane in lanes]
        concurrent.futures.wait(futures)
    for future in futures:
        future.result()  # the first lane's failure, after both lanes have stopped
    report.seconds = {k: report.seconds[k] for k in ("base", "auth", *TIERS) if k in report.seconds}
    # vfs keeps whole copies: drop what an earlier build left untagged (replaced images,
    # their stages); this build's own stages stay as the next build's cache
    daemon.docker("image", "prune", "--force", "--filter", f"until={started}", check=False)
    return report


def data_root(cache: Path) -> Path:
    return cache / "docker"
