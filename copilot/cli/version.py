"""``copilot version``: the version line, as a command beside ``--version``."""

from __future__ import annotations

import click

from copilot import __version__


@click.command(short_help="Print copilot's version (as --version).")
def version() -> None:
    """Print copilot's version: the same line as ``copilot --version``.

    \b
    Examples:
      copilot version
      docker run --rm copilot:0.1.0 version
    """
    click.echo(f"copilot, version {__version__}")
