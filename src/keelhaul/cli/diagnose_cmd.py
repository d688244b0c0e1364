"""``keelhaul diagnose`` and ``keelhaul profile``: which tier limits a running stack, and why.

Both watch a stack started with ``keelhaul stack up`` while some load runs (``keelhaul
load``, ``hey``, real clients). ``keelhaul load --diagnose`` does the same for its own run.
The verdict goes to stdout, progress to stderr; errors map to exit codes in
:mod:`keelhaul.cli.main` (3: no running stack, 7: the diagnosis or the profiler failed).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from keelhaul.cli.stack_cmd import DEFAULT_DIR  # spelled out there: nothing heavy is imported

if TYPE_CHECKING:
    from keelhaul.diagnose.model import Collection

__all__ = ["diagnose", "profile"]

PLAIN_EVERY_S = 10.0
"""Off a terminal, a progress line this often (a terminal's status line: every second)."""

_dir_option = click.option(
    "--dir",
    "stack_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DIR,
    show_default=True,
    help="The stack to watch (keelhaul stack up --dir).",
)


STACK_PROMETHEUS = "stack"
"""``--prometheus`` without a URL: the one in ``--dir``'s stack.json."""


def _say(message: str) -> None:
    click.echo(f"keelhaul diagnose: {message}", file=sys.stderr)  # rich's proxy while live


def _progress(duration: float) -> tuple[Callable[[float, Callable[[], Collection]], None], Any]:
    """The callback ``diagnose_for`` calls each second, and what to stop at the end: a rich
    status line on a terminal, a plain line every PLAIN_EVERY_S seconds elsewhere."""
    from keelhaul.diagnose.watching import progress_text, top_cpu_tier

    if sys.stderr.isatty():
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text

        live = Live(console=Console(file=sys.stderr), auto_refresh=False, transient=True)
        live.start()

        def draw(watched: float, collection: Callable[[], Collection]) -> None:
            text = progress_text(watched, duration, top_cpu_tier(collection()))
            live.update(Text(f"keelhaul diagnose: {text}"), refresh=True)

        return draw, live.stop
    printed = [0.0]

    def line(watched: float, collection: Callable[[], Collection]) -> None:
        if watched - printed[0] >= PLAIN_EVERY_S:
            printed[0] = watched
            _say("progress " + progress_text(watched, duration, top_cpu_tier(collection())))

    return line, lambda: None


@click.command("diagnose")
@_dir_option
@click.option("--duration", type=click.FloatRange(min=2, max=3600), default=20.0, show_default=True,
              help="Seconds to watch (Ctrl-C stops early and still reports).")  # fmt: skip
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the self-contained HTML report here.")  # fmt: skip
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the JSON report here.")  # fmt: skip
@click.option("--profile", "with_profile", is_flag=True,
              help="Also record a call graph of the token service's workers (py-spy).")  # fmt: skip
@click.option("--load-pid", "load_pids", type=int, multiple=True, metavar="PID",
              help="A load-generator process to watch (repeatable; others are found "
              "by their connections to the stack).")  # fmt: skip
@click.option("--prometheus", metavar="URL", is_flag=False, flag_value=STACK_PROMETHEUS,
              help="Read every tier's signals from this Prometheus (query_range); alone, the "
              "one recorded in --dir's stack.json (stack up --monitoring).")  # fmt: skip
@click.option("--tiers", "tiers_path", type=click.Path(dir_okay=False, path_type=Path),
              help="With --prometheus: the tier mapping file (default: stack up "
              "--monitoring's jobs; see docs/configuration.md).")  # fmt: skip
@click.option("--window", metavar="START..END",
              help="With --prometheus: a past window (epoch seconds or ISO 8601) "
              "instead of watching --duration seconds from now.")  # fmt: skip
def diagnose(
    stack_dir: Path,
    duration: float,
    html_path: Path | None,
    json_path: Path | None,
    with_profile: bool,
    load_pids: tuple[int, ...],
    prometheus: str | None,
    tiers_path: Path | None,
    window: str | None,
) -> None:
    """Watch a running stack under load and name the tier that limits it, with evidence."""
    from keelhaul.diagnose.session import diagnose_for, write_reports
    from keelhaul.diagnose.summary import render_text

    if prometheus is None and (tiers_path is not None or window is not None):
        raise click.UsageError("--tiers and --window go with --prometheus")
    if prometheus is not None and with_profile:
        raise click.UsageError("--profile needs the local stack; it cannot go with --prometheus")
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_a: stop.set())
    progress, end_progress = _progress(duration)
    try:
        if prometheus is not None:
            report = _through_prometheus(
                stack_dir, prometheus, tiers_path, window, duration, load_pids, stop
            )
        else:
            report = diagnose_for(
                stack_dir, duration, load_pids=load_pids, profile=with_profile, stop=stop,
                say=_say, progress=progress,
            )  # fmt: skip
    finally:
        end_progress()
        signal.signal(signal.SIGINT, previous)
    write_reports(report, json_path=json_path, html_path=html_path)
    click.echo(render_text(report), nl=False)
    for label, path in (("JSON report", json_path), ("HTML report", html_path)):
        if path is not None:
            click.echo(f"{label}: {path.resolve()}")


def _through_prometheus(
    stack_dir: Path,
    prometheus: str,
    tiers_path: Path | None,
    window: str | None,
    duration: float,
    load_pids: tuple[int, ...],
    stop: threading.Event,
) -> Any:
    from keelhaul.diagnose.promrun import diagnose_prometheus, parse_window, tier_map
    from keelhaul.diagnose.targets import stack_monitoring

    url, entry_ports = stack_monitoring(stack_dir)
    if prometheus != STACK_PROMETHEUS:
        url = prometheus
    elif url is None:
        raise click.UsageError(
            f"the stack in {stack_dir} records no Prometheus (keelhaul stack up --monitoring); "
            "give --prometheus URL"
        )
    tiers = tier_map(tiers_path)
    span = parse_window(window) if window is not None else None
    return diagnose_prometheus(
        url, tiers, seconds=duration, window=span, load_pids=load_pids,
        entry_ports=entry_ports, stop=stop, say=_say,
    )  # fmt: skip


@click.command("profile")
@_dir_option
@click.option("--duration", type=click.FloatRange(min=1, max=3600), default=10.0, show_default=True,
              help="Seconds to sample.")  # fmt: skip
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("callgraph.svg"), show_default=True,
              help="Where to write the SVG call graph.")  # fmt: skip
@click.option("--dot", "dot_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the graph's DOT source.")  # fmt: skip
@click.option("--rate", type=click.IntRange(min=1, max=1000), default=100, show_default=True,
              help="Samples per second per worker.")  # fmt: skip
def profile(stack_dir: Path, duration: float, out: Path, dot_path: Path | None, rate: int) -> None:
    """A call graph of the token service's workers under the current load (py-spy + dot)."""
    import tempfile

    from keelhaul.diagnose.profile import Profiler, analyse_profile
    from keelhaul.diagnose.session import write_text
    from keelhaul.diagnose.watch import load_targets
    from keelhaul.errors import DiagnoseError

    _state, targets = load_targets(stack_dir)
    if "auth" not in targets.leaders:
        raise DiagnoseError(f"the stack in {stack_dir} has no token service to profile")
    with tempfile.TemporaryDirectory(prefix="keelhaul-profile-") as work:
        profiler = Profiler(targets.leaders["auth"], Path(work) / "profile.txt", rate=rate)
        _say(f"sampling the token service (pid {profiler.pid} and its workers) for {duration:g} s")
        raw = profiler.run_for(duration)
        result = analyse_profile(raw, title="token service workers (py-spy samples)")
    if result.svg is None:
        raise DiagnoseError(result.note or "no call graph")
    write_text(out, result.svg)
    if dot_path is not None:
        write_text(dot_path, result.dot)
    summary: Any = result.summary
    if result.hot is not None:
        share = f"{100 * result.hot.share:.0f}%"
        click.echo(f"{share} of {summary['samples']} samples in {result.hot.function}")
    click.echo("hottest path:")
    for step in summary.get("hottest_path", []):
        click.echo(f"  {100 * step['share']:5.1f}%  {step['function']}")
    click.echo(f"call graph: {out.resolve()}")
