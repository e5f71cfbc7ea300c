"""``copilot pod``: the Kubernetes Pod that runs a task file."""

from __future__ import annotations

import click

from copilot import __version__
from copilot.cli.common import BYTE_SIZE, GO_DURATION, _dump, _timeout_option
from copilot.config import Settings
from copilot.limits import OutputLimits


@click.command(short_help="Print the Kubernetes Pod that runs a task file.")
@click.argument("task_file", metavar="TASK", type=click.Path(dir_okay=False))
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
    "--max-output-bytes",
    type=BYTE_SIZE,
    default=0,
    help="The sidecar refuses outputs holding more bytes than this (64MiB, 10G; 0: no limit).",
)
@click.option(
    "--max-output-files",
    type=click.IntRange(min=0),
    default=0,
    help="The sidecar refuses outputs holding more files than this (0: no limit).",
)
@click.option(
    "--max-output-depth",
    type=click.IntRange(min=0),
    default=0,
    help="The sidecar refuses output paths deeper than this below the output dir (0: no limit).",
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
    max_output_bytes: int,
    max_output_files: int,
    max_output_depth: int,
    fmt: str,
) -> None:
    """Print the Kubernetes Pod that runs a task: download, main, sidecar.  TASK is
    a task file or a Flyte SDK task (PATH.py:TASK or MODULE:TASK).

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
      # For code nobody reviewed: bound what the sidecar will upload
      copilot pod task.yaml --prefix s3://b/runs/x --max-output-bytes 10G --max-output-files 10000
    """
    from copilot.pod import PodOptions, build_manifest
    from copilot.task import load_any_task, parse_assignments

    spec = load_any_task(task_file)
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
        limits=OutputLimits(max_output_bytes, max_output_files, max_output_depth),
    )
    doc = build_manifest(spec, opts, parse_assignments(list(inputs)), settings.storage)
    click.echo(_dump(doc, fmt, width=1 << 16))
