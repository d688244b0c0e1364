"""``keelhaul load``: load a registry the way docker clients do, on Locust.

Locust (and gevent's monkey-patching of the whole process) is imported only in a process
that runs ``keelhaul load``, first thing: :func:`patch_process`, which ``keelhaul.cli.main``
calls before it sets up the other commands (whose modules may import ssl). Progress goes to
stderr, the summary table to stdout. Exit codes (mapped in :mod:`keelhaul.cli.main`): 0 the
run passed, 6 ``--check`` thresholds failed (after the reports were written), 5 the run
could not be done (target, credentials, seeding, workers), 2 a usage error, 130 Ctrl-C
(after the reports were written).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from keelhaul.load.mix import DEFAULT_MIX
from keelhaul.load.scenarios import SCENARIOS

__all__ = ["load"]

_FIELDS = {
    "run_time": "run_time_s",
    "stop_timeout": "stop_timeout_s",
    "drop_after": "drop_after_s",
    "late_after": "late_after_ms",
    "timeout": "timeout_s",
    "expect_workers_timeout": "expect_workers_timeout_s",
    "print_every": "print_every_s",
}
"""Options whose setting has a unit in its name."""
_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]
_HIDDEN_HELP = "Diagnostics: each worker writes its final statistics to DIR/worker-PID.json."


def patch_process() -> None:
    """This process runs ``keelhaul load``: let Locust monkey-patch it with gevent now,
    before anything imports ssl or opens a socket. Registering the CLI's commands imports
    nothing that does (tests/e2e/test_load_scenarios.py checks it)."""
    import locust  # noqa: F401 - imported for its side effect


def _say(message: str) -> None:
    # sys.stderr looked up now: while the live block is drawn it is rich's proxy, which
    # prints the message above the block instead of through it
    click.echo(f"keelhaul load: {message}", file=sys.stderr)


def _display(settings: Any, diagnosis_since: float | None, diagnosis_file: Path | None) -> Any:
    """Progress on stderr: a live block on a terminal, plain lines elsewhere (CI logs)."""
    from keelhaul.load.live import DisplaySpec

    stream = sys.stderr
    return DisplaySpec(
        stream=stream,
        terminal=stream.isatty(),
        every_s=settings.print_every_s,
        diagnosis_since=diagnosis_since,
        diagnosis_top=(
            _top_reader(diagnosis_file, diagnosis_since or 0.0)
            if diagnosis_file is not None
            else None
        ),
    )


def _top_reader(path: Path, since: float) -> Any:
    """Reads the ``--diagnose`` agent's ``progress.json``: its top CPU tier so far, or None
    (not written yet by this run's agent, or unreadable)."""
    import json

    from keelhaul.diagnose.watching import parse_progress

    def top() -> tuple[str, float] | None:
        try:
            if path.stat().st_mtime < since:  # a previous run's, in the same --diagnose-dir
                return None
            return parse_progress(json.loads(path.read_text(encoding="utf-8")))[1]
        except (OSError, ValueError):
            return None

    return top


def _setup_logging(level: str) -> None:
    """Locust's and keelhaul's loggers, on stderr; warnings only unless asked."""
    import logging

    logging.basicConfig(level=level, format="%(asctime)s keelhaul load [%(name)s]: %(message)s")


@click.command(
    "load",
    epilog=(
        "Scenarios: "
        + "; ".join(f"{name}: {record.description}" for name, record in SCENARIOS.items())
        + ". Without --target, the local stack in --stack-dir is started (or reused) and "
        "loaded. See README.md, 'Load testing'."
    ),
)
@click.option("--target", metavar="URL", help="Registry to load, http(s)://HOST[:PORT].")
@click.option("-u", "--username", help="Registry user (else env or auth files).")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@click.option("--authfile", type=click.Path(dir_okay=False, path_type=Path),
              help="A docker/podman auth file to use first.")  # fmt: skip
@click.option("--insecure", is_flag=True, help="Do not verify the target's TLS certificate.")
@click.option("--stack-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Without --target: the stack to use [.keelhaul/load-stack].")  # fmt: skip
@click.option("--keep-stack", is_flag=True, help="Leave a stack this run started running.")
@click.option("--keep-pushes", is_flag=True,
              help="Leave what the run pushed (else deleted when deletes work).")  # fmt: skip
@click.option("--pushed-log", type=click.Path(dir_okay=False, path_type=Path),
              help="Append repo:tag@digest of each push reported done to FILE.")  # fmt: skip
@click.option("--mix", help=f"Scenarios and weights [{DEFAULT_MIX}].")
@click.option("--users", type=int, help="Simulated clients [10; open model: rate, >= 10].")
@click.option("--spawn-rate", type=float, help="Users started per second [all at once].")
@click.option("--rate", help="Open model: iterations per second, e.g. 50/s.")
@click.option("--late-after", help="Open model: a start this late counts as late [10ms].")
@click.option("--drop-after", help="Open model: a start this late is dropped [1s].")
@click.option("-t", "--run-time", help="Stop after this long, e.g. 30s, 5m [60s headless].")
@click.option("-i", "--iterations", type=int, help="Stop after this many flows in all.")
@click.option("--stop-timeout", help="Let running flows finish this long at the end [10s].")
@click.option("--repo", help="Shared test repository [keelhaul/load].")
@click.option("--images", type=int, help="Synthetic images seeded in --repo [3].")
@click.option("--layers", type=int, help="Layers per image [2].")
@click.option("--layer-size", help="Bytes per layer, e.g. 512k, 4MiB [1MiB].")
@click.option("--seed", type=int, help="Seed of the synthetic images [0].")
@click.option("--verify", is_flag=True, help="Hash every pulled blob against its digest.")
@click.option("--only-missing", is_flag=True, help="Users pull only blobs they lack.")
@click.option("--parallel", type=int, help="Blobs a user moves at once [3].")
@click.option("--push-tags", type=int, help="Tags pushes reuse if deletes are off [16].")
@click.option("--token-method", type=click.Choice(["get", "post"]),
              help="Token requests: GET (docker) or the OAuth2 POST form [get].")  # fmt: skip
@click.option("--timeout", help="Network timeout per request [60s].")
@click.option("--processes", type=int, help="Worker processes on this host (-1: one per CPU).")
@click.option("--master", is_flag=True, help="Lead workers on other hosts.")
@click.option("--master-bind-host", help="Interface the master listens on [*].")
@click.option("--master-port", type=int, help="Port the master listens on [5557].")
@click.option("--expect-workers", type=int, help="Workers the master waits for [1].")
@click.option("--expect-workers-timeout", help="How long it waits for them [60s].")
@click.option("--worker", is_flag=True, help="Be a worker of a --master.")
@click.option("--master-host", help="The master to work for [127.0.0.1].")
@click.option("--web", is_flag=True, help="Serve Locust's web UI.")
@click.option("--web-host", help="Web UI interface [127.0.0.1].")
@click.option("--web-port", type=int, help="Web UI port [8089].")
@click.option("--check", "checks", multiple=True, metavar="SPEC",
              help="Threshold, repeatable: 'image pull:p95<800ms', 'fail_ratio<0.01'.")  # fmt: skip
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the JSON report here.")  # fmt: skip
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the self-contained HTML report here.")  # fmt: skip
@click.option("--print-every", metavar="DURATION",
              help="Progress: off a terminal, one line this often; 0: none, "
              "not even the live block on a terminal [10s].")  # fmt: skip
@click.option("-L", "--loglevel", type=click.Choice(_LEVELS), default="WARNING",
              show_default=True, help="Log level (Locust's logs too).")  # fmt: skip
# --- keelhaul.diagnose hook (issue #6): the options; see keelhaul.diagnose.loadhook --------
@click.option("--diagnose", is_flag=True,
              help="Diagnose the stack in --stack-dir during the run: "
              "which tier limits it.")  # fmt: skip
@click.option("--profile", "diagnose_profile", is_flag=True,
              help="--diagnose, plus a call graph of the token service's "
              "workers (py-spy).")  # fmt: skip
@click.option("--diagnose-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the diagnosis reports go [keelhaul-diagnosis].")  # fmt: skip
@click.option("--prometheus", metavar="URL",
              help="--diagnose through this Prometheus (the stack is remote).")  # fmt: skip
@click.option("--tiers", "diagnose_tiers", type=click.Path(dir_okay=False, path_type=Path),
              help="With --prometheus: the tier mapping file (docs/configuration.md).")  # fmt: skip
# --- end of the diagnose hook's options ---------------------------------------------------
@click.option("--worker-stats", "worker_stats_dir", hidden=True,
              type=click.Path(file_okay=False, path_type=Path), help=_HIDDEN_HELP)  # fmt: skip
def load(
    password_stdin: bool,
    loglevel: str,
    diagnose: bool,
    diagnose_profile: bool,
    diagnose_dir: Path | None,
    prometheus: str | None,
    diagnose_tiers: Path | None,
    **options: Any,
) -> None:
    """Load a registry the way docker clients do: pulls, pushes, logins, browsing.

    Each simulated client starts every flow as docker does (GET /v2/, the 401 challenge,
    a token) and reuses its token within the flow. Closed model by default (--users);
    open model with --rate. Headless; --web serves Locust's web UI.
    """
    from keelhaul.load.checks import parse_checks
    from keelhaul.load.settings import load_load_settings

    if password_stdin:
        options["password"] = sys.stdin.readline().rstrip("\r\n")
    options["checks"] = tuple(options["checks"])
    given = {_FIELDS.get(key, key): value for key, value in options.items()}
    given = {k: v for k, v in given.items() if v is not None and v is not False}
    settings = load_load_settings(given)  # usage errors before anything starts
    checks = parse_checks(settings.checks)
    patch_process()  # first thing: the process entry point of a load run
    from keelhaul.load import runner as load_runner
    from keelhaul.load import worker as load_worker

    _setup_logging(loglevel)
    home = Path.home()
    if settings.worker:
        display = _display(settings, None, None)
        load_worker.run_worker(settings, environ=os.environ, home=home, say=_say, display=display)
        return
    # --- keelhaul.diagnose hook (issue #6): start before the run, finish after it ---------
    hook = None
    diagnosis_since: float | None = None
    if diagnose or diagnose_profile or prometheus:
        from keelhaul.diagnose.loadhook import DiagnosisHook

        hook = DiagnosisHook.start(
            settings, profile=diagnose_profile, out_dir=diagnose_dir,
            prometheus=prometheus, tiers=diagnose_tiers,
        )  # fmt: skip
        settings = hook.settings
        diagnosis_since = time.time()
    display = _display(
        settings, diagnosis_since, hook.diagnosis.workdir / "progress.json" if hook else None
    )
    try:
        result = load_runner.run(
            settings, checks, environ=os.environ, home=home, say=_say, display=display
        )
    except BaseException:
        if hook is not None:
            hook.finish(_say)
        raise
    # --- end of the diagnose hook's start ----------------------------------------------
    click.echo(result.outcome.summary, nl=False)
    if settings.json_path is not None:
        click.echo(f"JSON report: {settings.json_path}")
    if settings.html_path is not None:
        click.echo(f"HTML report: {settings.html_path.resolve()}")
    if hook is not None:  # keelhaul.diagnose hook: the verdict, after the load's summary
        click.echo(hook.finish(_say), nl=False)
    if result.interrupted:
        click.get_current_context().exit(130)
    failures = result.outcome.failures
    if failures:
        from keelhaul.errors import ChecksFailed

        raise ChecksFailed(failures)
