"""``copilot run``: a container task end to end on this machine."""

from __future__ import annotations

import click

from copilot.cli.common import _dump, given_inputs, input_options, max_primitive_bytes_option
from copilot.config import Settings
from copilot.errors import UsageError


@click.command(short_help="Run a container task end to end on this machine.")
@click.argument("task_file", metavar="TASK", type=click.Path(dir_okay=False))
@input_options
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
    "-o",
    "--output",
    "fmt",
    type=click.Choice(("json", "yaml", "record")),
    default="json",
    show_default=True,
    help="json/yaml: the outputs (for a PATH.py:TASK, the Flyte SDK's JSON view of "
    "each value); record: one JSON document with the run's id, where it is kept, its "
    "status and outputs in copilot's view (printed on failure too).",
)
@click.option(
    "--rm",
    "remove",
    is_flag=True,
    help="Remove the run's work dir when it succeeds (its documents and outputs stay "
    "in the store; a failed run's is kept to look into).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Show the rendered command, where each input lands and where everything goes; "
    "run nothing, write nothing.",
)
@max_primitive_bytes_option
@click.pass_obj
def run(
    settings: Settings,
    task_file: str,
    inputs: tuple[str, ...],
    inputs_file: str | None,
    store: str | None,
    workdir: str | None,
    docker: bool,
    engine: str,
    image: str | None,
    quiet: bool,
    fmt: str,
    remove: bool,
    dry_run: bool,
    max_primitive_bytes: int,
) -> None:
    """Run a container task end to end on this machine and print its typed outputs.

    \b
    TASK is a task file or a Flyte SDK task (PATH.py:TASK or MODULE:TASK, a
    module of the current directory's too).  A task file holds the
    ContainerTask fields: name, command, arguments, inputs, outputs,
    input_data_dir, output_data_dir, metadata_format, file_input_layout (and
    image, for --docker).  Locally the declared data dirs are replaced in the
    command by real directories.

    \b
    Examples (one per kind of input):
      copilot run examples/greeting.yaml -i name=Ada            # str (int, float, bool alike)
      copilot run examples/script_runner.yaml -i a=2 -i b=3     # ints; a File default
      copilot run task.yaml -i reads=./lane1/reads.fastq.gz     # File: a local path or URI
      copilot run task.yaml -i samples=./plates/                # Dir
      copilot run task.yaml -i 'xs=[1, 2, 3]' -i 'opts={"k": 1}' # list, dict, struct (YAML)
      copilot run examples/greeting.yaml --docker --image alpine:3.18
      copilot run examples/script_runner.yaml --inputs values.yaml -i b=3  # many inputs
      copilot run examples/greeting.yaml -i name=Ada --dry-run   # what would run, and where
      copilot run tasks.py:summarize -i n=2                      # a Flyte SDK ContainerTask

    \b
    Environment: COPILOT_HOME (the local store and work dirs; default
    $XDG_CACHE_HOME/copilot or ~/.cache/copilot).
    """
    import os

    from copilot.run import cache_dir, run_task
    from copilot.storage import Store
    from copilot.task import load_any_task

    if not docker and (image or engine != "auto"):
        raise UsageError(f"{'--image' if image else '--engine'} only applies with --docker")
    if store is not None and store.split("://", 1)[0] == "memory":
        raise UsageError(
            "--store memory://: nothing in it outlives copilot run; "
            "use a directory or an object store URI"
        )
    spec = load_any_task(task_file)
    given = given_inputs(inputs, inputs_file)
    home = cache_dir()
    store_root = store or "file://" + os.path.join(home, "store")
    if dry_run:
        from copilot.run_plan import plan_task

        plan = plan_task(
            spec,
            given,
            store_root=store_root,
            workdir=workdir or os.path.join(home, "work"),
            docker=docker,
            engine=engine,
            image=image,
        )
        click.echo(_dump(plan, "yaml" if fmt == "yaml" else "json"))
        return
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
        say=None if quiet else lambda text: click.echo(f"copilot run: {text}", err=True),
        max_primitive_bytes=max_primitive_bytes,
        keep=not remove,
    )
    if fmt == "record":
        import json

        from copilot.redaction import redact

        click.echo(redact(json.dumps(result.record(), indent=2)))
    if result.exit_code == 0:
        if fmt != "record":
            shown = spec.view(result.literals) if spec.view else result.outputs
            click.echo(_dump(shown, fmt))
        if not quiet:
            where = f"work dir {result.workdir}" if result.workdir_kept else "work dir removed"
            click.echo(
                f"copilot run: run {result.run_id} kept at {result.run_uri} ({where}); "
                f"outputs: copilot inspect {result.run_uri}/outputs.pb; "
                f"logs: copilot runs logs {result.run_id}",
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
    click.echo(
        f"copilot run: run {result.run_id} kept at {result.run_uri} (work dir {result.workdir}); "
        f"error: copilot inspect {result.run_uri}/error.pb; "
        f"logs: copilot runs logs {result.run_id}",
        err=True,
    )
    raise click.exceptions.Exit(result.exit_code)
