"""``keelhaul tune``: measure, diagnose, change what the verdict names, measure again.

On a local stack (``--dir``) the knobs are keelhaul's to turn: each change is applied by
restarting only the component that carries it, kept if the goal beats the run-to-run noise,
reverted otherwise. On a remote stack (``--target`` + ``--prometheus``) nothing is changed:
one diagnosed run, and the recommendation printed as not applied. Progress goes to stderr,
the journey table to stdout; errors map to exit codes in :mod:`keelhaul.cli.main` (9).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from keelhaul.cli.stack_cmd import DEFAULT_DIR  # spelled out there: nothing heavy is imported

__all__ = ["tune"]


def _say(message: str) -> None:
    click.echo(f"keelhaul tune: {message}", err=True)


@click.command("tune")
@click.option("--dir", "stack_dir", type=click.Path(file_okay=False, path_type=Path),
              default=DEFAULT_DIR, show_default=True,
              help="The running local stack to tune (keelhaul stack up --dir).")  # fmt: skip
@click.option("--target", metavar="URL",
              help="A remote registry: diagnose once, recommend, change nothing.")  # fmt: skip
@click.option("--prometheus", metavar="URL",
              help="With --target: the Prometheus that watches the remote stack.")  # fmt: skip
@click.option("-u", "--username", help="With --target: the registry user.")
@click.option("--password-stdin", is_flag=True, help="With --target: read the password from stdin.")
@click.option("--mix", help="Scenarios and weights, as keelhaul load [its default].")
@click.option("--users", type=click.IntRange(min=1, max=5000), default=None,
              help="Simulated clients (closed model) [keelhaul load's default].")  # fmt: skip
@click.option("--rate", help="Open model: iterations per second, e.g. 50/s.")
@click.option("--duration", type=click.FloatRange(min=5, max=3600), default=15.0,
              show_default=True, help="Seconds of load per step.")  # fmt: skip
@click.option("--goal", default="throughput", show_default=True,
              help="What to improve: throughput, or STAGE:p50|p90|p95|p99|mean "
              "(e.g. 'image pull:p95').")  # fmt: skip
@click.option("--budget", type=click.IntRange(min=0, max=50), default=6, show_default=True,
              help="Changes tried at most (kept or reverted).")  # fmt: skip
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("keelhaul-tune"), show_default=True,
              help="Where the journey (JSON, HTML, tuned.env) and steps' reports go.")  # fmt: skip
def tune(
    stack_dir: Path,
    target: str | None,
    prometheus: str | None,
    username: str | None,
    password_stdin: bool,
    mix: str | None,
    users: int | None,
    rate: str | None,
    duration: float,
    goal: str,
    budget: int,
    out_dir: Path,
) -> None:
    """Walk the bottleneck journey: diagnose, change the limiting knob, keep what helps."""
    from keelhaul.errors import TuneError
    from keelhaul.tune.journey import parse_goal
    from keelhaul.tune.measure import LoadShape
    from keelhaul.tune.report import before_after, render_table, stack_flags, write_reports
    from keelhaul.tune.session import TuneRequest, tune_local, tune_remote

    if users is not None and rate is not None:
        raise TuneError("--users and --rate exclude each other (closed or open model)")
    if prometheus and not target:
        raise TuneError("--prometheus goes with --target (a local stack is watched directly)")
    extra: list[str] = []
    stdin = None
    if target:
        extra += ["--target", target]
        if username:
            extra += ["--username", username]
        if password_stdin:
            extra.append("--password-stdin")
            stdin = sys.stdin.read()
        if prometheus:
            extra += ["--prometheus", prometheus]
    shape = LoadShape(mix=mix, users=users, rate=rate, seconds=duration, extra=tuple(extra))
    req = TuneRequest(
        shape=shape,
        goal=parse_goal(goal),
        out_dir=out_dir,
        budget=budget,
        stack_dir=None if target else stack_dir,
        stdin=stdin,
    )
    journey = tune_remote(req, _say) if target else tune_local(req, _say)
    paths = write_reports(journey, out_dir)
    click.echo(render_table(journey), nl=False)
    if journey.remote:
        click.echo("recommended, NOT applied:")
        for line in journey.recommendation or ["nothing to change"]:
            click.echo(f"  - {line}")
    else:
        line = before_after(journey)
        if line:
            click.echo(line)
        flags = " ".join(stack_flags(journey.final_settings)) or "(the defaults)"
        click.echo(f"tuned stack: keelhaul stack up {flags}")
        click.echo(f"tuned settings for stack up / stack render: {paths['env'].resolve()}")
    click.echo(f"stopped: {journey.stopped}")
    click.echo(f"journey: {paths['html'].resolve()} (JSON: {paths['json'].resolve()})")
