"""``keelhaul auth``: run and operate the token service."""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path

import click

__all__ = ["auth"]

_config_option = click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="KEELHAUL_AUTH_CONFIG",
    help="token service config (YAML); default: $KEELHAUL_AUTH_CONFIG",
)


@click.group()
def auth() -> None:
    """The registry token service."""


@auth.command()
@_config_option
@click.option("--bind", help="host:port (server.bind)")
@click.option("--workers", type=int, help="gunicorn workers (server.workers; default 2 x CPU)")
@click.option(
    "--worker-class", type=click.Choice(["gevent", "sync", "gthread"]), help="server.worker_class"
)
@click.option("--worker-connections", type=int, help="server.worker_connections (gevent)")
@click.option("--threads", type=int, help="server.threads (gthread)")
@click.option("--timeout", type=int, help="server.timeout, seconds")
def serve(
    config: Path | None,
    bind: str | None,
    workers: int | None,
    worker_class: str | None,
    worker_connections: int | None,
    threads: int | None,
    timeout: int | None,
) -> None:
    """Serve the token service under gunicorn (gevent workers by default)."""
    from keelhaul.auth.settings import load_with_overrides

    overrides = {
        "bind": bind,
        "workers": workers,
        "worker_class": worker_class,
        "worker_connections": worker_connections,
        "threads": threads,
        "timeout": timeout,
    }
    settings = load_with_overrides(config, overrides)
    if settings.server.worker_class == "gevent":
        # This is the process entry point: patch before ssl, redis or gunicorn are imported,
        # so the master and its forked workers see one consistent, cooperative stdlib.
        from gevent import monkey

        monkey.patch_all()
    from keelhaul.auth.serve import serve as run

    run(settings, config, overrides)


@auth.command()
@_config_option
def check(config: Path | None) -> None:
    """Validate the config, keys and user stores; print a summary (no secrets)."""
    from keelhaul.auth.settings import load_auth_settings
    from keelhaul.auth.wiring import build

    settings = load_auth_settings(config)
    parts = build(settings)
    ring = parts.service.keys
    click.echo(
        f"issuer={settings.token.issuer} service={settings.token.service} "
        f"algorithm={settings.token.algorithm} kid={ring.signer.kid} keys={len(ring.keys)}"
    )
    for warning in ring.warnings:
        click.echo(f"warning: {warning}")
    for backend in parts.backends:
        ok, detail = backend.health()
        click.echo(f"users.{backend.name}: {'ok' if ok else 'PROBLEM'} ({detail})")
    click.echo(
        f"acl: {len(settings.acl)} rules; cache: "
        + (
            "redis + local"
            if settings.cache.redis_url
            else "local"
            if settings.cache.enabled
            else "off"
        )
    )


@auth.command()
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="directory for NAME.key (0600) and NAME.crt",
)
@click.option(
    "--algorithm", type=click.Choice(["ES256", "RS256"]), default="ES256", show_default=True
)
@click.option("--name", default="token", show_default=True)
@click.option("--days", type=click.IntRange(1, 3650), default=365, show_default=True)
def keygen(out: Path, algorithm: str, name: str, days: int) -> None:
    """Create a signing key and its self-signed certificate (the registry's rootcertbundle)."""
    from keelhaul.auth.keygen import generate_keypair

    for path in (out / f"{name}.key", out / f"{name}.crt"):
        if path.exists():
            raise click.ClickException(
                f"{path} exists; choose another --name or --out (keys are never overwritten)"
            )
    out.mkdir(parents=True, exist_ok=True)
    pair = generate_keypair(out, algorithm=algorithm, name=name, days=days)  # type: ignore[arg-type]
    click.echo(f"key:  {pair.key}\ncert: {pair.cert}")


@auth.command()
@_config_option
def jwks(config: Path | None) -> None:
    """Print the public keys as a JWKS document (registry 3.x `auth.token.jwks`)."""
    from keelhaul.auth.settings import load_auth_settings
    from keelhaul.auth.signing import KeyRing

    ring = KeyRing.from_settings(load_auth_settings(config).token)
    click.echo(json.dumps(ring.jwks(), indent=2))


@auth.command()
@_config_option
def bundle(config: Path | None) -> None:
    """Print every configured certificate as PEM (the registry's `auth.token.rootcertbundle`)."""
    from keelhaul.auth.settings import load_auth_settings
    from keelhaul.auth.signing import KeyRing

    ring = KeyRing.from_settings(load_auth_settings(config).token)
    sys.stdout.write(ring.bundle_pem().decode("ascii"))


@auth.command(name="import-docker-auth")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="directory for auth.yml and htpasswd (0600; never overwritten)",
)
@click.option("--service", help="the registry's auth.token.service (docker_auth has none)")
def import_docker_auth(file: Path, out: Path, service: str | None) -> None:
    """Convert a cesanta/docker_auth config; exit 8 listing what could not be carried over."""
    import yaml

    from keelhaul.atomicfile import write_text
    from keelhaul.auth.docker_auth import convert
    from keelhaul.errors import ConfigError, IncompleteImport

    try:
        docker = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError("import", [f"{file}: cannot read a YAML document: {exc}"]) from None
    if not isinstance(docker, dict):
        raise ConfigError("import", [f"{file}: not a docker_auth configuration (a mapping)"])
    htpasswd = out / "htpasswd"
    imported = convert(docker, service=service, htpasswd_path=str(htpasswd.resolve()))
    config = {"secret": secrets.token_urlsafe(48), **imported.config}
    for path in (out / "auth.yml", htpasswd):
        if path.exists():
            raise click.ClickException(f"{path} exists; choose another --out")
    write_text(
        out / "auth.yml",
        yaml.safe_dump(config, sort_keys=False, allow_unicode=True),
        mode=0o600,
        exclusive=True,
    )
    lines = "".join(f"{line}\n" for line in imported.htpasswd)
    write_text(htpasswd, lines, mode=0o600, exclusive=True)
    click.echo(
        f"wrote {out / 'auth.yml'} ({len(config['acl'])} ACL rules) and {htpasswd} "
        f"({len(imported.htpasswd)} users)"
    )
    for note in imported.notes:
        click.echo(f"note: {note}")
    if imported.left_out:
        listed = "\n".join(f"  - {item}" for item in imported.left_out)
        raise IncompleteImport(f"not carried over ({len(imported.left_out)}):\n{listed}")


@auth.command(name="hash")
@click.option("--cost", type=click.IntRange(4, 16), default=10, show_default=True)
@click.option("--user", help="print an htpasswd line user:hash instead of the bare hash")
def hash_(cost: int, user: str | None) -> None:
    """Hash a password read from stdin (or a hidden prompt) with bcrypt."""
    from keelhaul.auth.authn.htpasswd import hash_password

    if sys.stdin.isatty():
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\n")
    if not password:
        raise click.ClickException("empty password")
    hashed = hash_password(password, cost)
    click.echo(f"{user}:{hashed}" if user else hashed)


@auth.command()
def secret() -> None:
    """Print a new random server secret (for the `secret` setting)."""
    click.echo(secrets.token_urlsafe(48))


# --- robot accounts ---------------------------------------------------------------------

_robot_file_option = click.option(
    "--file",
    "file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="the robot file; default: the path of the `kind: robots` backend in --config",
)


def _robot_file(config: Path | None, file: Path | None) -> Path:
    if file is not None:
        return file
    from keelhaul.auth.settings import load_auth_settings

    for backend in load_auth_settings(config).users:
        if backend.kind == "robots":
            return backend.path
    raise click.ClickException(
        "no `kind: robots` backend under users: in the config; add one or give --file"
    )


@auth.group()
def robot() -> None:
    """Robot accounts: machine credentials with their own allow list (shown once)."""


@robot.command("create")
@click.argument("name")
@click.option(
    "--allow",
    "allow",
    multiple=True,
    required=True,
    help="TYPE:NAME-PATTERN:ACTIONS, e.g. 'repository:team/*:pull,push' (repeatable)",
)
@click.option("--expires", help="lifetime such as 90d, 12h, 2w; default: never")
@click.option("--description", default="", help="who uses it, for `robot list`")
@_config_option
@_robot_file_option
def robot_create(
    name: str,
    allow: tuple[str, ...],
    expires: str | None,
    description: str,
    config: Path | None,
    file: Path | None,
) -> None:
    """Create robot NAME and print its secret (the only time it is shown)."""
    import time

    from keelhaul.auth.authn.robots import RobotFile, new_robot, parse_duration

    try:
        seconds = parse_duration(expires) if expires else None
        made, secret_ = new_robot(
            name, allow, now=time.time(), expires_in=seconds, description=description
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    with RobotFile(_robot_file(config, file)).changing() as robots:
        if name in robots:
            raise click.ClickException(f"robot {name} exists; revoke it first to replace it")
        robots[name] = made
    click.echo(secret_)


@robot.command("list")
@_config_option
@_robot_file_option
def robot_list(config: Path | None, file: Path | None) -> None:
    """List robots: name, state, expiry, allow list, description (never secrets)."""
    import time
    from datetime import UTC, datetime

    from keelhaul.auth.authn.robots import RobotFile

    now = time.time()
    for r in sorted(RobotFile(_robot_file(config, file)).read().values(), key=lambda r: r.name):
        until = (
            datetime.fromtimestamp(r.expires, UTC).strftime("%Y-%m-%dT%H:%MZ")
            if r.expires
            else "never"
        )
        state = "expired" if r.expired(now) else "active"
        click.echo(f"{r.name}\t{state}\texpires={until}\t{' '.join(r.allow)}\t{r.description}")


@robot.command("revoke")
@click.argument("name")
@_config_option
@_robot_file_option
def robot_revoke(name: str, config: Path | None, file: Path | None) -> None:
    """Revoke robot NAME: its logins, cached ones included, stop at the next reload."""
    from keelhaul.auth.authn.robots import RobotFile

    with RobotFile(_robot_file(config, file)).changing() as robots:
        if robots.pop(name, None) is None:
            raise click.ClickException(f"no robot named {name}")
    click.echo(f"revoked {name}")
