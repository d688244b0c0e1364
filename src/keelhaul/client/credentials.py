"""Where the registry credentials come from, first match wins:

1. flags (``--username`` with ``--password`` or ``--password-stdin``);
2. ``KEELHAUL_REGISTRY_USERNAME`` / ``KEELHAUL_REGISTRY_PASSWORD``;
3. the ``auths`` of credential files, as podman/skopeo and docker search them:
   ``--authfile`` or ``$REGISTRY_AUTH_FILE``, ``$XDG_RUNTIME_DIR/containers/auth.json``,
   ``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``);
4. none: anonymous.

An entry holds ``auth`` (base64 ``user:password``), or ``username``/``password``, or an
``identitytoken`` (an OAuth2 refresh token, used with the token service's POST form).
Credential helpers (``credHelpers``, ``credsStore``) are not run: when one holds this
registry's credentials, :class:`~keelhaul.errors.CredentialsError` says so and what to do.
Parsing is pure; :func:`resolve_credentials` reads the files it is pointed at.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from keelhaul.client.reference import DOCKER_HUB
from keelhaul.client.tokens import Credentials
from keelhaul.errors import CredentialsError

__all__ = [
    "ENV_PASSWORD",
    "ENV_USERNAME",
    "credential_files",
    "credentials_from_config",
    "normalize_registry_key",
    "resolve_credentials",
]

ENV_USERNAME = "KEELHAUL_REGISTRY_USERNAME"
ENV_PASSWORD = "KEELHAUL_REGISTRY_PASSWORD"  # noqa: S105 - a variable name

_HUB_KEYS = {"index.docker.io", "registry-1.docker.io", "docker.io", "registry.hub.docker.com"}
_HELP = (
    "pass --username with --password-stdin, set KEELHAUL_REGISTRY_USERNAME and "
    'KEELHAUL_REGISTRY_PASSWORD, or put an inline "auth" entry in an auth file (--authfile)'
)


def normalize_registry_key(key: str) -> str:
    """``https://index.docker.io/v1/`` -> ``docker.io``; ``http://host:5000/`` -> ``host:5000``."""
    host = key.strip()
    for prefix in ("https://", "http://"):
        if host.startswith(prefix):
            host = host[len(prefix) :]
    host = host.split("/", 1)[0]
    return DOCKER_HUB if host in _HUB_KEYS else host


def credential_files(environ: Mapping[str, str], home: Path, authfile: Path | None) -> list[Path]:
    """The files to search, in order (they need not exist)."""
    files: list[Path] = []
    explicit = authfile or (
        Path(environ["REGISTRY_AUTH_FILE"]) if environ.get("REGISTRY_AUTH_FILE") else None
    )
    if explicit is not None:
        files.append(explicit)
    if environ.get("XDG_RUNTIME_DIR"):
        files.append(Path(environ["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    docker_dir = (
        Path(environ["DOCKER_CONFIG"]) if environ.get("DOCKER_CONFIG") else home / ".docker"
    )
    files.append(docker_dir / "config.json")
    return files


def _decode_auth(value: str, source: str) -> tuple[str, str]:
    try:
        raw = base64.b64decode(value, validate=False).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise CredentialsError(
            f'{source}: an "auth" value is not base64 of user:password'
        ) from None
    user, sep, password = raw.partition(":")
    if not sep:
        raise CredentialsError(f'{source}: an "auth" value is not base64 of user:password')
    return user, password


def credentials_from_config(
    document: Mapping[str, Any], registry: str, source: str
) -> Credentials | None:
    """The credentials a docker/podman auth file holds for ``registry``, or ``None``."""
    wanted = normalize_registry_key(registry)
    helpers = document.get("credHelpers")
    if isinstance(helpers, dict):
        for key, helper in helpers.items():
            if normalize_registry_key(str(key)) == wanted:
                raise CredentialsError(
                    f"{source} sends {registry} to the credential helper "
                    f"docker-credential-{helper}, which keelhaul does not run; {_HELP}"
                )
    auths = document.get("auths")
    entry: Any = None
    if isinstance(auths, dict):
        for key, value in auths.items():
            if normalize_registry_key(str(key)) == wanted:
                entry = value
                break
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise CredentialsError(f"{source}: the entry for {registry} is not an object")
    identity = entry.get("identitytoken") or None
    username: str | None = None
    password: str | None = None
    if entry.get("auth"):
        username, password = _decode_auth(str(entry["auth"]), source)
    elif entry.get("username"):
        username, password = str(entry["username"]), str(entry.get("password") or "")
    if username is None and identity is None:
        store = document.get("credsStore")
        if store:
            raise CredentialsError(
                f"{source} keeps the credentials for {registry} in the credential store "
                f"docker-credential-{store}, which keelhaul does not run; {_HELP}"
            )
        return None
    return Credentials(
        username=username or None,
        password=password if not identity else None,
        identity_token=str(identity) if identity else None,
        source=source,
    )


def resolve_credentials(
    registry: str,
    *,
    username: str | None = None,
    password: str | None = None,
    environ: Mapping[str, str],
    home: Path,
    authfile: Path | None = None,
    read: Callable[[Path], str] = lambda p: p.read_text(encoding="utf-8"),
) -> Credentials:
    """Apply the precedence above. ``read`` is the only I/O (tests pass a dict lookup)."""
    if username is not None:
        if password is None:
            raise CredentialsError("--username needs --password or --password-stdin")
        return Credentials(username, password, source="flags")
    if password is not None:
        raise CredentialsError("--password needs --username")
    env_user = environ.get(ENV_USERNAME)
    if env_user:
        env_password = environ.get(ENV_PASSWORD)
        if env_password is None:
            raise CredentialsError(f"{ENV_USERNAME} is set but {ENV_PASSWORD} is not")
        return Credentials(env_user, env_password, source="environment")
    for path in credential_files(environ, home, authfile):
        try:
            text = read(path)
        except FileNotFoundError:
            if path == authfile:
                raise CredentialsError(f"--authfile {path} does not exist") from None
            continue
        except OSError as exc:
            raise CredentialsError(f"cannot read {path}: {exc.strerror}") from None
        try:
            document = json.loads(text)
        except ValueError:
            raise CredentialsError(f"{path} is not valid JSON") from None
        if not isinstance(document, dict):
            raise CredentialsError(f"{path} is not a JSON object")
        found = credentials_from_config(document, registry, str(path))
        if found is not None:
            return found
    return Credentials()
