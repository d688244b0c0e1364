"""Image references: ``[host[:port]/]repo/name[:tag][@digest]``, parsed and normalised. Pure.

The grammar is distribution's (``distribution/reference``), with Docker's normalisation:
the part before the first ``/`` names a registry only if it contains ``.`` or ``:`` or is
``localhost``; otherwise the reference is on Docker Hub, and a one-component name gains
``library/``. keelhaul is mostly used against a private registry, so the usual spelling is
``127.0.0.1:5000/team/app:1.0``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keelhaul.client.digest import parse_digest
from keelhaul.errors import InvalidReference
from keelhaul.names import COMPONENT_RE

__all__ = [
    "DOCKER_HUB",
    "DOCKER_HUB_API",
    "Reference",
    "RepositoryName",
    "parse_reference",
    "parse_registry",
    "parse_repository",
]

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DEFAULT_TAG = "latest"
MAX_NAME = 255

_HOST_RE = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"|\[[0-9a-fA-F:.]+\])(?::[0-9]{1,5})?"
)
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}")


@dataclass(frozen=True, slots=True)
class RepositoryName:
    """A repository on a registry: ``registry`` is ``host[:port]`` as the user wrote it."""

    registry: str
    repository: str

    @property
    def api_host(self) -> str:
        """Where the HTTP API lives (Docker Hub's API host differs from its name)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}"


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed reference. ``tag`` is ``latest`` when neither a tag nor a digest was given."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> RepositoryName:
        return RepositoryName(self.registry, self.repository)

    @property
    def api_host(self) -> str:
        return self.name.api_host

    @property
    def ref(self) -> str:
        """What to ask the registry for: the digest when there is one, else the tag."""
        if self.digest is not None:
            return self.digest
        return self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def _quote(text: str) -> str:
    return repr(text[:80] + ("..." if len(text) > 80 else ""))


def parse_registry(text: str) -> str:
    """A registry host as given to ``catalog``: ``host[:port]``, scheme and slash tolerated."""
    host = text.strip()
    for prefix in ("https://", "http://"):
        if host.startswith(prefix):
            host = host[len(prefix) :]
    host = host.rstrip("/")
    if _HOST_RE.fullmatch(host) is None:
        raise InvalidReference(f"invalid registry {_quote(text)}: expected host[:port]")
    return host


def _split_registry(text: str, original: str) -> tuple[str, str]:
    head, sep, rest = text.partition("/")
    if sep and ("." in head or ":" in head or head == "localhost" or head != head.lower()):
        if _HOST_RE.fullmatch(head) is None:
            raise InvalidReference(f"invalid reference {_quote(original)}: bad registry host")
        return head, rest
    return DOCKER_HUB, text


def _check_path(registry: str, path: str, original: str) -> str:
    if not path:
        raise InvalidReference(f"invalid reference {_quote(original)}: repository name is empty")
    components = path.split("/")
    for component in components:
        if COMPONENT_RE.fullmatch(component) is None:
            hint = (
                "repository names are lowercase"
                if component != component.lower()
                else "use a-z, 0-9 and single '.', '_', '__' or '-' between them"
            )
            raise InvalidReference(
                f"invalid reference {_quote(original)}: bad path component "
                f"{_quote(component)} ({hint})"
            )
    if registry == DOCKER_HUB and len(components) == 1:
        path = f"library/{path}"
    if len(path) > MAX_NAME:
        raise InvalidReference(f"invalid reference {_quote(original)}: name over {MAX_NAME} chars")
    return path


def parse_repository(text: str) -> RepositoryName:
    """``host[:port]/repo/name`` (no tag, no digest), as for ``tags``."""
    stripped = text.strip()
    registry, path = _split_registry(stripped, text)
    if "@" in path or ":" in path:
        raise InvalidReference(
            f"invalid repository {_quote(text)}: give a repository without a tag or digest"
        )
    return RepositoryName(registry, _check_path(registry, path, text))


def parse_reference(text: str) -> Reference:
    """Parse ``[host[:port]/]name[:tag][@digest]``; raises :class:`InvalidReference`."""
    stripped = text.strip()
    if not stripped:
        raise InvalidReference("invalid reference '': it is empty")
    remainder, at, digest_text = stripped.partition("@")
    digest: str | None = None
    if at:
        try:
            digest = str(parse_digest(digest_text))
        except ValueError as exc:
            raise InvalidReference(f"invalid reference {_quote(text)}: {exc}") from None
    registry, path = _split_registry(remainder, text)
    tag: str | None = None
    slash = path.rfind("/")
    colon = path.rfind(":")
    if colon > slash:
        path, tag = path[:colon], path[colon + 1 :]
        if _TAG_RE.fullmatch(tag) is None:
            raise InvalidReference(
                f"invalid reference {_quote(text)}: bad tag {_quote(tag)} "
                "(letters, digits, '_', '.', '-'; at most 128; not starting with '.' or '-')"
            )
    path = _check_path(registry, path, text)
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(registry, path, tag, digest)
