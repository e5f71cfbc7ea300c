"""``copilot run PATH.py:TASK``: Flyte 2 SDK container tasks, with the real SDK
(the ``flyte`` extra scripts/test installs).  scripts/test-lowest leaves the SDK
out (its pins are newer than copilot's lower bounds) and sets COPILOT_TEST_NO_SDK."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import clean_env, run_copilot

if os.environ.get("COPILOT_TEST_NO_SDK") == "1":
    pytest.skip("the Flyte SDK is not installed in this venv", allow_module_level=True)

TASKS = textwrap.dedent(
    """
    import flyte
    from flyte.extras import ContainerTask
    from flyte.io import Dir, File

    summarize = ContainerTask(
        name="summarize",
        image="alpine:3.18",
        inputs={"n": int, "label": str, "reads": File, "plates": Dir},
        outputs={"total": int, "title": str, "report": File},
        command=[
            "/bin/sh", "-c",
            "echo $(( {{.inputs.n}} * $(ls /var/inputs/plates | wc -l) )) > /var/outputs/total"
            " && echo {{.inputs.label}} > /var/outputs/title"
            " && cat /var/inputs/reads /var/inputs/reads > /var/outputs/report",
        ],
    )

    named = ContainerTask(
        name="named",
        image="alpine:3.18",
        input_data_dir="/in",
        output_data_dir="/out",
        inputs={"reads": list[File]},
        outputs={"names": str},
        command=["/bin/sh", "-c", "ls /in/reads | sort | tr '\\\\n' , > /out/names"],
        metadata_format="JSON",
        file_input_layout="NAMED_DIR",
    )

    failing = ContainerTask(
        name="failing",
        image="alpine:3.18",
        inputs={"n": int},
        outputs={"x": int},
        command=["/bin/sh", "-c", "echo cannot do {{.inputs.n}} >&2; exit 7"],
    )

    env = flyte.TaskEnvironment.from_task("sdk-tests", summarize, named, failing)

    def plain_function(x: int) -> int:
        return x
    """
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's project: tasks.py and data; the tests run in it, as a user would."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tasks.py").write_text(TASKS)
    (tmp_path / "reads.fq").write_text("@r1\nACGT\n+\nIIII\n")
    plates = tmp_path / "plates"
    plates.mkdir()
    for name in ("a.csv", "b.csv", "c.csv"):
        (plates / name).write_text(name)
    lanes = tmp_path / "lanes"
    for lane in ("1", "2"):
        (lanes / lane).mkdir(parents=True)
        (lanes / lane / f"L{lane}.fastq").write_text(lane)
    return tmp_path


def _run(project: Path, task: str, *args: str):
    env = clean_env(COPILOT_HOME=str(project / "home"))
    return run_copilot(["run", task, "-q", "-o", "record", *args], env=env)


def _comparable(record: dict) -> dict:
    """The outputs, with each stored file replaced by its content's digest (its URI
    names the run)."""
    out = {}
    for key, value in record["outputs"].items():
        if isinstance(value, str) and value.startswith("file://"):
            path = Path(value.removeprefix("file://"))
            value = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else value
        out[key] = value
    return out


SUMMARIZE_INPUTS = (
    "-i",
    "n=2",
    "-i",
    "label=lane-1",
    "-i",
    "reads=reads.fq",
    "-i",
    "plates=plates",
)


def test_a_container_task_runs_from_its_module_and_as_its_exported_task_file(
    project: Path,
) -> None:
    by_reference = _run(project, "tasks.py:summarize", *SUMMARIZE_INPUTS)
    assert by_reference.returncode == 0, by_reference.stderr
    got = json.loads(by_reference.stdout)
    assert got["outputs"]["total"] == 6 and got["outputs"]["title"] == "lane-1"
    report = Path(got["outputs"]["report"].removeprefix("file://"))
    assert report.read_text() == (project / "reads.fq").read_text() * 2
    # The same task as a task file: the same outputs.
    exported = run_copilot(["task", "export", str(project / "tasks.py") + ":summarize"])
    assert exported.returncode == 0, exported.stderr
    doc = yaml.safe_load(exported.stdout)
    assert doc["image"] == "alpine:3.18" and doc["outputs"]["report"] == "File"
    (project / "summarize.yaml").write_text(exported.stdout)
    by_file = _run(project, "summarize.yaml", *SUMMARIZE_INPUTS)
    assert by_file.returncode == 0, by_file.stderr
    assert _comparable(json.loads(by_file.stdout)) == _comparable(got)


def test_named_dir_and_json_metadata_come_from_the_sdk_template(project: Path) -> None:
    reads = "reads=[lanes/1/L1.fastq, lanes/2/L2.fastq]"
    ran = _run(project, "tasks.py:named", "-i", reads)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["outputs"] == {"names": "L1.fastq,L2.fastq,"}
    doc = yaml.safe_load(run_copilot(["task", "export", "tasks.py:named"]).stdout)
    assert doc["file_input_layout"] == "NAMED_DIR" and doc["metadata_format"] == "JSON"
    assert doc["input_data_dir"] == "/in" and doc["output_data_dir"] == "/out"
    (project / "named.yaml").write_text(yaml.safe_dump(doc))
    again = _run(project, "named.yaml", "-i", reads)
    assert json.loads(again.stdout)["outputs"] == {"names": "L1.fastq,L2.fastq,"}


def test_a_failing_sdk_task_records_its_error_document(project: Path) -> None:
    from flyteidl2.core import execution_pb2

    ran = _run(project, "tasks.py:failing", "-i", "n=3")
    assert ran.returncode == 7
    record = json.loads(ran.stdout)
    assert record["error"] == "the command exited with status 7: cannot do 3"
    (doc_path,) = (project / "home" / "store" / "runs" / "failing").rglob("error.pb")
    err = execution_pb2.ErrorDocument.FromString(doc_path.read_bytes()).error
    assert err.message == record["error"] and err.origin == execution_pb2.ExecutionError.USER


def test_copilot_pod_for_an_sdk_task_validates(project: Path) -> None:
    from test_pod import validate

    args = ["--prefix", "s3://bucket/runs/r1", "-i", "n=2", "-i", "label=x", "-o", "json"]
    ran = run_copilot(["pod", "tasks.py:summarize", *args])
    assert ran.returncode == 0, ran.stderr
    manifest = json.loads(ran.stdout)
    validate(manifest)
    main = next(c for c in manifest["spec"]["containers"] if c["image"] == "alpine:3.18")
    assert "/var/inputs/plates" in " ".join(main.get("command", []) + main.get("args", []))


def test_clear_errors_for_a_bad_reference(project: Path, monkeypatch) -> None:
    missing = run_copilot(["run", "tasks.py:nope"])
    assert missing.returncode == 2 and "tasks.py has no 'nope'" in missing.stderr
    env_obj = run_copilot(["run", "tasks.py:env"])
    assert env_obj.returncode == 2 and "is a TaskEnvironment, not a ContainerTask" in env_obj.stderr
    fn = run_copilot(["run", "tasks.py:plain_function"])
    assert fn.returncode == 2 and "is a function" in fn.stderr
    (project / "broken.py").write_text("import flyte\nraise RuntimeError('my own bug')\n")
    broken = run_copilot(["run", "broken.py:t"])
    assert broken.returncode == 2
    assert "broken.py did not import; its traceback:" in broken.stderr
    assert "RuntimeError: my own bug" in broken.stderr and "broken.py" in broken.stderr
    # Without the SDK: the install command.
    monkeypatch.setitem(sys.modules, "flyte", None)
    no_sdk = run_copilot(["run", "tasks.py:summarize"])
    assert no_sdk.returncode == 2 and "pip install 'copilot[flyte]'" in no_sdk.stderr


def test_a_task_file_name_is_not_taken_for_a_reference(tmp_path: Path) -> None:
    from copilot.sdk import is_sdk_reference

    assert is_sdk_reference("tasks.py:greet") and is_sdk_reference("pkg.tasks:greet")
    assert not is_sdk_reference("task.yaml") and not is_sdk_reference("s3://b/k:x")
    odd = tmp_path / "a.py:b"
    odd.write_text("x")
    assert not is_sdk_reference(str(odd))


def test_the_private_sdk_serializer_copilot_uses_is_there() -> None:
    """copilot.sdk calls the SDK's task serializer; a release that moves it fails here."""
    import inspect

    from flyte._internal.runtime.task_serde import get_proto_task
    from flyte.models import SerializationContext

    params = list(inspect.signature(get_proto_task).parameters)
    assert params[:2] == ["task", "serialize_context"]
    assert "version" in inspect.signature(SerializationContext).parameters


def test_the_fsspec_engine_keeps_its_reference_classes_after_the_sdk_is_imported() -> None:
    """Importing the SDK registers obstore's fsspec classes for s3:// and abfs://
    process-wide; copilot's fsspec engine names s3fs and adlfs itself."""
    import adlfs
    import flyte.extras  # noqa: F401  (what copilot run PATH.py:TASK imports)
    import s3fs

    from copilot.storage import azure, s3

    assert s3.fsspec_class() is s3fs.S3FileSystem
    assert azure.fsspec_class() is adlfs.AzureBlobFileSystem


def test_an_sdk_task_takes_its_inputs_from_a_file(project: Path) -> None:
    (project / "inputs.yaml").write_text("n: 2\nlabel: lane-1\nreads: reads.fq\nplates: plates\n")
    ran = _run(project, "tasks.py:summarize", "--inputs", "inputs.yaml")
    assert ran.returncode == 0, ran.stderr
    outputs = json.loads(ran.stdout)["outputs"]
    assert outputs["total"] == 6 and outputs["title"] == "lane-1"


STRUCTURED = textwrap.dedent(
    """
    from dataclasses import dataclass

    import flyte
    from flyte.extras import ContainerTask
    from pydantic import BaseModel


    @dataclass
    class Config:
        name: str
        reps: int


    class Plate(BaseModel):
        wells: int
        label: str = "none"


    echo = ContainerTask(
        name="echo_structured",
        image="alpine:3.18",
        inputs={"cfg": Config, "plate": Plate, "n": int},
        outputs={"cfg": Config, "plate": Plate},
        command=["/bin/sh", "-c", "cp /var/inputs/cfg /var/inputs/plate /var/outputs/"],
    )
    """
)


def test_dataclass_and_pydantic_inputs_go_through_the_sdk_type_engine(project: Path) -> None:
    import asyncio
    import importlib.util

    from flyte.types import TypeEngine
    from flyteidl2.core import literals_pb2

    (project / "structured.py").write_text(STRUCTURED)
    ran = _run(
        project, "structured.py:echo", "-i", "cfg={name: x, reps: 2}", "-i", 'plate={"wells": 96}',
        "-i", "n=1",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    record = json.loads(ran.stdout)
    assert record["outputs"] == {
        "cfg": {"name": "x", "reps": 2},
        "plate": {"wells": 96, "label": "none"},
    }
    # The stored input is the literal the SDK itself makes for that value.
    stored = literals_pb2.LiteralMap.FromString(
        Path(record["run_uri"].removeprefix("file://"), "inputs.pb").read_bytes()
    )
    spec = importlib.util.spec_from_file_location("structured_check", project / "structured.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cfg_type = module.Config
    expected = asyncio.run(
        TypeEngine.to_literal(
            cfg_type(name="x", reps=2), cfg_type, TypeEngine.to_literal_type(cfg_type)
        )
    )
    assert stored.literals["cfg"].SerializeToString() == expected.SerializeToString()
    assert set(stored.literals) == {"cfg", "plate", "n"}
    bad = _run(project, "structured.py:echo", "-i", "cfg={name: x, reps: two}", "-i",
               "plate={wells: 1}", "-i", "n=1")  # fmt: skip
    assert bad.returncode == 2
    assert "input 'cfg': not a valid Config" in bad.stderr and "reps" in bad.stderr


SHELL = textwrap.dedent(
    """
    from flyte.extras.shell import Glob, create
    from flyte.io import File

    count = create(
        name="count_lines",
        image="debian:12-slim",
        inputs={"reads": File, "n": int},
        outputs={"parts": Glob("*.txt"), "total": int},
        script=r'''
            wc -l < {inputs.reads} > {outputs.total}
            for i in $(seq 1 {inputs.n}); do echo part $i > {outputs.parts}/p$i.txt; done
            echo done-stdout
            if [ {inputs.n} -gt 5 ]; then echo too many parts >&2; exit 4; fi
        ''',
    )
    """
)


def test_a_shell_task_with_glob_outputs_stdout_and_returncode(project: Path) -> None:
    (project / "shell.py").write_text(SHELL)
    ran = _run(project, "shell.py:count", "-i", "reads=reads.fq", "-i", "n=2")
    assert ran.returncode == 0, ran.stderr
    record = json.loads(ran.stdout)
    assert record["outputs"]["total"] == 4
    parts = Path(record["outputs"]["parts"].removeprefix("file://"))
    assert sorted(p.name for p in parts.iterdir()) == ["p1.txt", "p2.txt"]  # Glob: a Dir
    outdir = Path(record["workdir"]) / "outputs"
    assert (outdir / "_stdout").read_text() == "done-stdout\n"
    assert (outdir / "_returncode").read_text().strip() == "0"
    # The same task exported as a task file gives the same outputs.
    (project / "count.yaml").write_text(run_copilot(["task", "export", "shell.py:count"]).stdout)
    again = json.loads(_run(project, "count.yaml", "-i", "reads=reads.fq", "-i", "n=2").stdout)
    assert again["outputs"]["total"] == 4
    # A failing script: its exit status and the last line of its _stderr.
    failed = _run(project, "shell.py:count", "-i", "reads=reads.fq", "-i", "n=7")
    assert failed.returncode == 4
    assert json.loads(failed.stdout)["error"] == "the command exited with status 4: too many parts"


def test_loading_an_sdk_task_never_starts_the_sdks_telemetry(project: Path) -> None:
    """The SDK reports to Sentry (an address off this machine) from its own CLI and
    deploy paths; copilot's use of it (import, serialize, convert) must not reach
    them.  Its once-only guard stays unset, whatever else turns it off in a test."""
    from flyte import _sentry

    ran = _run(project, "tasks.py:summarize", *SUMMARIZE_INPUTS)
    assert ran.returncode == 0, ran.stderr
    assert _sentry._state["initialized"] is False
