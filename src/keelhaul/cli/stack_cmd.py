"""``keelhaul stack up|status|down|doctor|render``: the reference stack from the command line."""

from __future__ import annotations

import dataclasses
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from keelhaul.names import COMPONENTS, WORKER_CLASSES

if TYPE_CHECKING:
    from keelhaul.stack import Stack, StackState

__all__ = ["stack"]

DEFAULT_DIR = Path(".keelhaul/stack")

_dir_option = click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_DIR,
    show_default=True,
    help="The stack's directory (configs, keys, logs, data, stack.json).",
)


def _parse_ports(values: tuple[str, ...]) -> dict[str, int] | None:
    if not values:
        return None
    ports: dict[str, int] = {}
    for value in values:
        name, sep, number = value.partition("=")
        if not sep or name not in COMPONENTS or not number.isdigit():
            raise click.BadParameter(
                f"{value!r}: expected COMPONENT=PORT with COMPONENT one of {', '.join(COMPONENTS)}",
                param_hint="--port",
            )
        ports[name] = int(number)
    return ports


@click.group()
def stack() -> None:
    """The reference stack: nginx, registry, token service and Redis (and, with
    --monitoring, Prometheus and exporters); its doctor; its deployment artifacts."""


_KNOBS = (
    click.option("--auth-workers", type=int, help="Token service workers [default: 2 x CPU]."),
    click.option(
        "--auth-worker-class",
        type=click.Choice(WORKER_CLASSES),
        help="Token service worker class [default: gevent].",
    ),
    click.option(
        "--credential-cache/--no-credential-cache",
        default=None,
        help="Remember verified passwords [default: on].",
    ),
    click.option(
        "--bcrypt-cost", type=int, help="bcrypt cost of the users' hashes (4..16) [default: 10]."
    ),
    click.option(
        "--redis/--no-redis",
        default=None,
        help="Redis for the registry's blob cache and the credential cache [default: on].",
    ),
    click.option(
        "--redis-url",
        metavar="redis://[:PW@]HOST:PORT/DB",
        help="Use this Redis (one the stack does not run) for the registry's blob cache and "
        "the token service's cache and throttle [default: the stack's own redis-server].",
    ),
    click.option(
        "--proxy-workers", type=int, help="nginx worker_processes [default: auto, 1 per CPU]."
    ),
    click.option("--proxy-connections", type=int, help="nginx worker_connections [default: 4096]."),
    click.option(
        "--tls/--no-tls",
        default=None,
        help="Serve the entry point over https with a generated CA [default: off].",
    ),
    click.option(
        "--monitoring/--no-monitoring",
        default=None,
        help="Also run Prometheus (1 s scrapes) and the node, process, nginx and Redis "
        "exporters [default: off].",
    ),
)
_KNOB_NAMES = (
    "auth_workers",
    "auth_worker_class",
    "credential_cache",
    "bcrypt_cost",
    "redis",
    "redis_url",
    "proxy_workers",
    "proxy_connections",
    "tls",
    "monitoring",
)


def _knob_options(command: Callable[..., None]) -> Callable[..., None]:
    """The stack's knobs, the same for `up` and `render` (one settings object for both)."""
    for option in reversed(_KNOBS):
        command = option(command)
    return command


@stack.command()
@_dir_option
@_knob_options
@click.option(
    "--port",
    "ports",
    multiple=True,
    metavar="COMPONENT=PORT",
    help=f"Force a port ({', '.join(COMPONENTS)}); repeatable. Default: free ports.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the stack (no passwords) as JSON.")
def up(*, directory: Path, ports: tuple[str, ...], as_json: bool, **knobs: Any) -> None:
    """Start the stack in DIR and leave it running (stop it with `keelhaul stack down`).

    nginx is the entry point (/v2/ to the registry, /token to the token service); the
    knobs reproduce the field report's wrong shapes for experiments, and each is recorded
    in DIR/stack.json.
    """
    from keelhaul.stack import Stack, load_stack_settings

    settings = load_stack_settings(
        {**{k: knobs[k] for k in _KNOB_NAMES}, "ports": _parse_ports(ports)}
    )
    target = Stack(directory, settings)
    t0 = time.monotonic()
    # a SIGTERM mid-start unwinds like Ctrl-C, so that `up` stops what it already started
    signal.signal(signal.SIGTERM, _interrupt)
    state = target.up(progress=lambda msg: click.echo(msg, err=True))
    elapsed = time.monotonic() - t0
    if as_json:
        click.echo(json.dumps(state.public(), indent=2))
        return
    _print_summary(state, target, elapsed)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _redis_line(state: StackState) -> str:
    shown = state.public()["redis_url"]
    if shown is None:
        return "(none)"
    return f"{shown}  (external: not started by this stack)" if state.external_redis else shown


def _print_summary(state: StackState, target: Stack, elapsed: float) -> None:
    root = target.layout.root
    rows = [
        ("entry", f"{state.entry}  (clients use this one; realm {state.realm})"),
        *(
            [("ca", f"{state.ca_cert}  (skopeo --cert-dir, docker certs.d)")]
            if state.ca_cert
            else []
        ),
        ("registry", f"{state.registry}  (behind the proxy)"),
        ("token", f"{state.token_url}  (behind the proxy)"),
        ("service", state.service),
        ("redis", _redis_line(state)),
        *([("prometheus", state.prometheus)] if state.prometheus else []),
        ("users", f"{', '.join(state.users)} (passwords in {target.layout.state_file}, mode 0600)"),
        ("logs", str(target.layout.logs_dir)),
        ("stop", f"keelhaul stack down --dir {root}"),
    ]
    click.echo(f"stack up in {elapsed:.1f} s")
    for label, value in rows:
        click.echo(f"  {label:<9} {value}")


@stack.command()
@_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON document (no passwords).")
def status(directory: Path, as_json: bool) -> None:
    """Probe every component; exit 0 when all are healthy, 1 otherwise."""
    from keelhaul.stack import Stack, load_stack_settings

    report = Stack(directory, load_stack_settings()).status()
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        verdict = "healthy" if report.healthy else "NOT healthy"
        click.echo(f"stack in {report.state.dir}: {report.state.status}, {verdict}")
        click.echo(f"  {'COMPONENT':<16} {'PID':>8}  {'ALIVE':<5}  {'HEALTH':<28}  URL")
        for c in report.components:
            health = "ok" if c.healthy else "FAIL"
            if c.detail:
                health = f"{health} ({c.detail})"
            pid = "external" if c.external else str(c.pid) if c.pid is not None else "-"
            alive = "yes" if c.alive else "no"
            click.echo(f"  {c.name:<16} {pid:>8}  {alive:<5}  {health:<28}  {c.url}")
    if not report.healthy:
        failing = [c.name for c in report.components if not (c.alive and c.healthy)]
        what = f"failing: {', '.join(failing)}" if failing else report.state.status
        # a ClickException (exit 1) rather than ctx.exit(1): main() runs click in
        # non-standalone mode, where only exceptions carry an exit code
        raise click.ClickException(f"the stack in {report.state.dir} is not healthy ({what})")


@stack.command()
@_dir_option
def down(directory: Path) -> None:
    """Stop exactly the processes `up` started in DIR; the registry's data is kept."""
    from keelhaul.stack import Stack, load_stack_settings

    target = Stack(directory, load_stack_settings())
    report = target.down()
    root = target.layout.root
    if not report.found:
        click.echo(f"no stack in {root}; nothing to stop")
        return
    if report.stopped:
        listed = ", ".join(f"{name} (pid {pid})" for name, pid in report.stopped.items())
        click.echo(f"stopped {listed}")
        if report.gone:
            click.echo(f"already gone: {', '.join(report.gone)}")
    else:
        click.echo(f"the stack in {root} was not running; nothing to stop")
    click.echo(f"data kept in {target.layout.data_dir}")


@stack.command()
@_dir_option
@click.argument("component")
def restart(directory: Path, component: str) -> None:
    """(Re)start one COMPONENT (redis, auth, registry, nginx; with --monitoring also
    prometheus and the *_exporter ones) of a running stack.

    Same ports, configs, keys and data as before: for bringing back a crashed component.
    """
    from keelhaul.stack import Stack, load_stack_settings

    Stack(directory, load_stack_settings()).restart(component, progress=click.echo)


_config_path = click.Path(path_type=Path, dir_okay=False, exists=True)


@stack.command()
@_dir_option
@click.option(
    "--registry-config", "registry_configs", multiple=True, type=_config_path,
    help="A registry config.yml (repeat for every registry replica or environment).",
)  # fmt: skip
@click.option(
    "--auth-config", "auth_configs", multiple=True, type=_config_path,
    help="A token service config (repeatable).",
)  # fmt: skip
@click.option(
    "--nginx-config", "nginx_configs", multiple=True, type=_config_path,
    help="An nginx.conf (its includes are followed; repeatable).",
)  # fmt: skip
@click.option("--registry-url", help="Where to read the registry's clock [default: its http.host].")
@click.option("--cpus", type=click.IntRange(min=1), help="Cores of the hosts the configs run on.")
@click.option(
    "--files-root", "files_root", multiple=True,
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Where files named in the configs (bundle, certificates) are found, if not at "
    "their own paths: a copy of the remote file system.",
)  # fmt: skip
@click.option(
    "--ca-cert", type=click.Path(dir_okay=False, exists=True), help="CA for https probes."
)
@click.option("--probe/--no-probe", default=True, help="Live checks: realm, clocks [on].")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def doctor(
    *,
    directory: Path,
    registry_configs: tuple[Path, ...],
    auth_configs: tuple[Path, ...],
    nginx_configs: tuple[Path, ...],
    registry_url: str | None,
    cpus: int | None,
    files_root: tuple[Path, ...],
    ca_cert: str | None,
    probe: bool,
    as_json: bool,
) -> None:
    """Check every tier's configuration against the others; exit 1 when anything is flagged.

    Without config files, examines the local stack in DIR. With them (a remote deployment),
    examines exactly those; --cpus tells the cores there.
    """
    from keelhaul.stack.doctor import DoctorRequest, check_stack, render_text, request_for_stack

    if registry_configs or auth_configs or nginx_configs:
        request = DoctorRequest(
            registry_configs=registry_configs,
            auth_configs=auth_configs,
            nginx_configs=nginx_configs,
            registry_url=registry_url,
            cpus=cpus,
            cpus_source="--cpus" if cpus else "",
            files_root=files_root,
            ca_cert=ca_cert,
            probe=probe,
        )
    else:
        request = request_for_stack(directory, probe=probe)
        if cpus is not None:
            request = dataclasses.replace(request, cpus=cpus, cpus_source="--cpus")
    report = check_stack(request)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        click.echo(render_text(report))
    if not report.ok:
        raise click.exceptions.Exit(1)


@stack.command()
@click.option(
    "--target", type=click.Choice(["compose", "k8s"]), required=True, help="What to render."
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Directory to write (secret material in it is kept across renders).",
)
@click.option(
    "--public-url",
    help="The entry point as clients see it [default: http://localhost:5000].",
)
@click.option(
    "--storage",
    type=click.Choice(["filesystem", "s3", "gcs"]),
    help="Registry storage [default: filesystem (a PVC on Kubernetes)].",
)
@click.option("--bucket", help="s3/gcs bucket.")
@click.option("--region", help="s3 region.")
@click.option("--endpoint", help="s3 regionendpoint (MinIO, Ceph...).")
@click.option("--storage-prefix", help="Root directory inside the bucket.")
@click.option("--storage-size", help="PVC size for filesystem storage [default: 50Gi].")
@click.option("--namespace", help="Kubernetes namespace of every object.")
@click.option("--cpus", type=int, help="CPU limit per container; workers follow it [default: 2].")
@click.option("--auth-image", help="The token service's image [default: keelhaul-auth:VERSION].")
@click.option("--registry-image", help="The registry's image [default: registry:2.8.3].")
@click.option(
    "--nginx-image", help="nginx's image [default: nginxinc/nginx-unprivileged:1.26-alpine]."
)
@click.option("--redis-image", help="Redis' image [default: redis:7.2-alpine].")
@click.option(
    "--publish-address",
    help="compose: publish the entry on this host address only, e.g. 127.0.0.1 "
    "[default: every address].",
)
@click.option(
    "--keys",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Bring token.key/token.crt (and tls.crt/tls.key) instead of generating them.",
)
@_knob_options
def render(
    *,
    target: str,
    out: Path,
    public_url: str | None,
    storage: str | None,
    bucket: str | None,
    region: str | None,
    endpoint: str | None,
    storage_prefix: str | None,
    storage_size: str | None,
    namespace: str | None,
    cpus: int | None,
    auth_image: str | None,
    registry_image: str | None,
    nginx_image: str | None,
    redis_image: str | None,
    publish_address: str | None,
    keys: Path | None,
    **knobs: Any,
) -> None:
    """Write compose.yaml or Kubernetes manifests from the settings the local stack uses."""
    from pydantic import ValidationError

    from keelhaul.errors import ConfigError
    from keelhaul.settings_base import validation_problems
    from keelhaul.stack import load_stack_settings
    from keelhaul.stack.render import DeploySettings, render_deployment

    settings = load_stack_settings({k: knobs[k] for k in _KNOB_NAMES})
    given = {
        "driver": storage,
        "bucket": bucket,
        "region": region,
        "endpoint": endpoint,
        "rootdirectory": storage_prefix,
        "size": storage_size,
    }
    raw: dict[str, Any] = {
        "target": target,
        "storage": {k: v for k, v in given.items() if v is not None},
    }
    if public_url is None and settings.tls:
        public_url = "https://localhost:5443"
    optional = {
        "public_url": public_url,
        "namespace": namespace,
        "cpus": cpus,
        "publish_address": publish_address,
    }
    raw.update({k: v for k, v in optional.items() if v is not None})
    images = {
        "auth": auth_image,
        "registry": registry_image,
        "nginx": nginx_image,
        "redis": redis_image,
    }
    if any(v is not None for v in images.values()):
        raw["images"] = {k: v for k, v in images.items() if v is not None}
    try:
        deploy = DeploySettings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError("render", validation_problems(exc)) from None
    result = render_deployment(settings, deploy, out, keys=keys)
    for path in result.files:
        click.echo(f"wrote {path}")
    click.echo(f"users and passwords: {result.passwords_file} (mode 0600)")
    for note in result.notes:
        click.echo(f"note: {note}")
