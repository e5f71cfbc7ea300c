"""``copilot validate``: would these outputs (or this inputs.pb) go through?"""

from __future__ import annotations

import click

from copilot.cli.common import _dump, _reading_options, _typed_interface
from copilot.config import Settings
from copilot.errors import UsageError
from copilot.modes import MetadataFormat, StructEncoding


@click.command(short_help="Check outputs (or an inputs.pb) against an interface.")
@click.argument("output_dir", required=False)
@_reading_options
@click.option(
    "--inputs",
    "inputs_uri",
    default=None,
    help="Check this inputs.pb (a path or store URI) against the interface's inputs "
    "instead of an output dir.",
)
@click.option(
    "--input-interface",
    default="",
    help="Base64 VariableMap of the inputs (download's flag) for --inputs.",
)
@click.option(
    "-o", "--output", "out_fmt", type=click.Choice(("json", "yaml")), default="json",
    show_default=True,
)  # fmt: skip
@click.pass_obj
def validate(
    settings: Settings,
    output_dir: str | None,
    interface_b64: str,
    interface_file: str | None,
    inputs_uri: str | None,
    input_interface: str,
    fmt: str,
    max_primitive_bytes: int,
    max_output_bytes: int | None,
    max_output_files: int | None,
    max_output_depth: int | None,
    struct_encoding: str,
    out_fmt: str,
) -> None:
    """Check an output dir (or an inputs.pb) against an interface, as the sidecar
    (or download) would, without uploading anything.

    Prints each value, typed, or every problem found (not just the first) and
    exits 1. For a container's own CI, and for "why did my sidecar fail".

    \b
    Examples:
      copilot validate --interface-file task.yaml ./outputs
      copilot validate -i "$(copilot interface encode task.yaml --only interface)" ./outputs
      copilot validate --interface-file task.yaml --inputs s3://bucket/run/inputs.pb
    """
    import os

    from flyteidl2.core import interface_pb2

    from copilot.protobuf import parse_base64_message
    from copilot.validation import Validation

    if (output_dir is None) == (inputs_uri is None):
        raise UsageError("validate: give an output dir, or --inputs URI (one of them)")
    iface: interface_pb2.TypedInterface | None = _typed_interface(
        interface_b64, interface_file, "validate"
    )
    found: Validation
    if inputs_uri is not None:
        from copilot.inputs import validate_inputs
        from copilot.storage import Store

        if input_interface:
            if iface is not None:
                raise UsageError("validate: give --input-interface or an interface, not both")
            declared = parse_base64_message(
                interface_pb2.VariableMap, input_interface, "--input-interface", usage=True
            )
        elif iface is not None:
            declared = iface.inputs
        else:
            raise UsageError(
                "validate --inputs: give --interface-file, --interface or --input-interface"
            )
        with Store(settings.storage) as store:
            found = validate_inputs(store, inputs_uri, declared)
    else:
        from copilot.outputs import UploadOptions, validate_outputs

        if iface is None:
            raise UsageError("validate: give --interface-file or --interface")
        assert output_dir is not None
        if not os.path.isdir(output_dir):
            raise UsageError(f"validate: {output_dir} is not a directory")
        declared = iface.outputs
        found = validate_outputs(
            UploadOptions(
                from_local_dir=output_dir,
                to_output_prefix="",
                interface=iface,
                format=MetadataFormat.parse(fmt, "--format"),
                max_primitive_bytes=max_primitive_bytes,
                limits=settings.output_limits.merged(
                    max_output_bytes, max_output_files, max_output_depth
                ),
                struct_encoding=StructEncoding.parse(struct_encoding, "--struct-encoding"),
            )
        )
    if found.problems:
        for problem in found.problems:
            click.echo(f"copilot validate: {problem}", err=True)
        click.echo(f"copilot validate: {len(found.problems)} problem(s)", err=True)
        raise click.exceptions.Exit(1)
    click.echo(_dump(found.values([e.key for e in declared.variables]), out_fmt))
