"""``copilot inspect``: print any Flyte document a task reads or writes."""

from __future__ import annotations

import sys

import click

from copilot.cli.common import _dump, _note_kind
from copilot.config import Settings
from copilot.errors import UsageError


@click.command(short_help="Print any Flyte document: outputs, errors, interfaces.")
@click.argument("uri")
@click.option(
    "--as",
    "as_kind",
    type=click.Choice(("LiteralMap", "Literal", "ErrorDocument", "TypedInterface", "VariableMap")),
    default=None,
    help="The document's kind (detected when not given).",
)
@click.option(
    "-o", "--output", "fmt", type=click.Choice(("json", "yaml")), default="json", show_default=True
)
@click.option("--raw", is_flag=True, help="The protobuf message itself, field by field.")
@click.pass_obj
def inspect(settings: Settings, uri: str, as_kind: str | None, fmt: str, raw: bool) -> None:
    """Print a LiteralMap, Literal, ErrorDocument or interface from any store.

    The kind is detected from the document's structure (stderr names it, and any
    other kind that fits as well); --as settles it.  URI "-" reads stdin.

    \b
    Examples:
      copilot inspect s3://bucket/run/outputs.pb
      copilot inspect s3://bucket/run/error.pb -o yaml
      copilot inspect ./inputs.pb --as LiteralMap --raw
      copilot interface encode task.yaml --only interface | base64 -d | copilot inspect -
    """
    from copilot.detect import detect, parse_as
    from copilot.documents import render
    from copilot.storage import Store

    if uri == "-":
        data = sys.stdin.buffer.read()
    else:
        import os

        if "://" not in uri and os.path.isdir(uri):
            raise UsageError(f"inspect {uri}: is a directory; give a document file")
        data = Store(settings.storage).read_bytes(uri, what="read")
    if as_kind:
        kind, msg = as_kind, parse_as(data, as_kind, uri)
        click.echo(f"# {kind}", err=True)
    else:
        found = detect(data, uri)
        kind, msg = found.kind, found.message
        _note_kind(found)
    click.echo(_dump(render(kind, msg, raw=raw), fmt))
