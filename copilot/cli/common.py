"""What every command shares: flag types and options, the exit-code contract, the
step store, and the one-line report of a failed step."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

from copilot._argv import split_global_flags
from copilot.config import Settings
from copilot.constants import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_PRIMITIVE_BYTES,
    DEFAULT_RETRY_SECONDS,
)
from copilot.durations import parse_go_duration
from copilot.errors import CopilotError, UsageError
from copilot.modes import (
    Choice,
    MetadataFormat,
    StructEncoding,
    WatcherType,
)
from copilot.storage.backends import STOW_KEYS

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


class ByteSize(click.ParamType):
    """A byte count: ``1048576``, ``64MiB``, ``10G`` (see :func:`copilot.limits.parse_size`)."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        from copilot.limits import parse_size

        try:
            return parse_size(value, param.opts[0] if param is not None else "size")
        except UsageError as exc:
            self.fail(exc.message.split(": ", 1)[-1], param, ctx)


BYTE_SIZE = ByteSize()


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
    if isinstance(exc, BrokenPipeError):
        return closed_pipe()
    from copilot.errors import describe, resource_shortage
    from copilot.redaction import redact

    shortage = resource_shortage(exc)
    if shortage is not None:
        click.echo(f"copilot: error: {shortage.message}", err=True)
        return 1
    # A bug: the traceback goes to the log (stderr) at any level, then one line.
    log.error("internal error", exc_info=exc)
    click.echo(f"copilot: internal error: {redact(describe(exc))}", err=True)
    return 1


#: What a Unix tool's status is when the reader of its output went away (128 + SIGPIPE).
CLOSED_PIPE = 141


def closed_pipe() -> int:
    """The reader of stdout went away (``copilot inspect ... | head -1``): say
    nothing, as Unix tools do, and keep the interpreter from complaining when it
    flushes stdout on the way out."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return CLOSED_PIPE


class CopilotGroup(click.Group):
    """Takes the pflag-style global flags out of argv; turns failures into exit codes."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            overrides, args = split_global_flags(list(args), self)
        except UsageError as exc:
            raise click.exceptions.Exit(exit_code(exc)) from None
        ctx.meta["copilot.overrides"] = overrides
        try:
            return super().parse_args(ctx, args)
        except BrokenPipeError:  # --help or --version into a closed pipe
            raise click.exceptions.Exit(closed_pipe()) from None

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


def input_options(f: Any) -> Any:
    """``-i NAME=VALUE`` and ``--inputs FILE``: a task's input values (run, stage)."""
    f = click.option(
        "--inputs",
        "inputs_file",
        type=click.Path(dir_okay=False),
        default=None,
        help="A YAML or JSON file of input name -> value (for many inputs; -i wins).",
    )(f)
    return click.option(
        "-i", "--input", "inputs", multiple=True, metavar="NAME=VALUE", help="An input value."
    )(f)


def given_inputs(inputs: tuple[str, ...], inputs_file: str | None) -> dict[str, Any]:
    """The values :func:`input_options` took: the file's, then ``-i`` over them."""
    from copilot.task import load_inputs_file, merge_inputs, parse_assignments

    given: dict[str, Any] = dict(parse_assignments(list(inputs)))
    return merge_inputs(load_inputs_file(inputs_file), given) if inputs_file else given


def max_primitive_bytes_option(f: Any) -> Any:
    """``--max-primitive-bytes``: sidecar, validate and run read outputs alike."""
    return click.option(
        "--max-primitive-bytes",
        type=click.IntRange(min=1),
        default=DEFAULT_MAX_PRIMITIVE_BYTES,
        show_default=True,
        help="Largest file accepted for a primitive output.",
    )(f)


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
    f = max_primitive_bytes_option(f)
    f = click.option(
        "--max-output-depth",
        type=click.IntRange(min=0),
        default=None,
        help="Refuse outputs with a path more levels below the output dir than this "
        "(0: no limit; the config's sidecar.max-output-depth otherwise).  [default: 0]",
    )(f)
    f = click.option(
        "--max-output-files",
        type=click.IntRange(min=0),
        default=None,
        help="Refuse outputs holding more files than this in all (0: no limit).  [default: 0]",
    )(f)
    f = click.option(
        "--max-output-bytes",
        type=BYTE_SIZE,
        default=None,
        help="Refuse outputs holding more bytes than this in all files (64MiB, 10G; "
        "0: no limit).  [default: 0]",
    )(f)
    f = click.option(
        "--interface-file",
        type=click.Path(dir_okay=False),
        default=None,
        help="YAML interface file (or task file, or PATH.py:TASK) instead of --interface.",
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
        from copilot.task import interface_of

        return interface_of(interface_file)
    if interface_b64:
        from flyteidl2.core import interface_pb2

        from copilot.protobuf import parse_base64_message

        return parse_base64_message(
            interface_pb2.TypedInterface, interface_b64, "--interface", usage=True
        )
    return None


def _retries_option(fn: Any) -> Any:
    """``--retries`` and ``--retry-for``: how hard a transient storage failure is retried."""
    fn = click.option(
        "--retry-for",
        type=GO_DURATION,
        default=f"{DEFAULT_RETRY_SECONDS:.0f}s",
        show_default=True,
        help="Keep retrying a storage operation that fails transiently for this long "
        "(after --retries attempts), so a store that restarts or throttles is waited "
        "out; 0s: --retries alone.  Never past --timeout.",
    )(fn)
    return click.option(
        "--retries",
        type=click.IntRange(min=1),
        default=5,
        show_default=True,
        help="Attempts per storage operation for transient failures (5xx, throttling, "
        "dropped connections), at least; never past --timeout.",
    )(fn)


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
