"""The ``copilot`` command line: flags -> options -> library calls, nothing more.

Same commands, flags and exit behaviour as Flyte's ``flyte-copilot`` so the
plugin can call it unchanged; see README "Command line".
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

from copilot import __version__
from copilot._argv import split_global_flags
from copilot.config import STOW_KEYS, Settings, configure_logging, resolve_settings
from copilot.constants import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_PRIMITIVE_BYTES,
    ERROR_DOCUMENT_NAME,
    OUTPUTS_DOCUMENT_NAME,
)
from copilot.durations import parse_go_duration
from copilot.errors import CopilotError, UsageError
from copilot.modes import (
    Choice,
    DownloadMode,
    FileLayout,
    MetadataFormat,
    StructEncoding,
    UploadMode,
    WatcherType,
)

if TYPE_CHECKING:
    from copilot.storage import Store

log = logging.getLogger("copilot")


def _stow_keys_help() -> str:
    import textwrap

    lines = []
    for kind, keys in STOW_KEYS.items():
        text = f"{kind}: " + ", ".join(keys)
        lines += textwrap.wrap(text, 76, initial_indent="      ", subsequent_indent="        ")
    return "\n".join(lines)


STORAGE_HELP = (
    """\b
Storage and logging (flytestdlib keys; before or after the subcommand):
  --storage.type s3|minio|stow|local|mem   --storage.container BUCKET
  --storage.stow.kind s3|google|azure|local
  --storage.stow.config KEY=VAL[,KEY=VAL]  (repeatable; CSV, quote a value
      holding , or =). Keys per kind:
"""
    + _stow_keys_help()
    + """
  --storage.connection.{endpoint,auth-type,access-key,secret-key,region,disable-ssl}
  --storage.limits.maxDownloadMBs N        --storage.enable-multicontainer
  --storage.engine auto|obstore|fsspec     (auto: obstore for S3 and Azure)
  --storage.ca-bundle PEM                  (a private CA, besides the system's)
  --logger.level 0-5 (3 warn, 4 info, 5 debug)   --logger.formatter.type text|json
Kubernetes client flags (--kubeconfig, --namespace, ...) are accepted and ignored.
"""
)


class GoDuration(click.ParamType):
    """Go's duration syntax (``1h0m0s``, ``90s``, ``1h30m``), as seconds."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        try:
            return parse_go_duration(str(value)) / 1e9
        except ValueError as exc:
            self.fail(f"{exc} (use Go syntax such as 1h0m0s, 90s, 1h30m)", param, ctx)


GO_DURATION = GoDuration()


def exit_code(exc: BaseException) -> int:
    """The exit-code contract, in one place; prints the one line that goes with it.

    0 success, and a failure recorded in the error document (as upstream;
    ``--error-exit-code`` changes that); 1 failure; 2 bad arguments or
    configuration, before anything is written; 130 interrupted.
    """
    if isinstance(exc, UsageError):
        click.echo(f"copilot: error: {exc.message}", err=True)
        return 2
    if isinstance(exc, CopilotError):
        click.echo(f"copilot: error: {exc.message}", err=True)
        return 1
    if isinstance(exc, KeyboardInterrupt):
        click.echo("copilot: interrupted", err=True)
        return 130
    from copilot.errors import describe

    # A bug: the traceback goes to the log (stderr) at any level, then one line.
    log.error("internal error", exc_info=exc)
    click.echo(f"copilot: internal error: {describe(exc)}", err=True)
    return 1


class CopilotGroup(click.Group):
    """Takes the pflag-style global flags out of argv; turns failures into exit codes."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            overrides, args = split_global_flags(list(args), self)
        except UsageError as exc:
            raise click.exceptions.Exit(exit_code(exc)) from None
        ctx.meta["copilot.overrides"] = overrides
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except (Exception, KeyboardInterrupt) as exc:
            raise click.exceptions.Exit(exit_code(exc)) from None


class EnumChoice(click.Choice):
    """An enum flag: any case is accepted; values are shown and returned as Go spells them."""

    def __init__(self, enum: type[Choice]) -> None:
        super().__init__(enum.values())
        self.enum = enum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return self.enum.parse(value, "").value
        except UsageError:
            self.fail(f"{value!r} is not one of {', '.join(self.enum.values())}", param, ctx)


def _choice(enum: type[Choice]) -> click.Choice:
    return EnumChoice(enum)


def _format_option(help_text: str) -> Any:
    return click.option(
        "-m",
        "--format",
        "fmt",
        type=_choice(MetadataFormat),
        default="JSON",
        show_default=True,
        help=help_text,
    )


def _reading_options(f: Any) -> Any:
    """How the output dir is read: shared by ``sidecar`` and ``validate``, so that
    validate reads it exactly as the sidecar does."""
    f = click.option(
        "--struct-encoding",
        type=_choice(StructEncoding),
        default="msgpack",
        show_default=True,
        help="Struct outputs as Binary msgpack (current SDKs) or a protobuf Struct.",
    )(f)
    f = click.option(
        "--max-primitive-bytes",
        type=click.IntRange(min=1),
        default=DEFAULT_MAX_PRIMITIVE_BYTES,
        show_default=True,
        help="Largest file accepted for a primitive output.",
    )(f)
    f = click.option(
        "--interface-file",
        type=click.Path(dir_okay=False),
        default=None,
        help="YAML interface file (or task file) instead of --interface.",
    )(f)
    f = click.option(
        "-i",
        "--interface",
        "interface_b64",
        default="",
        help="Base64 of a serialized TypedInterface.",
    )(f)
    return _format_option(
        "Format of an optional whole-outputs document (outputs.json / .yaml / .pb)."
    )(f)


def _typed_interface(interface_b64: str, interface_file: str | None, command: str) -> Any:
    """The TypedInterface from ``--interface`` or ``--interface-file`` (None if neither)."""
    if interface_b64 and interface_file:
        raise UsageError(f"{command}: give --interface or --interface-file, not both")
    if interface_file:
        from copilot.interface import load_interface_file

        return load_interface_file(interface_file)
    if interface_b64:
        from flyteidl2.core import interface_pb2

        from copilot.protobuf import parse_base64_message

        return parse_base64_message(
            interface_pb2.TypedInterface, interface_b64, "--interface", usage=True
        )
    return None


_retries_option = click.option(
    "--retries",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Attempts per storage operation for transient failures (5xx, throttling, "
    "dropped connections); never past --timeout.",
)


def _step_store(settings: Settings, label: str, concurrency: int) -> Store:
    """The store a download or sidecar step uses: bounded and showing progress."""
    from copilot.progress import Progress
    from copilot.storage import Store

    return Store(settings.storage, concurrency=concurrency, progress=Progress(label))


def _sigterm_token() -> Any:
    """A token set when SIGTERM arrives (the handler itself only sets a flag)."""
    from copilot import _signals
    from copilot.cancel import CancelToken

    token = CancelToken()
    _signals.cancel_on_sigterm(token)
    return token


def _timeout_option(help_text: str) -> Any:
    return click.option(
        "-t", "--timeout", type=GO_DURATION, default="1h", show_default=True, help=help_text
    )


def _watcher_option(flag: str, event: str) -> Any:
    return click.option(
        flag,
        type=_choice(WatcherType),
        default="signal",
        show_default=True,
        help=f"How to know the main container has {event}.",
    )


def _concurrency_option(fn: Any) -> Any:
    fn = click.option(
        "--concurrency-per-cpu",
        type=int,
        default=None,
        help="Upstream's form: transfers = CPUs x N (1 to 1024; N <= 0 means 4). "
        "An explicit --concurrency wins.",
    )(fn)
    return click.option(
        "--concurrency",
        type=click.IntRange(min=1),
        default=DEFAULT_CONCURRENCY,
        show_default=True,
        help="Transfers in flight at once.",
    )(fn)


def _workers(concurrency: int, per_cpu: int | None) -> int:
    """``--concurrency``, or upstream's ``--concurrency-per-cpu`` when only that was given."""
    import os

    ctx = click.get_current_context()
    explicit = ctx.get_parameter_source("concurrency") not in (
        click.core.ParameterSource.DEFAULT,
        None,
    )
    if per_cpu is None or explicit:
        return concurrency
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(1024, max(1, (cpus or 1) * (per_cpu if per_cpu > 0 else 4)))


@click.group(
    cls=CopilotGroup,
    epilog=STORAGE_HELP,
    context_settings={"max_content_width": 100, "help_option_names": ["-h", "--help"]},
)
@click.option(
    "--config",
    "config_files",
    multiple=True,
    metavar="PATH_OR_GLOB",
    help="YAML config file(s); a glob is expanded here; a missing file is a warning, not an error.",
)
@click.option(
    "--err-output-name",
    default=ERROR_DOCUMENT_NAME,
    show_default=True,
    help="Name of the error document under the output prefix.",
)
@click.option("-s", "--show-source", is_flag=True, help="Show source locations in log lines.")
@click.option(
    "--error-exit-code",
    type=click.IntRange(0, 255),
    default=0,
    show_default=True,
    help="Exit code after a failure was recorded in the error document "
    "(0, as upstream, lets the orchestrator read the document).",
)
@click.version_option(__version__, prog_name="copilot")
@click.pass_context
def main_group(
    ctx: click.Context,
    config_files: tuple[str, ...],
    err_output_name: str,
    show_source: bool,
    error_exit_code: int,
) -> None:
    """copilot: typed inputs in as files, files out as typed outputs, for any container.

    A drop-in for Flyte's flyte-copilot data sidecar.

    \b
    Debugging a task by hand:
      copilot inspect s3://bucket/run/error.pb          # why did it fail?
      copilot inspect s3://bucket/run/inputs.pb         # what did it get?
      copilot validate --interface-file task.yaml ./out # would these outputs upload?
      copilot run task.yaml -i name=Ada                 # the whole task, on this machine

    Exit status: 0 success (and a failure recorded in the error document, as
    upstream); 1 failure; 2 bad arguments or configuration, before anything is
    written; 130 interrupted.
    """
    settings = resolve_settings(
        list(config_files),
        ctx.meta["copilot.overrides"],
        show_source=show_source,
        err_output_name=err_output_name,
    )
    settings.error_exit_code = error_exit_code
    from copilot import _signals

    configure_logging(settings, own_process=_signals.owns_process())
    for note in settings.notes:
        log.warning(note)
    log.debug("storage configuration: %s", settings.storage.redacted())
    ctx.obj = settings


def _report(settings: Settings, command: str, exc: BaseException) -> NoReturn:
    """One line on stderr for a failed step, then its exit code: 0 (as upstream) or
    ``--error-exit-code`` once the error document is written, 1 when it could not be."""
    from copilot.steps import StepFailed

    assert isinstance(exc, StepFailed)
    click.echo(f"copilot {command}: error: {exc.message}", err=True)
    if exc.document is None:
        if exc.note:
            click.echo(f"copilot {command}: error: {exc.note}", err=True)
        raise click.exceptions.Exit(1)
    raise click.exceptions.Exit(settings.error_exit_code)


@main_group.command(short_help="Fetch the typed inputs and lay them out as files.")
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
    concurrency: int,
    concurrency_per_cpu: int | None,
    retries: int,
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
    )
    opts.validate()
    if input_interface and input_interface_file:
        raise UsageError("download: give --input-interface or --input-interface-file, not both")
    if input_interface_file:
        from copilot.interface import load_interface_file

        opts.interface = load_interface_file(input_interface_file).inputs
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
            limits=steps.StepLimits(timeout=timeout, retries=retries),
            cancel=_sigterm_token(),
        )
    except steps.StepFailed as exc:
        _report(settings, "download", exc)
    finally:
        if store.progress is not None:
            store.progress.close()


@main_group.command(short_help="Wait for the main container, then upload its outputs.")
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
    struct_encoding: str,
    hash_outputs: str,
    concurrency: int,
    concurrency_per_cpu: int | None,
    retries: int,
) -> None:
    """Wait for the main container, then turn its output files into typed outputs.

    Every declared output is converted before anything is uploaded; outputs.pb
    is written last, or error.pb with who failed and whether a retry can help.

    \b
    Files the main container may write in the output dir:
      _START     it has started (--start-watcher-type file)
      _SUCCESS   it has finished (--exit-watcher-type file)
      _ERROR     it failed: the text becomes error.pb's message (a first line
                 NON_RECOVERABLE says a retry cannot help)
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
            start=make_watcher(start_watcher_type, from_local_dir, ended),
            finish=make_watcher(exit_watcher_type, from_local_dir, ended),
            limits=steps.StepLimits(timeout=timeout, retries=retries),
        )
    except steps.StepFailed as exc:
        _report(settings, "sidecar", exc)
    finally:
        if store.progress is not None:
            store.progress.close()


@main_group.command(short_help="Check outputs (or an inputs.pb) against an interface.")
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

    from flyteidl2.core import interface_pb2, literals_pb2

    from copilot.documents import substitute
    from copilot.literals.to_files import python_value
    from copilot.protobuf import parse_base64_message, parse_message

    if (output_dir is None) == (inputs_uri is None):
        raise UsageError("validate: give an output dir, or --inputs URI (one of them)")
    iface: interface_pb2.TypedInterface | None = _typed_interface(
        interface_b64, interface_file, "validate"
    )
    values: dict[str, Any]
    if inputs_uri is not None:
        from copilot.inputs import interface_problems
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
        data = Store(settings.storage).read_bytes(inputs_uri, what="read inputs")
        inputs = parse_message(literals_pb2.LiteralMap, data, f"inputs {inputs_uri}")
        problems = interface_problems(inputs, declared)
        order = [e.key for e in declared.variables]
        values = {k: python_value(inputs.literals[k]) for k in order if k in inputs.literals}
    else:
        from copilot.outputs import UploadOptions, validate_outputs

        if iface is None:
            raise UsageError("validate: give --interface-file or --interface")
        assert output_dir is not None
        if not os.path.isdir(output_dir):
            raise UsageError(f"validate: {output_dir} is not a directory")
        opts = UploadOptions(
            from_local_dir=output_dir,
            to_output_prefix="",
            interface=iface,
            format=MetadataFormat.parse(fmt, "--format"),
            max_primitive_bytes=max_primitive_bytes,
            struct_encoding=StructEncoding.parse(struct_encoding, "--struct-encoding"),
        )
        found = validate_outputs(opts)
        problems = found.problems
        values = {}
        for key, lit in found.literals.literals.items():
            values[key] = substitute(python_value(lit), found.sources)
        order = [e.key for e in iface.outputs.variables]
        values = {k: values[k] for k in order if k in values}
    if problems:
        for problem in problems:
            click.echo(f"copilot validate: {problem}", err=True)
        click.echo(f"copilot validate: {len(problems)} problem(s)", err=True)
        raise click.exceptions.Exit(1)
    click.echo(_dump(values, out_fmt))


@main_group.group(short_help="Encode and decode task interfaces.")
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
    """Print the base64 values Flyte's flags take for a YAML interface file.

    input-interface (a VariableMap of the inputs) is for download's
    --input-interface; interface (the TypedInterface) is for sidecar's --interface.

    \b
    Examples:
      copilot interface encode examples/greeting.yaml
      copilot sidecar ... --interface "$(copilot interface encode task.yaml --only interface)"
    """
    from copilot.interface import encode, load_interface_file

    iface = load_interface_file(path)
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

    \b
    Examples:
      copilot interface decode CgwKBG5hbWUSBAoCCAM=
      copilot interface decode /var/inputs/inputs.pb
    """
    import os

    import yaml

    from copilot.documents import detect, render
    from copilot.interface import type_spec
    from copilot.literals.types import infer_type
    from copilot.protobuf import decode_base64

    if os.path.isfile(value):
        with open(value, "rb") as fh:
            data, name = fh.read(), value
    else:
        try:
            data, name = decode_base64(value, "interface"), "interface"
        except CopilotError as exc:
            raise UsageError(f"{exc.message}; give a base64 value or an inputs.pb file") from None
    found = detect(data, name, among=("TypedInterface", "VariableMap", "LiteralMap"))
    if found.kind == "LiteralMap":
        doc = {k: type_spec(infer_type(v)) for k, v in found.message.literals.items()}
    else:
        doc = render(found.kind, found.message)
    _note_kind(found)
    click.echo(yaml.safe_dump(doc, sort_keys=False).rstrip())


def _note_kind(found: Any) -> None:
    """The detected kind on stderr, and the others that fit as well (``--as``)."""
    note = f"# {found.kind}"
    if found.also:
        note += f" (also parses as {', '.join(found.also)}; --as chooses)"
    click.echo(note, err=True)


def _dump(data: object, fmt: str, *, width: int = 80) -> str:
    import json

    if fmt == "yaml":
        import yaml

        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=width).rstrip()
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


@main_group.command(short_help="Print any Flyte document: outputs, errors, interfaces.")
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
    from copilot.documents import detect, parse_as, render
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


@main_group.command(short_help="Run a container task end to end on this machine.")
@click.argument("task_file", type=click.Path(dir_okay=False))
@click.option(
    "-i", "--input", "inputs", multiple=True, metavar="NAME=VALUE", help="An input value."
)
@click.option(
    "--store",
    default=None,
    help="Where inputs and outputs are kept (default: a local store under the cache dir).",
)
@click.option("--workdir", default=None, help="Where the run's input and output dirs go.")
@click.option(
    "--docker",
    is_flag=True,
    help="Run the command in a container (the task's image, the data dirs bind-mounted).",
)
@click.option(
    "--engine",
    type=click.Choice(("auto", "docker", "podman")),
    default="auto",
    show_default=True,
    help="Container engine for --docker; auto: docker if its daemon answers, else podman.",
)
@click.option("--image", default=None, help="Image for --docker instead of the task file's.")
@click.option("-q", "--quiet", is_flag=True, help="Do not show the command's own output.")
@click.option(
    "-o", "--output", "fmt", type=click.Choice(("json", "yaml")), default="json", show_default=True
)
@click.pass_obj
def run(
    settings: Settings,
    task_file: str,
    inputs: tuple[str, ...],
    store: str | None,
    workdir: str | None,
    docker: bool,
    engine: str,
    image: str | None,
    quiet: bool,
    fmt: str,
) -> None:
    """Run a container task end to end on this machine and print its typed outputs.

    \b
    TASK_FILE holds the ContainerTask fields: name, command, arguments,
    inputs, outputs, input_data_dir, output_data_dir, metadata_format,
    file_input_layout (and image, for --docker).  Locally the declared data
    dirs are replaced in the command by real directories.

    \b
    Examples (one per kind of input):
      copilot run examples/greeting.yaml -i name=Ada            # str (int, float, bool alike)
      copilot run examples/script_runner.yaml -i a=2 -i b=3     # ints; a File default
      copilot run task.yaml -i reads=./lane1/reads.fastq.gz     # File: a local path or URI
      copilot run task.yaml -i samples=./plates/                # Dir
      copilot run task.yaml -i 'xs=[1, 2, 3]' -i 'opts={"k": 1}' # list, dict, struct (YAML)
      copilot run examples/greeting.yaml --docker --image alpine:3.18

    \b
    Environment: COPILOT_HOME (the local store and work dirs; default
    $XDG_CACHE_HOME/copilot or ~/.cache/copilot).
    """
    import os

    from copilot.run import cache_dir, load_task, parse_assignments, run_task
    from copilot.storage import Store

    if not docker and (image or engine != "auto"):
        raise UsageError(f"{'--image' if image else '--engine'} only applies with --docker")
    if store is not None and store.split("://", 1)[0] == "memory":
        raise UsageError(
            "--store memory://: nothing in it outlives copilot run; "
            "use a directory or an object store URI"
        )
    spec = load_task(task_file)
    given = parse_assignments(list(inputs))
    home = cache_dir()
    store_root = store or "file://" + os.path.join(home, "store")
    result = run_task(
        spec,
        given,
        store=Store(settings.storage),
        store_root=store_root,
        workdir=workdir or os.path.join(home, "work"),
        docker=docker,
        engine=engine,
        image=image,
        show_logs=not quiet,
    )
    if result.exit_code == 0:
        click.echo(_dump(result.outputs, fmt))
        if not quiet:
            click.echo(
                f"copilot run: run kept at {result.run_uri} (work dir {result.workdir}); "
                f"outputs: copilot inspect {result.run_uri}/outputs.pb",
                err=True,
            )
        return
    if result.status:
        click.echo(f"copilot run: the command exited with status {result.status}", err=True)
        if result.stderr_tail:
            click.echo("copilot run: last lines of its stderr:", err=True)
            for line in result.stderr_tail:
                click.echo(f"  | {line}", err=True)
    if result.error:
        click.echo(f"copilot run: error document: {result.error}", err=True)
    click.echo(f"copilot run: run kept at {result.run_uri} (work dir {result.workdir})", err=True)
    raise click.exceptions.Exit(result.exit_code)


@main_group.command(short_help="Print the Kubernetes Pod that runs a task file.")
@click.argument("task_file", type=click.Path(dir_okay=False))
@click.option(
    "--prefix",
    required=True,
    help="Store URI of the run (s3://bucket/runs/x): inputs.pb is read from it, "
    "outputs.pb / error.pb go to it.",
)
@click.option(
    "--image",
    default=f"copilot:{__version__}",
    show_default=True,
    help="copilot's own image (the task file's image runs the main container).",
)
@click.option("--name", default="", help="Pod name (default: the task name as a DNS label).")
@click.option("--namespace", default="", help="Namespace in the manifest (default: none).")
@click.option(
    "--inputs", "inputs_uri", default="", help="Inputs document [default: PREFIX/inputs.pb]."
)
@click.option("--raw-output", default="", help="Prefix for uploaded data [default: PREFIX/raw].")
@click.option(
    "--secret",
    default="copilot-storage",
    show_default=True,
    help="Secret holding storage YAML files, mounted at /etc/flyte/copilot "
    "(empty: none; credentials from the environment, e.g. IRSA).",
)
@_timeout_option("Bound on the upload; the grace period is this plus 30 s.")
@click.option(
    "--download-timeout",
    type=GO_DURATION,
    default="1h",
    show_default=True,
    help="Bound on the download.",
)
@click.option(
    "--copilot-cpu", default="500m", show_default=True, help="copilot's CPU (request = limit)."
)
@click.option(
    "--copilot-memory",
    default="128Mi",
    show_default=True,
    help="copilot's memory (request = limit).",
)
@click.option("--cpu", default="", help="Main container CPU (request = limit).")
@click.option("--memory", default="", help="Main container memory (request = limit).")
@click.option(
    "--run-as-user", type=click.IntRange(min=0), default=None, help="uid for the main container."
)
@click.option("--service-account", default="", help="serviceAccountName (e.g. for IRSA).")
@click.option(
    "-i",
    "--input",
    "inputs",
    multiple=True,
    metavar="NAME=VALUE",
    help="An input value, to render {{.inputs.NAME}} in the command (else read from --inputs).",
)
@click.option(
    "-o", "--output", "fmt", type=click.Choice(("yaml", "json")), default="yaml", show_default=True
)
@click.pass_obj
def pod(
    settings: Settings,
    task_file: str,
    prefix: str,
    image: str,
    name: str,
    namespace: str,
    inputs_uri: str,
    raw_output: str,
    secret: str,
    timeout: float,
    download_timeout: float,
    copilot_cpu: str,
    copilot_memory: str,
    cpu: str,
    memory: str,
    run_as_user: int | None,
    service_account: str,
    inputs: tuple[str, ...],
    fmt: str,
) -> None:
    """Print the Kubernetes Pod that runs a task file: download, main, sidecar.

    \b
    The same layout Flyte's plugin builds, for orchestrators without it
    (Argo, Tekton, Airflow's KubernetesPodOperator).  Needs Kubernetes 1.29 or
    newer (native sidecars).  Storage settings come from --secret's files,
    never from arguments.

    \b
    Examples:
      copilot pod examples/greeting.yaml --prefix s3://my-bucket/runs/greeting -i name=Ada \\
        > pod.yaml && kubectl apply -f pod.yaml
      copilot pod task.yaml --prefix s3://b/runs/x --secret '' --service-account copilot  # IRSA
    """
    from flyteidl2.core import literals_pb2

    from copilot.pod import PodOptions, manifest, referenced_inputs
    from copilot.run import input_literals, load_task, parse_assignments
    from copilot.storage import join_uri

    spec = load_task(task_file)
    opts = PodOptions(
        prefix=prefix,
        image=image,
        name=name,
        namespace=namespace,
        inputs_uri=inputs_uri,
        raw_output=raw_output,
        secret=secret,
        timeout=timeout,
        download_timeout=download_timeout,
        log_level=4,
        copilot_cpu=copilot_cpu,
        copilot_memory=copilot_memory,
        cpu=cpu,
        memory=memory,
        run_as_user=run_as_user,
        service_account=service_account,
    )
    opts.validate()
    literals = None
    needed = referenced_inputs(spec)
    if needed:
        if inputs:
            literals, transfers = input_literals(
                spec, parse_assignments(list(inputs)), join_uri(opts.prefix, "data"), needed
            )
            if transfers:
                raise UsageError(
                    "pod: -i gives a local file or directory; a pod can only read "
                    "remote ones (give its store URI)"
                )
        else:
            from copilot.protobuf import parse_message
            from copilot.storage import Store

            data = Store(settings.storage).read_bytes(opts.inputs, what="read inputs")
            literals = parse_message(literals_pb2.LiteralMap, data, opts.inputs)
    elif inputs:
        raise UsageError("pod: -i is only for rendering {{.inputs.NAME}}; the command names none")
    click.echo(_dump(manifest(spec, opts, literals), fmt, width=1 << 16))


def main(argv: list[str] | None = None) -> None:
    """Console entry point: expected failures are one line, never a traceback."""
    args = sys.argv[1:] if argv is None else argv
    try:
        rv = main_group.main(args=args, prog_name="copilot", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc), err=True)
        code = 2
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except click.Abort:
        click.echo("copilot: aborted", err=True)
        code = 130
    except (Exception, KeyboardInterrupt) as exc:  # raised before a command ran
        code = exit_code(exc)
    _leave(code)


def _leave(code: int) -> NoReturn:
    """Exit with ``code``; never wait for a thread a third-party library left behind."""
    import os
    import signal
    import threading

    # The outcome is recorded; a late SIGTERM must not turn it into a kill
    # status while the interpreter tears down (which restores default handlers).
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # Leave without the interpreter's teardown: the outcome is recorded and every
    # file is closed, while a blocking call in a worker thread cannot be
    # interrupted (exit would hang on it) and daemon threads still running Python
    # (the file watcher's, the storage loop) can crash a teardown that frees
    # modules under them (seen as SIGABRT after a successful sidecar).
    os._exit(code)
