"""``copilot interface encode|decode``: task interfaces as flags and back."""

from __future__ import annotations

import click

from copilot.cli.common import _note_kind
from copilot.errors import CopilotError, UsageError


@click.group(short_help="Encode and decode task interfaces.")
def interface() -> None:
    """Work with task interfaces written in YAML.

    \b
    Examples:
      copilot interface encode examples/greeting.yaml
      copilot interface decode CgwKBG5hbWUSBAoCCAM=
    """


@interface.command("encode", short_help="Print the base64 interface flags for a YAML file.")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option(
    "--only",
    type=click.Choice(("input-interface", "interface")),
    default=None,
    help="Print just one value (for $(...) in a shell).",
)
def interface_encode(path: str, only: str | None) -> None:
    """Print the base64 values Flyte's flags take for a YAML interface file (or a
    task file, or a Flyte SDK task: PATH.py:TASK or MODULE:TASK).

    input-interface (a VariableMap of the inputs) is for download's
    --input-interface; interface (the TypedInterface) is for sidecar's --interface.

    \b
    Examples:
      copilot interface encode examples/greeting.yaml
      copilot sidecar ... --interface "$(copilot interface encode task.yaml --only interface)"
    """
    from copilot.interface import encode
    from copilot.task import interface_of

    iface = interface_of(path)
    values = {"input-interface": encode(iface.inputs), "interface": encode(iface)}
    if only:
        click.echo(values[only])
        return
    for key, value in values.items():
        click.echo(f"{key}: {value}")


@interface.command("decode", short_help="Print a base64 interface or an inputs.pb's as YAML.")
@click.argument("value")
def interface_decode(value: str) -> None:
    """Print an interface in the YAML syntax: a base64 --input-interface or
    --interface value, or a local inputs.pb (the types its literals carry).
    VALUE "-" reads either from stdin.

    \b
    Examples:
      copilot interface decode CgwKBG5hbWUSBAoCCAM=
      copilot interface decode /var/inputs/inputs.pb
      copilot interface encode task.yaml --only interface | copilot interface decode -
    """
    import os
    import sys

    import yaml

    from copilot.interface import decode_interface
    from copilot.protobuf import decode_base64

    if value == "-":
        data, name = _from_stdin(sys.stdin.buffer.read())
    elif os.path.isfile(value):
        with open(value, "rb") as fh:
            data, name = fh.read(), value
    else:
        try:
            data, name = decode_base64(value, "interface"), "interface"
        except CopilotError as exc:
            raise UsageError(f"{exc.message}; give a base64 value or an inputs.pb file") from None
    found, doc = decode_interface(data, name)
    _note_kind(found)
    click.echo(yaml.safe_dump(doc, sort_keys=False).rstrip())


def _from_stdin(raw: bytes) -> tuple[bytes, str]:
    """stdin holds a base64 value (text) or a document's bytes (an inputs.pb)."""
    from copilot.protobuf import decode_base64

    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        return raw, "stdin"
    if text and not any(c.isspace() for c in text):
        try:
            return decode_base64(text, "interface"), "stdin"
        except CopilotError:
            pass
    return raw, "stdin"
