"""``copilot stage``: a run's inputs put where a pod reads them."""

from __future__ import annotations

import click

from copilot.cli.common import given_inputs, input_options
from copilot.config import Settings
from copilot.errors import UsageError


@click.command(short_help="Upload a task's inputs and write PREFIX/inputs.pb for a pod.")
@click.argument("task_file", metavar="TASK", type=click.Path(dir_okay=False))
@click.option("--prefix", required=True, help="Store URI of the run (s3://bucket/runs/x).")
@input_options
@click.pass_obj
def stage(
    settings: Settings,
    task_file: str,
    prefix: str,
    inputs: tuple[str, ...],
    inputs_file: str | None,
) -> None:
    """Stage a run's inputs from this machine: local files and directories given
    with -i (or as the task file's defaults) are uploaded under PREFIX/data, and
    PREFIX/inputs.pb is written with every input, as Flyte writes it before it
    starts the pod.  Prints the document's URI; then `copilot pod` reads it.
    TASK is a task file or a Flyte SDK task (PATH.py:TASK or MODULE:TASK).

    \b
    Examples:
      copilot stage examples/script_runner.yaml --prefix s3://my-bucket/runs/r1 -i a=2 -i b=3
      copilot pod examples/script_runner.yaml --prefix s3://my-bucket/runs/r1 | kubectl apply -f -
    """
    from copilot.progress import showing
    from copilot.storage import Store
    from copilot.task import load_any_task, stage_inputs

    if "://" not in prefix or prefix.startswith("file://"):
        raise UsageError(
            f"--prefix {prefix}: a pod reads its inputs from an object store (s3://, gs://, "
            "abfs://); give its URI"
        )
    spec = load_any_task(task_file)
    given = given_inputs(inputs, inputs_file)
    with Store(settings.storage) as store, showing(store, "upload inputs"):
        uri = stage_inputs(store, spec, given, prefix.rstrip("/"))
    click.echo(uri)
    click.echo(
        f"copilot stage: next: copilot pod {task_file} --prefix {prefix.rstrip('/')} "
        "| kubectl apply -f -",
        err=True,
    )
