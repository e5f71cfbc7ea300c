"""``copilot pod``: the Kubernetes Pod a raw container task runs in, as a manifest.

The layout is the one Flyte's plugin builds (SPEC §1), for orchestrators that
have no plugin (Argo, Tekton, Airflow's KubernetesPodOperator) and for reading:

- ``copilot-sidecar``: a native sidecar (an init container with
  ``restartPolicy: Always``), started first; the kubelet sends it SIGTERM when
  the main container has ended, and it then uploads the outputs;
- ``copilot-download``: an init container that fills the input dir;
- ``main``: the task's image, command and arguments with Flyte's templates
  rendered (:mod:`copilot.templates`);
- two ``emptyDir`` volumes at the task's data dirs, and storage configuration
  from a Secret mounted as files (read through the ``--config`` glob, so no
  credential is ever in an argument or an environment value).

The kubelet gives a native sidecar only what is left of the pod's
``terminationGracePeriodSeconds`` after the main container ends (default
30 s), then kills it: the grace period is therefore the upload's ``--timeout``
plus a margin, so a slow upload is bounded by copilot's own timeout (which
writes ``error.pb``) and not cut off by SIGKILL.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from flyteidl2.core import literals_pb2

from copilot.constants import ERROR_DOCUMENT_NAME
from copilot.durations import format_duration_ns
from copilot.errors import CopilotError, StorageError, UsageError
from copilot.interface import encode
from copilot.limits import OutputLimits
from copilot.storage import display_uri, join_uri
from copilot.storage.config import StorageConfig
from copilot.task import TaskSpec
from copilot.templates import check as check_template
from copilot.templates import input_names, retry_key
from copilot.templates import render as render_template

#: The uid (and gid) copilot's image runs as.
COPILOT_UID = 65532
#: Where the storage Secret is mounted, and the glob Flyte's plugin passes.
CONFIG_DIR = "/etc/flyte/copilot"
CONFIG_GLOB = CONFIG_DIR + "/*.yaml"
#: Seconds beyond ``--timeout`` for start-up and writing the last document.
GRACE_MARGIN_SECONDS = 30
#: Flyte's defaults for each copilot container (request = limit).
COPILOT_CPU = "500m"
COPILOT_MEMORY = "128Mi"
#: Native sidecars are on by default from this release (beta; GA in 1.33).
MIN_KUBERNETES = "1.29"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def dns_label(name: str) -> str:
    """``name`` as a Kubernetes DNS label: lower case, ``-`` for anything else."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")
    return label or "task"


@dataclass
class PodOptions:
    """What the manifest needs beyond the task file; mirrors ``copilot pod``'s flags."""

    prefix: str
    image: str
    name: str = ""
    namespace: str = ""
    inputs_uri: str = ""
    raw_output: str = ""
    secret: str = "copilot-storage"
    timeout: float = 3600.0
    download_timeout: float = 3600.0
    log_level: int = 4
    copilot_cpu: str = COPILOT_CPU
    copilot_memory: str = COPILOT_MEMORY
    cpu: str = ""
    memory: str = ""
    run_as_user: int | None = None
    service_account: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    #: Bounds on the outputs the sidecar accepts (copilot.limits; none by default).
    limits: OutputLimits = field(default_factory=OutputLimits)

    def validate(self) -> None:
        if not self.prefix:
            raise UsageError("pod: --prefix is required (where the run's documents live)")
        if "://" not in self.prefix:
            raise UsageError(
                f"pod: --prefix {self.prefix!r} must be a store URI (s3://, gs://, abfs://) "
                "that the pod can reach"
            )
        for flag, value in (("--name", self.name), ("--namespace", self.namespace)):
            if value and not _DNS_LABEL.match(value):
                raise UsageError(
                    f"pod: {flag} {value!r} is not a Kubernetes name "
                    "(lower case letters, digits and '-', at most 63)"
                )
        if self.timeout <= 0:
            raise UsageError("pod: --timeout must be positive (it bounds the upload)")

    @property
    def output_prefix(self) -> str:
        return self.prefix.rstrip("/") + "/"

    @property
    def raw(self) -> str:
        return self.raw_output or join_uri(self.prefix, "raw")

    @property
    def inputs(self) -> str:
        return self.inputs_uri or join_uri(self.prefix, "inputs.pb")


def grace_seconds(timeout: float) -> int:
    """``terminationGracePeriodSeconds`` for an upload bounded by ``timeout`` seconds."""
    return math.ceil(timeout) + GRACE_MARGIN_SECONDS


def _resources(cpu: str, memory: str) -> dict[str, Any]:
    amounts = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    return {"requests": dict(amounts), "limits": dict(amounts)} if amounts else {}


def _copilot_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": COPILOT_UID,
        "runAsGroup": COPILOT_UID,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _limit_args(limits: OutputLimits) -> list[str]:
    """The sidecar's output limits as flags (only the ones that are set)."""
    given = (
        ("--max-output-bytes", limits.max_bytes),
        ("--max-output-files", limits.max_files),
        ("--max-output-depth", limits.max_depth),
    )
    return [arg for flag, value in given if value for arg in (flag, str(value))]


def _root_args(opts: PodOptions) -> list[str]:
    args = [f"--logger.level={opts.log_level}"]
    if opts.secret:
        args += ["--config", CONFIG_GLOB]  # unexpanded: copilot expands the glob
    return args


def main_command(
    spec: TaskSpec, opts: PodOptions, inputs: literals_pb2.LiteralMap | None
) -> tuple[list[str], list[str]]:
    """The task's command and arguments with Flyte's templates rendered for this pod.

    ``inputs`` is needed only when a template names an input.
    """
    values = {
        "input": opts.inputs,
        "inputprefix": opts.output_prefix.rstrip("/"),
        "outputprefix": opts.output_prefix.rstrip("/"),
        "rawoutputdataprefix": opts.raw,
        "perretryuniquekey": retry_key(opts.name or dns_label(spec.name)),
        "prevcheckpointprefix": '""',
        "checkpointoutputprefix": join_uri(opts.raw, "_flytecheckpoints"),
        "namespace": opts.namespace or "default",
    }
    declared = [e.key for e in spec.interface.inputs.variables]
    out: list[list[str]] = []
    for field_name, parts in (("command", spec.command), ("arguments", spec.arguments)):
        rendered = []
        for i, part in enumerate(parts):
            where = f"{field_name}[{i}]"
            if check_template(part, declared, where, available=values) and inputs is None:
                raise UsageError(
                    f"{where} names an input: give the values (-i NAME=VALUE) or the "
                    "inputs document (--inputs URI) to render it"
                )
            rendered.append(
                render_template(part, inputs or literals_pb2.LiteralMap(), values, where)
            )
        out.append(rendered)
    return out[0], out[1]


def referenced_inputs(spec: TaskSpec) -> set[str]:
    """The inputs the task's command and arguments name."""
    return {name for part in spec.command + spec.arguments for name in input_names(part)}


def manifest(
    spec: TaskSpec, opts: PodOptions, inputs: literals_pb2.LiteralMap | None = None
) -> dict[str, Any]:
    """The Pod, as the plain data ``kubectl apply`` takes."""
    opts.validate()
    if not spec.image:
        raise UsageError("pod: the task file names no image (add image: to it)")
    if spec.input_data_dir.rstrip("/") == spec.output_data_dir.rstrip("/"):
        raise UsageError("pod: input_data_dir and output_data_dir must differ")
    command, arguments = main_command(spec, opts, inputs)
    name = opts.name or dns_label(spec.name)

    def copilot_container(name: str, args: list[str], data_dir: str, volume: str) -> dict:
        mounts: list[dict[str, Any]] = [{"name": volume, "mountPath": data_dir}]
        if opts.secret:
            mounts.append({"name": "copilot-config", "mountPath": CONFIG_DIR, "readOnly": True})
        return {
            "name": name,
            "image": opts.image,
            "args": [*_root_args(opts), *args],
            "volumeMounts": mounts,
            "resources": _resources(opts.copilot_cpu, opts.copilot_memory),
            "securityContext": _copilot_security(),
        }

    sidecar = {
        **copilot_container(
            "copilot-sidecar",
            [
                "sidecar",
                "--timeout",
                format_duration_ns(int(opts.timeout * 1e9)),
                "--to-raw-output",
                opts.raw,
                "--to-output-prefix",
                opts.output_prefix,
                "--from-local-dir",
                spec.output_data_dir,
                "--interface",
                encode(spec.interface),
                *_limit_args(opts.limits),
            ],
            spec.output_data_dir,
            "copilot-outputs",
        ),
        "restartPolicy": "Always",  # a native sidecar: started first, stopped by SIGTERM
    }
    download = copilot_container(
        "copilot-download",
        [
            "download",
            "--from-remote",
            opts.inputs,
            "--to-output-prefix",
            opts.output_prefix,
            "--to-local-dir",
            spec.input_data_dir,
            "--format",
            spec.metadata_format.value,
            "--file-input-layout",
            spec.file_input_layout.value,
            "--timeout",
            format_duration_ns(int(opts.download_timeout * 1e9)),
            "--input-interface",
            encode(spec.interface.inputs),
        ],
        spec.input_data_dir,
        "copilot-inputs",
    )
    main: dict[str, Any] = {"name": "main", "image": spec.image, "command": command}
    if arguments:
        main["args"] = arguments
    if spec.env:
        main["env"] = [{"name": k, "value": v} for k, v in sorted(spec.env.items())]
    main["volumeMounts"] = [
        {"name": "copilot-inputs", "mountPath": spec.input_data_dir},
        {"name": "copilot-outputs", "mountPath": spec.output_data_dir},
    ]
    if opts.cpu or opts.memory:
        main["resources"] = _resources(opts.cpu, opts.memory)
    main_security: dict[str, Any] = {"allowPrivilegeEscalation": False}
    if opts.run_as_user is not None:
        main_security.update(runAsNonRoot=opts.run_as_user != 0, runAsUser=opts.run_as_user)
    main["securityContext"] = main_security

    volumes: list[dict[str, Any]] = [
        {"name": "copilot-inputs", "emptyDir": {}},
        {"name": "copilot-outputs", "emptyDir": {}},
    ]
    if opts.secret:
        volumes.append({"name": "copilot-config", "secret": {"secretName": opts.secret}})
    metadata: dict[str, Any] = {"name": name}
    if opts.namespace:
        metadata["namespace"] = opts.namespace
    metadata["labels"] = {
        "app.kubernetes.io/name": dns_label(spec.name),
        "app.kubernetes.io/managed-by": "copilot",
        **opts.labels,
    }
    metadata["annotations"] = {
        "copilot-outputs": join_uri(opts.output_prefix, "outputs.pb"),
        "copilot-error": join_uri(opts.output_prefix, ERROR_DOCUMENT_NAME),
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": grace_seconds(opts.timeout),
        # The emptyDirs are group-owned by copilot's gid, so it can read what
        # the main container writes whatever user that runs as.
        "securityContext": {"fsGroup": COPILOT_UID},
    }
    if opts.service_account:
        pod_spec["serviceAccountName"] = opts.service_account
    pod_spec.update(
        initContainers=[sidecar, download],
        containers=[main],
        volumes=volumes,
    )
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


def build_manifest(
    spec: TaskSpec, opts: PodOptions, given: dict[str, str], storage: StorageConfig
) -> dict[str, Any]:
    """The Pod for ``spec``.  A command that names ``{{.inputs.NAME}}`` is rendered
    from ``given`` (remote URIs only: a pod cannot read this machine's files) or,
    when none are given, from the inputs document in ``storage``."""
    opts.validate()
    needed = referenced_inputs(spec)
    if not needed:
        if given:
            raise UsageError(
                "pod: -i is only for rendering {{.inputs.NAME}}; the command names none"
            )
        return manifest(spec, opts, None)
    if given:
        from copilot.task import input_literals

        literals, transfers = input_literals(spec, given, join_uri(opts.prefix, "data"), needed)
        if transfers:
            raise UsageError(
                "pod: -i gives a local file or directory; a pod can only read "
                "remote ones (give its store URI)"
            )
        return manifest(spec, opts, literals)
    from copilot.protobuf import parse_message
    from copilot.storage import Store

    with Store(storage) as store:
        try:
            data = store.read_bytes(opts.inputs, what="read inputs")
        except StorageError:
            try:
                missing = not store.exists(opts.inputs)
            except CopilotError:
                missing = False  # the store itself is failing: its own error says so
            if not missing:
                raise
            names = sorted(needed)
            raise UsageError(
                f"pod: the command names {{{{.inputs.{names[0]}}}}}, and "
                f"{display_uri(opts.inputs)} does not exist: stage the inputs first "
                f"(copilot stage TASK --prefix {display_uri(opts.prefix)} -i ...) or give "
                f"{', '.join(names)} with -i"
            ) from None
    return manifest(spec, opts, parse_message(literals_pb2.LiteralMap, data, opts.inputs))
