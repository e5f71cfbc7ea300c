"""``copilot download``: the init container's step (inputs in as files)."""

from __future__ import annotations

import click

from copilot.cli.common import (
    _choice,
    _concurrency_option,
    _format_option,
    _report,
    _retries_option,
    _sigterm_token,
    _step_store,
    _timeout_option,
    _workers,
)
from copilot.config import Settings
from copilot.errors import UsageError
from copilot.modes import DownloadMode, FileLayout, MetadataFormat


@click.command(short_help="Fetch the typed inputs and lay them out as files.")
@click.option(
    "-f", "--from-remote", default="", help="URI of the inputs LiteralMap (inputs.pb).  [required]"
)
@click.option(
    "--to-output-prefix", default="", help="Output prefix; the error document goes here on failure."
)
@click.option("-o", "--to-local-dir", default="", help="Input directory to fill.  [required]")
@_format_option("Metadata file written beside inputs.pb.")
@click.option(
    "-d",
    "--download-mode",
    type=_choice(DownloadMode),
    default="DOWNLOAD_EAGER",
    show_default=True,
    help="DO_NOT_DOWNLOAD writes only the metadata, keeping remote URIs.",
)
@click.option(
    "--file-input-layout",
    type=_choice(FileLayout),
    default="DIRECT",
    show_default=True,
    help="NAMED_DIR puts File inputs at <var>/<their own file name>.",
)
@_timeout_option("Bound on the whole download (Go duration syntax).")
@click.option(
    "-i",
    "--input-interface",
    default="",
    help="Base64 of a serialized VariableMap; inputs are checked against it.",
)
@click.option(
    "--input-interface-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML interface file (its inputs section) instead of --input-interface.",
)
@click.option(
    "--verify-inputs/--no-verify-inputs",
    default=True,
    show_default=True,
    help="Check each File against the SHA-256 its literal carries, while it downloads "
    "(a mismatch fails for good); another kind of hash is passed through.",
)
@click.option(
    "--allow-local-inputs",
    is_flag=True,
    default=False,
    help="Read local files (file:// or a path) that an input names even though the store "
    "is not local; off by default: an input cannot hand the main container this "
    "container's own files.",
)
@_concurrency_option
@_retries_option
@click.pass_obj
def download(
    settings: Settings,
    from_remote: str,
    to_output_prefix: str,
    to_local_dir: str,
    fmt: str,
    download_mode: str,
    file_input_layout: str,
    timeout: float,
    input_interface: str,
    input_interface_file: str | None,
    verify_inputs: bool,
    allow_local_inputs: bool,
    concurrency: int,
    concurrency_per_cpu: int | None,
    retries: int,
    retry_for: float,
) -> None:
    """Fetch the task's inputs and lay them out as files in the input directory.

    Each input becomes a file (or a directory) named after its variable, beside
    inputs.pb and inputs.json / inputs.yaml (--format).  A failure is written
    to error.pb under --to-output-prefix and exits 0, as upstream
    (--error-exit-code changes that).

    \b
    Examples:
      # What Flyte's plugin runs as the init container:
      copilot --config '/etc/flyte/copilot/*.yaml' download \\
        --from-remote s3://bucket/run/inputs.pb --to-output-prefix s3://bucket/run/ \\
        --to-local-dir /var/inputs --format JSON --input-interface CgwKBG5hbWUSBAoCCAM=
      # By hand, into a scratch dir, checked against a task file:
      copilot download -f s3://bucket/run/inputs.pb -o ./in --input-interface-file task.yaml

    \b
    Environment (flags and --config win): AWS_* for s3; GOOGLE_APPLICATION_CREDENTIALS,
    STORAGE_EMULATOR_HOST for gs; AZURE_STORAGE_CONNECTION_STRING,
    AZURE_STORAGE_ACCOUNT_NAME / _KEY for abfs; COPILOT_PROGRESS_DELAY (seconds
    before transfer progress is shown on a terminal).
    """
    from flyteidl2.core import interface_pb2

    from copilot import steps
    from copilot.inputs import DownloadOptions
    from copilot.protobuf import parse_base64_message

    opts = DownloadOptions(
        from_remote=from_remote,
        to_local_dir=to_local_dir,
        format=MetadataFormat.parse(fmt, "--format"),
        mode=DownloadMode.parse(download_mode, "--download-mode"),
        layout=FileLayout.parse(file_input_layout, "--file-input-layout"),
        verify_inputs=verify_inputs,
        allow_local_inputs=allow_local_inputs,
    )
    opts.validate()
    if input_interface and input_interface_file:
        raise UsageError("download: give --input-interface or --input-interface-file, not both")
    if input_interface_file:
        from copilot.task import interface_of

        opts.interface = interface_of(input_interface_file).inputs
    elif input_interface:
        opts.interface = parse_base64_message(
            interface_pb2.VariableMap, input_interface, "--input-interface", usage=True
        )
    store = _step_store(settings, "download", _workers(concurrency, concurrency_per_cpu))
    try:
        steps.download(
            store,
            opts,
            error_prefix=to_output_prefix,
            error_name=settings.err_output_name,
            limits=steps.StepLimits(timeout=timeout, retries=retries, retry_for=retry_for),
            cancel=_sigterm_token(),
        )
    except steps.StepFailed as exc:
        _report(settings, "download", exc)
    finally:
        if store.progress is not None:
            store.progress.close()
