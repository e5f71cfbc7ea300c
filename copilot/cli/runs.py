"""``copilot runs``: the runs ``copilot run`` kept on this machine, and removing them."""

from __future__ import annotations

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
    """List the runs ``copilot run`` kept on the embedded store: task, run id, when,
    status (succeeded, failed, incomplete) and size on disk (store and work dir;
    a file with two names counted once).  $COPILOT_HOME says where they are.

    \b
    Examples:
      copilot runs
      copilot runs -o json
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
        when = datetime.datetime.fromtimestamp(run.started).strftime("%Y-%m-%d %H:%M:%S")
        rows.append(
            {
                "task": run.task,
                "run_id": run.run_id,
                "when": when,
                "status": run.status,
                "bytes": disk_usage(run.paths()),
                "store": run.store_dir,
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
        (r["task"], r["run_id"], r["when"], r["status"], human_size(r["bytes"])) for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@runs.command("clean", short_help="Remove kept runs by age, task or status.")
@click.option("--older-than", "older_than", default=None, metavar="AGE", help="e.g. 7d, 12h, 30m.")
@click.option("--task", default=None, help="Only this task's runs.")
@click.option(
    "--status", type=click.Choice(("succeeded", "failed", "incomplete")), default=None,
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
    incomplete or --all asks for it.

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
    chosen = select(
        found,
        older_than=_age(older_than) if older_than else None,
        task=task,
        status=status,
        everything=everything,
    )
    if dry_run:
        for run in chosen:
            click.echo(f"would remove {run.task}/{run.run_id} ({run.status})")
        size = human_size(disk_usage(p for r in chosen for p in r.paths()))
        click.echo(f"would free {size} ({len(chosen)} of {len(found)} runs)", err=True)
        return
    freed = remove(chosen)
    click.echo(f"removed {len(chosen)} of {len(found)} runs, freed {human_size(freed)}", err=True)
