"""``copilot run``: a container task end to end on one machine, no Kubernetes.

The same steps a pod takes, in one process:

1. store the typed inputs (local files are uploaded) and write ``inputs.pb``;
2. ``download`` them into a fresh input dir;
3. render Flyte's templates (``{{.inputs.x}}``, ``{{.OutputPrefix}}``, ...;
   see :mod:`copilot.templates`) in the command and run it, with the task's
   declared data dirs mapped to the real local ones (or, with ``--docker``,
   bind-mounted at the declared paths);
4. run the sidecar steps on the output dir (the process exit is the watcher);
5. report the typed outputs, or the failure.

The store is a local directory under the user's cache unless ``--store`` names
another (``s3://bucket/prefix``); every run keeps its documents there under
``runs/<task>/<run id>/``.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flyteidl2.core import literals_pb2

from copilot import runs, steps
from copilot.command import (
    COMMAND_FAILED,
    Container,
    command_failure,
    run_command,
    stderr_file_tail,
)
from copilot.constants import DEFAULT_MAX_PRIMITIVE_BYTES, ERROR_DOCUMENT_NAME, ERROR_FILE
from copilot.engine import find_engine
from copilot.error_documents import write_error_document
from copilot.errors import (
    NON_RECOVERABLE,
    OUTPUT_UPLOAD_FAILED,
    USER,
    CopilotError,
    DataError,
    UsageError,
    UserError,
)
from copilot.inputs import DownloadOptions, download_inputs
from copilot.literals.to_files import python_value
from copilot.outputs import UploadOptions
from copilot.progress import showing
from copilot.storage import Store, Transfer, join_uri
from copilot.task import TaskSpec, input_literals
from copilot.templates import check as check_template
from copilot.templates import render as render_template
from copilot.templates import retry_key

log = logging.getLogger("copilot")


def cache_dir() -> str:
    """Where the embedded store and work dirs live (``$COPILOT_HOME`` overrides)."""
    if os.environ.get("COPILOT_HOME"):
        return os.environ["COPILOT_HOME"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "copilot")


class LocalRun:
    def __init__(self, spec: TaskSpec, store: Store, store_root: str, workdir: str) -> None:
        self.spec = spec
        self.store = store
        # UTC: a run's age is read back from its id, whatever the reader's time zone.
        self.run_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
        self.run_uri = join_uri(store_root, "runs", _safe(spec.name), self.run_id)
        self.workdir = os.path.join(workdir, self.run_id)
        self.indir = os.path.join(self.workdir, "inputs")
        self.outdir = os.path.join(self.workdir, "outputs")
        self.logs = os.path.join(self.workdir, runs.LOGS)
        self.stored = literals_pb2.LiteralMap()  # the inputs as stored, before download
        self.inputs_uri = join_uri(self.run_uri, "inputs.pb")

    def convert_inputs(
        self, given: dict[str, Any]
    ) -> tuple[literals_pb2.LiteralMap, list[Transfer]]:
        """The inputs as literals and the uploads they need (nothing is written)."""
        try:
            return input_literals(self.spec, given, join_uri(self.run_uri, "data"))
        except DataError as exc:
            # A value given with -i (or a default in the task file) that does not fit
            # its type is a bad argument: exit 2, before anything is stored.
            raise UsageError(exc.message) from None

    def make_dirs(self) -> None:
        """The run's input, output and log dirs and its record (a bad --workdir is a
        bad argument)."""
        for path in (self.indir, self.outdir, self.logs):
            try:
                os.makedirs(path, exist_ok=True)
            except OSError as exc:
                raise UsageError(f"--workdir: cannot create {path} ({exc.strerror})") from None
        runs.write_record(
            self.workdir,
            task=self.spec.name,
            run_id=self.run_id,
            run_uri=self.run_uri,
            status=runs.INCOMPLETE,
        )

    def keep_logs(self) -> None:
        """Store the command's stdout and stderr with the run (``<run>/logs/``); a
        failure to is a warning, never the run's error."""
        names = [n for n in ("stdout", "stderr") if os.path.exists(os.path.join(self.logs, n))]
        try:
            self.store.linking().upload(
                [
                    Transfer(os.path.join(self.logs, n), join_uri(self.run_uri, runs.LOGS, n), n)
                    for n in names
                ]
            )
        except CopilotError as exc:
            log.warning("the command's logs were not stored with the run: %s", exc.message)

    def finish(self, status: str) -> None:
        """Record the run's final status in its work dir (a ``--store`` run's only
        local trace; ``copilot runs`` reads it)."""
        if os.path.isdir(self.workdir):
            runs.write_record(self.workdir, status=status)

    def interrupted(self) -> None:
        """Ctrl-C: the run ends with an error document and the status interrupted,
        not as an incomplete run that looks alive.  Best effort: a second Ctrl-C,
        or a store that fails, leaves it incomplete."""
        err = CopilotError("interrupted (Ctrl-C) before the run finished", origin=USER)
        try:
            self.keep_logs()
            write_error_document(
                self.store, self.run_uri, ERROR_DOCUMENT_NAME, runs.INTERRUPTED_CODE, err
            )
            self.finish(runs.INTERRUPTED)
        except (CopilotError, OSError) as exc:
            log.warning("the interrupted run was not recorded as such: %s", exc)

    def store_inputs(self, literals: literals_pb2.LiteralMap, transfers: list[Transfer]) -> str:
        """Upload the inputs and write ``inputs.pb``; returns its URI."""
        self.store.upload(transfers)
        self.store.write_bytes(
            self.inputs_uri, literals.SerializeToString(deterministic=True), what="write inputs"
        )
        self.stored = literals
        return self.inputs_uri

    def task_template_uri(self) -> str:
        """``{{.TaskTemplatePath}}``: the task as Flyte's ``TaskTemplate``, stored on first use."""
        from flyteidl2.core import identifier_pb2, tasks_pb2

        spec = self.spec
        template = tasks_pb2.TaskTemplate(
            id=identifier_pb2.Identifier(
                resource_type=identifier_pb2.TASK, name=spec.name, version=self.run_id
            ),
            type="raw-container",
            interface=spec.interface,
            container=tasks_pb2.Container(
                image=spec.image,
                command=spec.command,
                args=spec.arguments,
                data_config=tasks_pb2.DataLoadingConfig(
                    enabled=True,
                    input_path=spec.input_data_dir,
                    output_path=spec.output_data_dir,
                    format=tasks_pb2.DataLoadingConfig.LiteralMapFormat.Value(spec.metadata_format),
                ),
            ),
        )
        uri = join_uri(self.run_uri, "task.pb")
        self.store.write_bytes(
            uri, template.SerializeToString(deterministic=True), what="write task template"
        )
        return uri

    def template_values(self) -> dict[str, str | Callable[[], str]]:
        """The run-wide template names, each as Flyte would give it for this run."""
        raw = join_uri(self.run_uri, "raw")
        return {
            "input": self.inputs_uri,
            "inputprefix": self.run_uri,
            "outputprefix": self.run_uri,
            "rawoutputdataprefix": raw,
            "perretryuniquekey": retry_key("run-" + self.run_id),
            "tasktemplatepath": self.task_template_uri,
            "prevcheckpointprefix": '""',  # Flyte's value on a first attempt
            "checkpointoutputprefix": join_uri(raw, "_flytecheckpoints"),
            "namespace": "default",
        }

    def parts(self) -> list[tuple[str, str]]:
        """Every command and argument string with where it stands (for messages)."""
        return [(f"command[{i}]", p) for i, p in enumerate(self.spec.command)] + [
            (f"arguments[{i}]", p) for i, p in enumerate(self.spec.arguments)
        ]

    def check_templates(self) -> None:
        declared = [e.key for e in self.spec.interface.inputs.variables]
        for where, part in self.parts():
            check_template(part, declared, where)

    def container(self, engine: str, image: str | None) -> Container:
        """``--docker``'s engine, container name and image (``--image`` or the task's)."""
        image = image or self.spec.image
        if not image:
            raise UsageError("--docker: the task file names no image (give one with --image)")
        return Container(find_engine(engine), f"copilot-run-{self.run_id}", image)

    def container_argv(self, container: Container, argv: list[str]) -> list[str]:
        """The engine's command line running ``argv`` with the data dirs bind-mounted
        at the task's declared paths."""
        return container.engine.run_argv(
            container.image,
            argv,
            container=container.name,
            mounts=[
                (self.indir, self.spec.input_data_dir, True),
                (self.outdir, self.spec.output_data_dir, False),
            ],
            env=self.spec.env,
        )

    def render(self, docker: bool, *, write: bool = True) -> list[str]:
        """The command with Flyte's templates rendered and (locally) the data dirs
        mapped; ``write=False`` names the task template without storing it."""
        values = self.template_values()
        if not write:
            values["tasktemplatepath"] = join_uri(self.run_uri, "task.pb")
        rendered = []
        for where, part in self.parts():
            text = render_template(part, self.stored, values, where)
            if not docker:
                text = _map_dir(text, self.spec.input_data_dir, self.indir)
                text = _map_dir(text, self.spec.output_data_dir, self.outdir)
            rendered.append(text)
        return rendered


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "task"


def _map_dir(text: str, declared: str, real: str) -> str:
    """Replace the declared data dir (as a whole path prefix) by the real directory."""
    declared = declared.rstrip("/") or "/"
    pattern = re.compile(r"(?<![\w.\-/])" + re.escape(declared) + r"(?=/|$|[^\w.\-])")
    return pattern.sub(lambda _: real, text)


@dataclass
class RunResult:
    """What a run produced; ``exit_code`` is what ``copilot run`` exits with."""

    exit_code: int
    run_uri: str
    workdir: str
    error: str = ""
    status: int | None = None
    stderr_tail: list[str] = field(default_factory=list)
    task: str = ""
    run_id: str = ""
    #: False once the work dir was removed (``keep=False`` and a success).
    workdir_kept: bool = True
    #: The outputs as stored, by name, in the order the task declares them.
    literals: dict[str, literals_pb2.Literal] = field(default_factory=dict)

    @property
    def outputs(self) -> dict[str, Any]:
        """The outputs as plain values (copilot's view)."""
        return {name: python_value(lit) for name, lit in self.literals.items()}

    def record(self) -> dict[str, Any]:
        """The run as one machine-readable document (``copilot run -o record``)."""
        return {
            "task": self.task,
            "run_id": self.run_id,
            "run_uri": self.run_uri,
            "workdir": self.workdir if self.workdir_kept else None,
            "exit_code": self.exit_code,
            "status": self.status,
            "error": self.error or None,
            "outputs": self.outputs,
        }


def _collect(
    store: Store, uploads: UploadOptions, spec: TaskSpec, stored: dict[str, literals_pb2.Literal]
) -> str:
    """The sidecar step on the finished command's output dir: fills ``stored`` with
    the outputs' literals in the order the task declares them; returns the
    failure's message, if any, naming the task's own output dir (``/var/outputs``),
    not the work dir standing in for it."""
    try:
        # The process has exited: the sidecar step with watchers that do not wait.
        # Outputs go into a file:// store as hard links to the work dir's files
        # where the file system allows: one copy on disk, not two.
        result = steps.sidecar(store.linking(), uploads, limits=steps.StepLimits(timeout=None))
    except steps.StepFailed as exc:
        local = re.escape(uploads.from_local_dir.rstrip("/"))
        declared = spec.output_data_dir.rstrip("/") or "/"
        said = re.sub(local + r"(?=/|\b|$)", lambda _: declared, exc.message)
        if said != exc.message and exc.document and not isinstance(exc.error, UserError):
            err = CopilotError(said, kind=exc.kind, origin=exc.origin)
            write_error_document(
                store, uploads.to_output_prefix, ERROR_DOCUMENT_NAME, OUTPUT_UPLOAD_FAILED, err
            )
        return said
    literals = result.literals.literals
    for e in spec.interface.outputs.variables:
        if e.key in literals:
            stored[e.key] = literals[e.key]
    return ""


#: What a shell exits with for a command it cannot find, and one it cannot run.
NOT_FOUND, CANNOT_RUN = 127, 126


def _not_started(runner: LocalRun, name: str, exc: OSError) -> RunResult:
    """A command that could not be started: the run ends failed, with an error
    document (its inputs are stored by now), and exits as a shell would."""
    why = exc.strerror or str(exc)
    if exc.errno == errno.E2BIG:
        why += " (an input rendered into the command is too big: pass it as a file)"
    failure = CopilotError(
        f"cannot start the command {name!r}: {why}", kind=NON_RECOVERABLE, origin=USER
    )
    runner.keep_logs()
    write_error_document(runner.store, runner.run_uri, ERROR_DOCUMENT_NAME, COMMAND_FAILED, failure)
    return RunResult(
        exit_code=NOT_FOUND if exc.errno == errno.ENOENT else CANNOT_RUN,
        run_uri=runner.run_uri,
        workdir=runner.workdir,
        error=failure.message,
        task=runner.spec.name,
        run_id=runner.run_id,
    )


def run_task(
    spec: TaskSpec,
    given: dict[str, Any],
    *,
    store: Store,
    store_root: str,
    workdir: str,
    docker: bool = False,
    engine: str = "auto",
    image: str | None = None,
    show_logs: bool = True,
    keep: bool = True,
    max_primitive_bytes: int = DEFAULT_MAX_PRIMITIVE_BYTES,
    say: Callable[[str], None] | None = None,
) -> RunResult:
    """Run one task end to end; see the module docstring.

    With ``docker``, the command runs in ``image`` (default: the task file's) on
    ``engine`` (see :func:`copilot.engine.find_engine`).  ``say`` gets what the
    person running it should know before the command starts.
    """
    runner = LocalRun(spec, store, store_root, workdir)
    runner.check_templates()
    container = runner.container(engine, image) if docker else None
    literals, transfers = runner.convert_inputs(given)
    runner.make_dirs()
    try:
        result = _run(runner, literals, transfers, container, show_logs, max_primitive_bytes, say)
    except KeyboardInterrupt:
        runner.interrupted()
        raise
    except CopilotError:
        runner.finish(runs.FAILED)  # the store may be what failed: the record says so
        raise
    runner.finish(runs.SUCCEEDED if result.exit_code == 0 else runs.FAILED)
    if not keep and result.exit_code == 0:
        shutil.rmtree(runner.workdir, ignore_errors=True)
        result.workdir_kept = False
    return result


def _run(
    runner: LocalRun,
    literals: literals_pb2.LiteralMap,
    transfers: list[Transfer],
    container: Container | None,
    show_logs: bool,
    max_primitive_bytes: int,
    say: Callable[[str], None] | None,
) -> RunResult:
    """The run once its dirs exist: store and download the inputs, run the command,
    keep its logs, read its outputs (or record its failure)."""
    spec, store = runner.spec, runner.store
    with showing(store, "upload inputs", show_logs):
        inputs_uri = runner.store_inputs(literals, transfers)
    if container is not None:
        # The image may run as any user: like an emptyDir, the output dir is open to all.
        os.chmod(runner.outdir, 0o777)
    with showing(store, "download inputs", show_logs):
        download_inputs(
            store,
            DownloadOptions(
                from_remote=inputs_uri,
                to_local_dir=runner.indir,
                format=spec.metadata_format,
                layout=spec.file_input_layout,
                interface=spec.interface.inputs,
            ),
        )
    argv = runner.render(container is not None)
    if container is not None:
        argv = runner.container_argv(container, argv)
    env = {
        **os.environ,
        **spec.env,
        "COPILOT_INPUT_DIR": runner.indir,
        "COPILOT_OUTPUT_DIR": runner.outdir,
    }
    if container is None and spec.image and say is not None:
        say(
            f"the task names the image {spec.image}; its command runs on this machine "
            "(add --docker to run it in the image)"
        )
    try:
        status, tail = run_command(argv, env, runner.logs, show_logs, container)
    except OSError as exc:
        return _not_started(runner, argv[0], exc)
    runner.keep_logs()

    uploads = UploadOptions(
        from_local_dir=runner.outdir,
        to_output_prefix=runner.run_uri,
        to_raw_output=join_uri(runner.run_uri, "raw"),
        interface=spec.interface,
        format=spec.metadata_format,
        max_primitive_bytes=max_primitive_bytes,
    )
    stored: dict[str, literals_pb2.Literal] = {}
    failure = None
    if status and not os.path.exists(os.path.join(runner.outdir, ERROR_FILE)):
        # The command's own failure comes first: an output missing after it is a
        # consequence (a command that wrote _ERROR said more; the sidecar reads that).
        failure = command_failure(
            status,
            tail or stderr_file_tail(runner.outdir),
            container.image if container else None,
        )
    if failure is not None:
        error = failure.message
        write_error_document(store, runner.run_uri, ERROR_DOCUMENT_NAME, COMMAND_FAILED, failure)
    else:
        with showing(store, "upload outputs", show_logs):
            error = _collect(store, uploads, spec, stored)
    return RunResult(
        exit_code=status if status else (1 if error else 0),
        run_uri=runner.run_uri,
        workdir=runner.workdir,
        error=error,
        status=status,
        stderr_tail=tail,
        task=spec.name,
        run_id=runner.run_id,
        literals=stored,
    )
