"""``copilot runs``: the runs ``copilot run`` kept on this machine, and removing them."""

from __future__ import annotations

import os
from typing import Any

import click

from copilot.errors import UsageError


def _age(text: str) -> float:
    """``7d``, ``12h``, ``90m`` or any Go duration, in seconds."""
    from copilot.durations import parse_go_duration

    text = text.strip()
    try:
        if text.endswith("d") and text[:-1].replace(".", "", 1).isdigit():
            return float(text[:-1]) * 86400
        return parse_go_duration(text) / 1e9
    except ValueError:
        raise UsageError(f"--older-than {text!r}: expected an age such as 7d, 12h or 30m") from None


@click.group(invoke_without_command=True, short_help="List (and clean) the runs copilot run kept.")
@click.option(
    "-o", "--output", "fmt", type=click.Choice(("table", "json")), default="table",
    show_default=True,
)  # fmt: skip
@click.pass_context
def runs(ctx: click.Context, fmt: str) -> None:
    """List the runs ``copilot run`` kept on this machine: task, run id, when (UTC;
    run ids start with it too), status (succeeded, failed, interrupted,
    incomplete) and size on disk (store and work dir; a file with two names
    counted once).  A ``--store`` run is listed by its work dir.
    $COPILOT_HOME says where they are.

    \b
    Examples:
      copilot runs
      copilot runs -o json
      copilot runs logs latest
      copilot runs clean --older-than 7d
      copilot runs clean --task greeting --dry-run
    """
    if ctx.invoked_subcommand is not None:
        return
    import datetime
    import json

    from copilot.run import cache_dir
    from copilot.runs import disk_usage, human_size, kept_runs

    rows: list[dict[str, Any]] = []
    for run in kept_runs(cache_dir()):
        when = datetime.datetime.fromtimestamp(run.started, datetime.timezone.utc)
        rows.append(
            {
                "task": run.task,
                "run_id": run.run_id,
                "when": when.isoformat(timespec="seconds").replace("+00:00", "Z"),
                "status": run.status,
                "bytes": disk_usage(run.paths()),
                "store": run.store,
                "workdir": run.workdir,
            }
        )
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"no runs kept under {cache_dir()}", err=True)
        return
    header = ("TASK", "RUN ID", "WHEN", "STATUS", "SIZE")
    table = [header] + [
        (r["task"], r["run_id"], r["when"].replace("T", " "), r["status"], human_size(r["bytes"]))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@runs.command("clean", short_help="Remove kept runs by age, task or status.")
@click.option("--older-than", "older_than", default=None, metavar="AGE", help="e.g. 7d, 12h, 30m.")
@click.option("--task", default=None, help="Only this task's runs.")
@click.option(
    "--status", type=click.Choice(("succeeded", "failed", "interrupted", "incomplete")),
    default=None,
    help="Only runs with this status.",
)  # fmt: skip
@click.option("--all", "everything", is_flag=True, help="Every run (incomplete ones too).")
@click.option("-n", "--dry-run", is_flag=True, help="Say what would go; remove nothing.")
def clean(
    older_than: str | None, task: str | None, status: str | None, everything: bool, dry_run: bool
) -> None:
    """Remove kept runs (their store dir and work dir) and say what that frees.

    At least one of --older-than, --task, --status or --all.  An incomplete run
    younger than a day is left alone (it may still be running) unless --status
    incomplete or --all asks for it.  A ``--store`` run's work dir is removed;
    what it stored there is not touched.

    \b
    Examples:
      copilot runs clean --older-than 7d
      copilot runs clean --status failed --dry-run
      copilot runs clean --all
    """
    from copilot.run import cache_dir
    from copilot.runs import disk_usage, human_size, kept_runs, remove, select

    if not (older_than or task or status or everything):
        raise UsageError("runs clean: say which runs: --older-than, --task, --status or --all")
    found = kept_runs(cache_dir())
    if task is not None and task not in {r.task for r in found}:
        tasks = ", ".join(sorted({r.task for r in found})) or "none"
        raise UsageError(
            f"runs clean --task {task!r}: no kept run is of that task (tasks: {tasks})"
        )
    chosen = select(
        found,
        older_than=_age(older_than) if older_than else None,
        task=task,
        status=status,
        everything=everything,
    )
    if dry_run:
        for run in chosen:
            elsewhere = (
                "" if run.store_dir else f"; its work dir only, not {run.store or 'its store'}"
            )
            click.echo(f"would remove {run.task}/{run.run_id} ({run.status}{elsewhere})")
        size = human_size(disk_usage(p for r in chosen for p in r.paths()))
        click.echo(f"would free {size} ({len(chosen)} of {len(found)} runs)", err=True)
        return
    freed = remove(chosen)
    click.echo(f"removed {len(chosen)} of {len(found)} runs, freed {human_size(freed)}", err=True)


@runs.command("logs", short_help="Print what a kept run's command wrote.")
@click.argument("run_id", metavar="RUN")
@click.option(
    "--stream", type=click.Choice(("both", "stdout", "stderr")), default="both",
    show_default=True, help="Which of the command's streams.",
)  # fmt: skip
def logs(run_id: str, stream: str) -> None:
    """Print the stdout and stderr a kept run's command wrote (each to the same
    stream it went to): RUN is a run id (or its unique start), ``task/run id`` or
    ``latest``.

    \b
    Examples:
      copilot runs logs latest
      copilot runs logs 20261207-101500-3f2a1b --stream stderr
    """
    import shutil
    import sys

    from copilot.run import cache_dir
    from copilot.runs import find_run, kept_runs

    run = find_run(kept_runs(cache_dir()), run_id)
    folder = run.logs()
    if folder is None:
        raise UsageError(f"run {run.run_id}: no logs are kept (a run from before logs were kept)")
    for name, sink in (("stdout", sys.stdout), ("stderr", sys.stderr)):
        if stream in ("both", name):
            try:
                with open(os.path.join(folder, name), "rb") as fh:
                    sink.flush()
                    shutil.copyfileobj(fh, sink.buffer)
                    sink.buffer.flush()
            except FileNotFoundError:
                pass
