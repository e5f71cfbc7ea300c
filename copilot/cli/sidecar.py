"""``copilot sidecar``: wait for the main container, then upload its outputs."""

from __future__ import annotations

import logging

import click

from copilot.cli.common import (
    GO_DURATION,
    _choice,
    _concurrency_option,
    _reading_options,
    _report,
    _retries_option,
    _sigterm_token,
    _step_store,
    _typed_interface,
    _watcher_option,
    _workers,
)
from copilot.config import Settings
from copilot.constants import OUTPUTS_DOCUMENT_NAME
from copilot.modes import MetadataFormat, StructEncoding, UploadMode

log = logging.getLogger("copilot")


@click.command(short_help="Wait for the main container, then upload its outputs.")
@click.option(
    "-o", "--to-output-prefix", default="", help="Where outputs.pb / error.pb go.  [required]"
)
@click.option(
    "-x", "--to-raw-output", default="", help="Prefix for uploaded files and directories."
)
@click.option("-f", "--from-local-dir", default="", help="Output directory to read.  [required]")
@_reading_options
@click.option(
    "-u",
    "--upload-mode",
    type=_choice(UploadMode),
    default="UPLOAD_ON_EXIT",
    show_default=True,
    help="UPLOAD_EAGER sends File outputs as soon as they are complete; "
    "DO_NOT_UPLOAD records local paths and uploads nothing.",
)
@click.option("--meta-output-name", default=OUTPUTS_DOCUMENT_NAME, show_default=True)
@click.option(
    "-t",
    "--timeout",
    type=GO_DURATION,
    default=None,
    help="Bound on the upload once the main container has ended.  [default: 1h]",
)
@click.option(
    "--start-timeout",
    type=GO_DURATION,
    default=None,
    hidden=True,
    help="Deprecated alias of --timeout.",
)
@_watcher_option("--start-watcher-type", "started")
@_watcher_option("--exit-watcher-type", "finished")
@click.option(
    "--hash-outputs",
    type=click.Choice(("sha256", "none")),
    default="sha256",
    show_default=True,
    help="Record each uploaded File's and Dir's content hash on its literal, so "
    "downstream caches hit on identical data (computed while uploading).",
)
@_concurrency_option
@_retries_option
@click.pass_obj
def sidecar(
    settings: Settings,
    to_output_prefix: str,
    to_raw_output: str,
    from_local_dir: str,
    fmt: str,
    upload_mode: str,
    meta_output_name: str,
    timeout: float | None,
    start_timeout: float | None,
    interface_b64: str,
    interface_file: str | None,
    start_watcher_type: str,
    exit_watcher_type: str,
    max_primitive_bytes: int,
    max_output_bytes: int | None,
    max_output_files: int | None,
    max_output_depth: int | None,
    struct_encoding: str,
    hash_outputs: str,
    concurrency: int,
    concurrency_per_cpu: int | None,
    retries: int,
    retry_for: float,
) -> None:
    """Wait for the main container, then turn its output files into typed outputs.

    Every declared output is converted before anything is uploaded; outputs.pb
    is written last, or error.pb with who failed and whether a retry can help.

    \b
    Files the main container may write in the output dir:
      _START     it has started (--start-watcher-type file)
      _SUCCESS   it has finished (--exit-watcher-type file)
      _ERROR     it failed: the text becomes error.pb's message (a first line
                 NON_RECOVERABLE says a retry cannot help); a serialized
                 ErrorDocument is forwarded as error.pb unchanged
      outputs.json / .yaml / .pb   all outputs in one document (--format)

    \b
    Examples:
      # What Flyte's plugin runs as the native sidecar (SIGTERM = main has ended):
      copilot --config '/etc/flyte/copilot/*.yaml' sidecar \\
        --to-output-prefix s3://bucket/run/ --to-raw-output s3://bucket/run/raw \\
        --from-local-dir /var/outputs --interface <base64 TypedInterface>
      # By hand, after the container has exited (nothing to wait for):
      copilot sidecar --exit-watcher-type noop --interface-file task.yaml \\
        -f ./out -o file:///tmp/run/ -x file:///tmp/run/raw
      # Check the same dir without uploading anything:
      copilot validate --interface-file task.yaml ./out

    \b
    Environment: storage credentials as for download (see copilot download -h).
    """

    from copilot import steps
    from copilot.outputs import UploadOptions
    from copilot.watchers import make_watcher

    if timeout is None:
        if start_timeout is not None:
            log.warning("--start-timeout is deprecated; use --timeout")
        timeout = start_timeout if start_timeout is not None else 3600.0
    opts = UploadOptions(
        from_local_dir=from_local_dir,
        to_output_prefix=to_output_prefix,
        to_raw_output=to_raw_output,
        format=MetadataFormat.parse(fmt, "--format"),
        mode=UploadMode.parse(upload_mode, "--upload-mode"),
        meta_output_name=meta_output_name,
        err_output_name=settings.err_output_name,
        max_primitive_bytes=max_primitive_bytes,
        limits=settings.output_limits.merged(max_output_bytes, max_output_files, max_output_depth),
        struct_encoding=StructEncoding.parse(struct_encoding, "--struct-encoding"),
        hash_outputs=hash_outputs,
    )
    opts.validate()
    opts.interface = _typed_interface(interface_b64, interface_file, "sidecar")
    # SIGTERM is Kubernetes saying the main container has ended: it ends the
    # waits, never the upload (which --timeout bounds).
    ended = _sigterm_token()
    store = _step_store(settings, "upload", _workers(concurrency, concurrency_per_cpu))
    try:
        steps.sidecar(
            store,
            opts,
            start=make_watcher(start_watcher_type, from_local_dir, ended, timeout),
            finish=make_watcher(exit_watcher_type, from_local_dir, ended, timeout),
            limits=steps.StepLimits(timeout=timeout, retries=retries, retry_for=retry_for),
        )
    except steps.StepFailed as exc:
        _report(settings, "sidecar", exc)
    finally:
        if store.progress is not None:
            store.progress.close()
