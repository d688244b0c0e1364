"""``keelhaul stack up|status|down``: the local reference stack from the command line."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from keelhaul.stack import Stack, StackState

__all__ = ["stack"]

# Spelled out here so that `keelhaul --help` need not import the stack (pydantic, httpx...).
DEFAULT_DIR = Path(".keelhaul/stack")
COMPONENTS = ("redis", "auth", "registry", "registry_debug")
WORKER_CLASSES = ("gevent", "sync", "gthread")

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
    """Run Redis, the token service and the registry on loopback, for development and tests."""


@stack.command()
@_dir_option
@click.option("--auth-workers", type=int, help="Token service workers [default: 2 x CPU].")
@click.option(
    "--auth-worker-class",
    type=click.Choice(WORKER_CLASSES),
    help="Token service worker class [default: gevent].",
)
@click.option(
    "--credential-cache/--no-credential-cache",
    default=None,
    help="Remember verified passwords [default: on].",
)
@click.option(
    "--bcrypt-cost", type=int, help="bcrypt cost of the users' hashes (4..16) [default: 10]."
)
@click.option(
    "--redis/--no-redis",
    default=None,
    help="Run Redis for the registry's blob cache and the credential cache [default: on].",
)
@click.option(
    "--port",
    "ports",
    multiple=True,
    metavar="COMPONENT=PORT",
    help=f"Force a port ({', '.join(COMPONENTS)}); repeatable. Default: free ports.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the stack (no passwords) as JSON.")
def up(
    *,
    directory: Path,
    auth_workers: int | None,
    auth_worker_class: str | None,
    credential_cache: bool | None,
    bcrypt_cost: int | None,
    redis: bool | None,
    ports: tuple[str, ...],
    as_json: bool,
) -> None:
    """Start the stack in DIR and leave it running (stop it with `keelhaul stack down`)."""
    from keelhaul.stack import Stack, load_stack_settings

    settings = load_stack_settings(
        {
            "auth_workers": auth_workers,
            "auth_worker_class": auth_worker_class,
            "credential_cache": credential_cache,
            "bcrypt_cost": bcrypt_cost,
            "redis": redis,
            "ports": _parse_ports(ports),
        }
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


def _print_summary(state: StackState, target: Stack, elapsed: float) -> None:
    root = target.layout.root
    rows = [
        ("registry", state.registry),
        ("token", state.token_url),
        ("service", state.service),
        ("redis", state.redis_url or "(none)"),
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
        click.echo(f"  {'COMPONENT':<10} {'PID':>8}  {'ALIVE':<5}  {'HEALTH':<28}  URL")
        for c in report.components:
            health = "ok" if c.healthy else "FAIL"
            if c.detail:
                health = f"{health} ({c.detail})"
            pid = str(c.pid) if c.pid is not None else "-"
            alive = "yes" if c.alive else "no"
            click.echo(f"  {c.name:<10} {pid:>8}  {alive:<5}  {health:<28}  {c.url}")
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
