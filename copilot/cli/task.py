"""``copilot task export``: a Flyte SDK task as a copilot task file."""

from __future__ import annotations

import click


@click.group(short_help="Work with task files and SDK tasks (export).")
def task() -> None:
    """Task files and the Flyte SDK's container tasks.

    \b
    Examples:
      copilot task export tasks.py:greet > greet.yaml
      copilot run greet.yaml -i name=Ada      # the same run as: copilot run tasks.py:greet
    """


@task.command("export", short_help="Print the task file for PATH.py:TASK (or a task file).")
@click.argument("reference")
def export(reference: str) -> None:
    """Print a task file (YAML) for a task: PATH.py:TASK or MODULE:TASK (a
    ContainerTask or shell task, through the Flyte SDK), or a task file, in
    canonical form.  It is made from the same template `copilot run` and
    `copilot pod` read, so the three views agree.

    \b
    Examples:
      copilot task export tasks.py:greet > greet.yaml
      copilot task export my_pkg.tasks:align
    """
    import yaml

    from copilot.task import load_any_task, task_document

    click.echo(yaml.safe_dump(task_document(load_any_task(reference)), sort_keys=False).rstrip())
