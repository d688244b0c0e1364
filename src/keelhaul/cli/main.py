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


_COMMANDS = (
    ("auth_cmd", ("auth",)),
    ("stack_cmd", ("stack",)),
    ("image_cmd", ("image",)),
    ("load_cmd", ("load",)),
    ("diagnose_cmd", ("diagnose", "profile")),
    ("tune_cmd", ("tune",)),
)
"""Command module -> the commands it adds."""


def _register() -> None:
    # Imported here so that each part's dependencies (Flask, Locust, hdrh...) are only
    # needed by its own commands: the token service's image installs the `auth` extra only,
    # and there a part whose third-party imports are missing is simply not offered.
    import importlib

    for module_name, commands in _COMMANDS:
        try:
            module = importlib.import_module(f"keelhaul.cli.{module_name}")
        except ModuleNotFoundError as exc:
            if (exc.name or "keelhaul").split(".")[0] == "keelhaul":
                raise
            continue
        for name in commands:
            cli.add_command(getattr(module, name))


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
