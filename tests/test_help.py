"""``--help`` that teaches: examples on every command, required options marked, the
marker files and environment variables named, ``-h`` everywhere, no cut summaries."""

from __future__ import annotations

import click
import pytest
from conftest import run_copilot

from copilot.cli import main_group


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, cmd in group.commands.items():
        found.append((*prefix, name))
        if isinstance(cmd, click.Group):
            found += _commands(cmd, (*prefix, name))
    return found


COMMANDS = _commands(main_group)


def test_the_commands_are_all_there() -> None:
    names = {" ".join(c) for c in COMMANDS}
    assert {"download", "sidecar", "validate", "inspect", "run", "pod", "interface"} <= names
    assert {"interface encode", "interface decode"} <= names


@pytest.mark.parametrize("command", [(), *COMMANDS], ids=lambda c: " ".join(c) or "copilot")
def test_every_help_has_examples_and_answers_to_dash_h(command: tuple[str, ...]) -> None:
    long = run_copilot([*command, "--help"])
    short = run_copilot([*command, "-h"])
    assert long.returncode == 0 and short.returncode == 0
    assert short.stdout == long.stdout
    assert "Examples" in long.stdout or "Debugging a task by hand:" in long.stdout
    # A summary in a command list is a whole phrase, never cut with "...".
    if "Commands:" in long.stdout:
        listing = long.stdout.split("Commands:", 1)[1].split("\n\n", 1)[0]
        assert "..." not in listing, listing


@pytest.mark.parametrize(
    ("command", "flags"),
    [("download", ["--from-remote", "--to-local-dir"]),
     ("sidecar", ["--to-output-prefix", "--from-local-dir"])],
)  # fmt: skip
def test_required_options_are_marked(command: str, flags: list[str]) -> None:
    text = run_copilot([command, "--help"]).stdout
    options = text.split("Options:", 1)[1]
    for flag in flags:
        entry = options.split(flag, 1)[1].split("\n  -", 1)[0]
        assert "[required]" in entry, (flag, entry)


def test_sidecar_help_lists_the_marker_files() -> None:
    text = run_copilot(["sidecar", "--help"]).stdout
    for marker in ("_START", "_SUCCESS", "_ERROR", "NON_RECOVERABLE"):
        assert marker in text


@pytest.mark.parametrize(
    ("command", "variables"),
    [
        ("download", ["AWS_", "GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST",
                      "AZURE_STORAGE_CONNECTION_STRING", "COPILOT_PROGRESS_DELAY"]),
        ("sidecar", ["Environment"]),
        ("run", ["COPILOT_HOME"]),
    ],
)  # fmt: skip
def test_help_names_the_environment_it_reads(command: str, variables: list[str]) -> None:
    text = run_copilot([command, "--help"]).stdout
    for name in variables:
        assert name in text
