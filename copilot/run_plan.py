"""``copilot run --dry-run``: what a run would do, doing none of it."""

from __future__ import annotations

import os
from typing import Any

from copilot.command import Container
from copilot.engine import Engine
from copilot.errors import UsageError
from copilot.literals.to_files import python_value
from copilot.run import LocalRun
from copilot.storage import Store
from copilot.task import TaskSpec


def plan_task(
    spec: TaskSpec,
    given: dict[str, Any],
    *,
    store_root: str,
    workdir: str,
    docker: bool = False,
    engine: str = "auto",
    image: str | None = None,
) -> dict[str, Any]:
    """What :func:`run_task` would do, doing none of it (``copilot run --dry-run``):
    the run's places, each input's value and where it lands, the uploads of local
    files, the rendered command (with ``docker``, the engine's whole command line)
    and where each output is read from.  Nothing is written or started."""
    runner = LocalRun(spec, Store(), store_root, workdir)
    runner.check_templates()
    literals, transfers = runner.convert_inputs(given)
    runner.stored = literals
    argv = runner.render(docker, write=False)
    notes = []
    if docker:
        try:
            container = runner.container(engine, image)
        except UsageError as exc:
            if not (image or spec.image):
                raise
            # The plan is still shown: what would run, once an engine answers.
            name = "docker" if engine == "auto" else engine
            container = Container(
                Engine(name, name), f"copilot-run-{runner.run_id}", image or spec.image
            )
            notes.append(f"{exc.message}; the command line is {name}'s")
        argv = runner.container_argv(container, argv)
    elif spec.image:
        notes.append(f"the task names the image {spec.image}; without --docker it runs here")
    in_dir = spec.input_data_dir if docker else runner.indir
    out_dir = spec.output_data_dir if docker else runner.outdir
    return {
        "task": spec.name,
        "run_id": runner.run_id,
        "run_uri": runner.run_uri,
        "workdir": runner.workdir,
        "image": image or spec.image or None,
        "in_container": docker,
        "notes": notes,
        "command": argv,
        "inputs": {
            e.key: {
                "value": python_value(literals.literals[e.key]),
                "path": os.path.join(in_dir, e.key),
            }
            for e in spec.interface.inputs.variables
            if e.key in literals.literals
        },
        "uploads": [{"from": x.src, "to": x.dst} for x in transfers],
        "outputs": {e.key: os.path.join(out_dir, e.key) for e in spec.interface.outputs.variables},
    }
