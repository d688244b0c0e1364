"""The ``keelhaul`` command: subcommand groups, and the one place errors become exit codes."""

from __future__ import annotations

import sys

import click

from keelhaul import __version__
from keelhaul.errors import KeelhaulError

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="keelhaul")
def cli() -> None:
    """Run a private Docker/OCI registry fast and safely."""


def _register() -> None:
    # Imported lazily so that `keelhaul --help` stays fast and each part's
    # dependencies (Flask, Locust) are only needed by its own commands.
    from keelhaul.cli import auth_cmd, diagnose_cmd, image_cmd, load_cmd, stack_cmd, tune_cmd

    cli.add_command(auth_cmd.auth)
    cli.add_command(stack_cmd.stack)
    cli.add_command(image_cmd.image)
    cli.add_command(load_cmd.load)
    cli.add_command(diagnose_cmd.diagnose)
    cli.add_command(diagnose_cmd.profile)
    cli.add_command(tune_cmd.tune)


def main(argv: list[str] | None = None) -> int:
    """Console entry point. Maps every keelhaul error to a message and an exit code."""
    _register()
    try:
        # standalone_mode=False makes click *return* ctx.exit(n)'s code instead of raising
        rc = cli.main(args=argv, prog_name="keelhaul", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeelhaulError as exc:
        click.echo(f"keelhaul: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
