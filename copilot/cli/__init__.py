"""The ``copilot`` command line: flags -> options -> library calls, nothing more.

One module per command (each maps its flags to one library call and the result
to an exit code), ``common`` for what they share.  Same commands, flags and exit
behaviour as Flyte's ``flyte-copilot`` so the plugin can call it unchanged; see
README "Command line".
"""

from __future__ import annotations

import logging
import sys
from typing import NoReturn

import click

from copilot import __version__
from copilot.cli import (
    download,
    inspect,
    interface,
    pod,
    run,
    runs,
    sidecar,
    stage,
    task,
    validate,
    version,
)
from copilot.cli.common import STORAGE_HELP, CopilotGroup, closed_pipe, exit_code
from copilot.config import resolve_settings
from copilot.constants import ERROR_DOCUMENT_NAME
from copilot.logs import configure_logging

__all__ = ["exit_code", "main", "main_group"]

log = logging.getLogger("copilot")


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


main_group.add_command(download.download)
main_group.add_command(sidecar.sidecar)
main_group.add_command(validate.validate)
main_group.add_command(interface.interface)
main_group.add_command(inspect.inspect)
main_group.add_command(run.run)
main_group.add_command(pod.pod)
main_group.add_command(runs.runs)
main_group.add_command(stage.stage)
main_group.add_command(task.task)
main_group.add_command(version.version)


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
    except BrokenPipeError:  # help or --version into a closed pipe
        code = closed_pipe()
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
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # the last of the output met a closed pipe
        code = code or closed_pipe()
    try:
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    # Leave without the interpreter's teardown: the outcome is recorded and every
    # file is closed, while a blocking call in a worker thread cannot be
    # interrupted (exit would hang on it) and daemon threads still running Python
    # (the file watcher's, the storage loop) can crash a teardown that frees
    # modules under them (seen as SIGABRT after a successful sidecar).
    os._exit(code)
