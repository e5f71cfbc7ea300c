"""Console entry point: install the SIGTERM handler first, then load everything else."""

from __future__ import annotations


def main() -> None:
    from copilot import _signals

    _signals.install()
    from copilot.cli import main as cli_main

    cli_main()
