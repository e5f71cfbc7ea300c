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
from conftest import clean_env, run_copilot, run_copilot_process

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


def _load_module(path: Path, name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclass codecs resolve their hints by module
    spec.loader.exec_module(module)
    return module


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
    # The exported task file fails the same way.
    exported = run_copilot(["task", "export", "tasks.py:failing"])
    (project / "failing.yaml").write_text(exported.stdout)
    again = _run(project, "failing.yaml", "-i", "n=3")
    assert again.returncode == 7 and json.loads(again.stdout)["error"] == record["error"]


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
    assert no_sdk.returncode == 2 and "pip install 'flyte-copilot[flyte]'" in no_sdk.stderr


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
    # copilot uses the SDK's messages as its own: both come from one flyteidl2.
    from flyte._internal.runtime import task_serde
    from flyte.types import _type_engine
    from flyteidl2.core import literals_pb2, tasks_pb2

    assert task_serde.tasks_pb2 is tasks_pb2 and _type_engine.Literal is literals_pb2.Literal


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
    cfg_type = _load_module(project / "structured.py", "structured_check").Config
    expected = asyncio.run(
        TypeEngine.to_literal(
            cfg_type(name="x", reps=2), cfg_type, TypeEngine.to_literal_type(cfg_type)
        )
    )
    assert stored.literals["cfg"].SerializeToString() == expected.SerializeToString()
    assert set(stored.literals) == {"cfg", "plate", "n"}
    # Exported as a task file: the dataclass input is stored and echoed identically.
    # (A task file's `struct` carries no schema, so the SDK form alone fills the
    # pydantic model's defaults.)
    exported = run_copilot(["task", "export", "structured.py:echo"])
    (project / "echo.yaml").write_text(exported.stdout)
    given = ("-i", "cfg={name: x, reps: 2}", "-i", 'plate={"wells": 96}', "-i", "n=1")
    by_file = _run(project, "echo.yaml", *given)
    assert by_file.returncode == 0, by_file.stderr
    again = json.loads(by_file.stdout)
    assert again["outputs"]["cfg"] == record["outputs"]["cfg"]
    from_file = literals_pb2.LiteralMap.FromString(
        Path(again["run_uri"].removeprefix("file://"), "inputs.pb").read_bytes()
    )
    assert from_file.literals["cfg"].SerializeToString() == expected.SerializeToString()
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
    parts_again = Path(again["outputs"]["parts"].removeprefix("file://"))
    assert {p.name: p.read_text() for p in parts_again.iterdir()} == {
        p.name: p.read_text() for p in parts.iterdir()
    }
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


KINDS = textwrap.dedent(
    """
    import dataclasses
    import datetime
    import enum
    from typing import Optional, Union

    from flyte.extras import ContainerTask
    from flyte.io import DataFrame, Dir, File


    class Color(enum.Enum):
        RED = "red"
        GREEN = "green"


    @dataclasses.dataclass
    class Stats:
        n: int
        color: Color


    kinds = ContainerTask(
        name="kinds",
        image="alpine:3.18",
        inputs={"color": Color, "maybe": Optional[int], "either": Union[int, str],
                "table": DataFrame},
        outputs={"c": Color, "m": Optional[int], "f": File, "d": Dir, "frame": DataFrame,
                 "s": Stats, "when": datetime.datetime, "took": datetime.timedelta},
        command=["/bin/sh", "-c", '''
            echo {{.inputs.color}} > /var/outputs/c
            cat /var/inputs/maybe > /var/outputs/m
            echo hi > /var/outputs/f
            mkdir /var/outputs/d && echo x > /var/outputs/d/x
            cp /var/inputs/table /var/outputs/frame
            echo '{"n": 2, "color": "green"}' > /var/outputs/s
            echo 2026-01-02T03:04:05Z > /var/outputs/when
            echo 1m30s > /var/outputs/took
        '''],
    )
    """
)


def test_enums_optionals_unions_and_data_frames_take_what_flyte_run_takes(project: Path) -> None:
    """Each input is stored as the literal the SDK's type engine makes for the value
    a user gives ``flyte run`` (an enum by member name, a data frame by path)."""
    import asyncio
    from typing import Optional, Union

    from flyte.io import DataFrame
    from flyte.types import TypeEngine
    from flyteidl2.core import literals_pb2

    (project / "kinds.py").write_text(KINDS)
    (project / "table.csv").write_text("a,b\n1,2\n")
    given = ("-i", "color=RED", "-i", "maybe=3", "-i", "either=x", "-i", "table=table.csv")
    ran = _run(project, "kinds.py:kinds", *given)
    assert ran.returncode == 0, ran.stderr
    record = json.loads(ran.stdout)
    stored = literals_pb2.LiteralMap.FromString(
        Path(record["run_uri"].removeprefix("file://"), "inputs.pb").read_bytes()
    )
    kinds = _load_module(project / "kinds.py", "kinds_check")

    def sdk(value, typ):
        lit = asyncio.run(TypeEngine.to_literal(value, typ, TypeEngine.to_literal_type(typ)))
        return lit.SerializeToString()

    assert stored.literals["color"].SerializeToString() == sdk(kinds.Color.RED, kinds.Color)
    assert stored.literals["maybe"].SerializeToString() == sdk(3, Optional[int])  # noqa: UP045 (as the task says)
    assert stored.literals["either"].SerializeToString() == sdk("x", Union[int, str])  # noqa: UP007
    # A .csv file is a csv data frame, as flyte run records it: the SDK reads it so.
    table = stored.literals["table"]
    assert table.scalar.structured_dataset.metadata.structured_dataset_type.format == "csv"
    frame = asyncio.run(
        TypeEngine.to_python_value(
            literals_pb2.Literal.FromString(table.SerializeToString()), DataFrame
        )
    )
    assert frame.format == "csv" and frame.uri == table.scalar.structured_dataset.uri
    assert Path(frame.uri.removeprefix("file://")).read_text() == "a,b\n1,2\n"
    # A value outside the enum is refused with the members flyte run offers.
    bad = _run(project, "kinds.py:kinds", *given[:-8], "-i", "color=red", *given[2:])
    assert bad.returncode == 2 and "expected one of RED, GREEN, found 'red'" in bad.stderr


def test_json_output_is_the_sdks_json_view_of_each_value(project: Path) -> None:
    """``-o json`` for a PATH.py:TASK: each output in the shape of the SDK's JSON
    schema for its type, which the SDK's own JSON coercion reads back."""
    import jsonschema
    from flyte._json_schema import literal_type_to_json_schema
    from mashumaro.codecs.basic import decode

    from copilot.sdk import load_template

    (project / "kinds.py").write_text(KINDS)
    (project / "table.csv").write_text("a,b\n1,2\n")
    given = ("-i", "color=GREEN", "-i", "maybe=7", "-i", "either=4", "-i", "table=table.csv")
    env = clean_env(COPILOT_HOME=str(project / "home"))
    ran = run_copilot(["run", "kinds.py:kinds", "-q", *given], env=env)
    assert ran.returncode == 0, ran.stderr
    view = json.loads(ran.stdout)
    assert view["c"] == "GREEN" and view["m"] == 7
    assert view["s"] == {"n": 2, "color": "green"}  # in a dataclass, by value
    assert view["when"] == "2026-01-02T03:04:05+00:00" and view["took"] == "PT1M30S"
    assert view["f"]["dimensionality"] == "SINGLE" and view["d"]["dimensionality"] == "MULTIPART"
    assert Path(view["f"]["uri"].removeprefix("file://")).read_text() == "hi\n"
    assert view["frame"]["uri"].startswith("file://") and set(view["frame"]) == {"uri", "format"}
    template = load_template("kinds.py:kinds")
    for entry in template.interface.outputs.variables:
        schema = literal_type_to_json_schema(entry.value.type)
        jsonschema.validate(view[entry.key], schema)
    kinds = _load_module(project / "kinds.py", "kinds_view")
    # mashumaro, the SDK's dataclass codec, reads the view back.
    assert decode(view["s"], kinds.Stats) == kinds.Stats(2, kinds.Color.GREEN)
    assert "cannot read" not in ran.stderr
    # The run's record keeps copilot's own view, the same for a task file.
    record = json.loads(_run(project, "kinds.py:kinds", *given).stdout)
    assert record["outputs"]["f"].startswith("file://") and record["outputs"]["c"] == "GREEN"


def test_the_private_sdk_json_serializer_copilot_uses_is_there() -> None:
    """copilot.sdk.json_view calls the SDK's serializer for its JSON schema shape."""
    import asyncio
    import inspect

    from flyte.io import File
    from flyte.types._json_coercion import serialize_json_value

    assert list(inspect.signature(serialize_json_value).parameters) == ["value", "py_type"]
    shown = asyncio.run(serialize_json_value(File(path="s3://b/k.txt"), File))
    assert shown["uri"] == "s3://b/k.txt" and shown["dimensionality"] == "SINGLE"


@pytest.mark.parametrize(
    "seconds,text",
    [(0, "PT0S"), (90, "PT1M30S"), (1.5, "PT1.5S"), (86400 + 3600, "P1DT1H"), (-5, "-PT5S")],
)
def test_durations_in_the_json_view_are_iso_8601(seconds: float, text: str) -> None:
    import datetime

    from copilot.sdk import iso_duration

    assert iso_duration(datetime.timedelta(seconds=seconds)) == text


def test_a_value_the_sdk_cannot_read_is_shown_as_stored_and_named(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A struct output the task's dataclass refuses (a downstream Flyte task would
    fail on it): ``-o json`` still shows it, and says which output and why."""
    import msgpack
    from flyteidl2.core import literals_pb2

    from copilot.sdk import json_view

    (project / "kinds.py").write_text(KINDS)
    kinds = _load_module(project / "kinds.py", "kinds_refused")
    bad = literals_pb2.Literal()
    bad.scalar.binary.value = msgpack.packb({"n": 2, "color": "BLUE"})
    bad.scalar.binary.tag = "msgpack"
    good = literals_pb2.Literal()
    good.scalar.primitive.integer = 5
    shown = json_view({"s": bad, "m": good}, {"s": kinds.Stats, "m": int})
    assert shown == {"s": {"n": 2, "color": "BLUE"}, "m": 5}
    (message,) = [r.getMessage() for r in caplog.records if r.name == "copilot.sdk"]
    assert message.startswith("output 's': the Flyte SDK cannot read it as Stats (")


FLYTE1 = textwrap.dedent(
    """
    from flytekit import ContainerTask, kwtypes, task
    from flytekit.types.file import FlyteFile

    greet = ContainerTask(
        name="greet",
        image="alpine:3.18",
        input_data_dir="/var/inputs",
        output_data_dir="/var/outputs",
        inputs=kwtypes(name=str, n=int, reads=FlyteFile),
        outputs=kwtypes(msg=str, copy=FlyteFile),
        metadata_format=ContainerTask.MetadataFormat.YAML,
        command=["/bin/sh", "-c", "echo hello {{.inputs.name}} {{.inputs.n}} > /var/outputs/msg"
                 " && cat /var/inputs/reads /var/inputs/reads > /var/outputs/copy"
                 " && cat /var/inputs/inputs.yaml >&2"],
    )

    @task
    def python_task(x: int) -> int:
        return x
    """
)


def test_a_flyte_1_container_task_runs_like_its_exported_task_file(project: Path) -> None:
    (project / "flyte1.py").write_text(FLYTE1)
    given = ("-i", "name=Ada", "-i", "n=3", "-i", "reads=reads.fq")
    ran = _run(project, "flyte1.py:greet", *given)
    assert ran.returncode == 0, ran.stderr
    record = json.loads(ran.stdout)
    assert record["outputs"]["msg"] == "hello Ada 3"
    copy = Path(record["outputs"]["copy"].removeprefix("file://"))
    assert copy.read_text() == (project / "reads.fq").read_text() * 2
    exported = run_copilot(["task", "export", "flyte1.py:greet"])
    assert exported.returncode == 0, exported.stderr
    assert yaml.safe_load(exported.stdout)["metadata_format"] == "YAML"
    (project / "greet.yaml").write_text(exported.stdout)
    by_file = _run(project, "greet.yaml", *given)
    assert _comparable(json.loads(by_file.stdout)) == _comparable(record)
    # Its pod validates like any other.
    from test_pod import validate

    remote = ("-i", "name=Ada", "-i", "n=1", "-i", "reads=s3://bucket/r.fq")
    pod = run_copilot(["pod", "flyte1.py:greet", "--prefix", "s3://b/r1", *remote, "-o", "json"])
    assert pod.returncode == 0, pod.stderr
    validate(json.loads(pod.stdout))
    # A flytekit task that runs Python is named for what it is.
    other = run_copilot(["run", "flyte1.py:python_task"])
    assert other.returncode == 2
    assert "is a flytekit PythonFunctionTask, not a ContainerTask" in other.stderr


def test_a_flyte_1_task_loads_without_the_flyte_2_sdk(project: Path) -> None:
    """Only the SDK the module imports is imported (the two never share a process)."""
    import subprocess

    (project / "flyte1.py").write_text(FLYTE1)
    code = (
        "import sys; from copilot.task import load_any_task; "
        "spec = load_any_task('flyte1.py:greet'); "
        "print(spec.name, 'flyte' in sys.modules, 'flytekit' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=clean_env(), check=True
    )
    assert out.stdout.split() == ["greet", "False", "True"]


def test_flytekit_serializer_copilot_uses_is_there() -> None:
    """copilot.sdk serializes a Flyte 1 task as pyflyte does; a release that moves it fails here."""
    import inspect

    from flytekit.configuration import SerializationSettings
    from flytekit.tools.translator import get_serializable

    assert list(inspect.signature(get_serializable).parameters)[:3] == [
        "entity_mapping",
        "settings",
        "entity",
    ]
    assert "version" in inspect.signature(SerializationSettings).parameters


def test_a_python_file_without_its_task_name_lists_its_tasks(project: Path) -> None:
    """``copilot run tasks.py`` (no ``:TASK``) is not read as a YAML task file, and a
    misspelt task name gets the file's tasks and a guess."""
    listed = "(it defines failing, named, summarize)"
    for reference in ("tasks.py", "tasks.py:"):
        bare = run_copilot(["run", reference])
        assert bare.returncode == 2, bare.stderr
        assert f"name the task in the file, as tasks.py:TASK {listed}" in bare.stderr
        assert "YAML" not in bare.stderr
    typo = run_copilot(["run", "tasks.py:sumarize"])
    assert typo.returncode == 2
    said = "has no 'sumarize'; did you mean 'summarize'? (its tasks: failing, named, summarize)"
    assert said in typo.stderr


def test_a_module_of_the_current_directory_is_found_as_flyte_run_finds_it(project: Path) -> None:
    """``MODULE:TASK`` with the module in the current directory, from the installed
    console script (whose own directory is first on its path), without PYTHONPATH."""
    pkg = project / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "mytasks.py").write_text(TASKS)
    env = {k: v for k, v in clean_env().items() if k != "PYTHONPATH"}
    ran = run_copilot_process(["task", "export", "pkg.mytasks:summarize"], env=env)
    assert ran.returncode == 0, ran.stderr
    assert "name: summarize" in ran.stdout


def test_every_command_that_names_a_task_takes_an_sdk_reference(project: Path) -> None:
    """``PATH.py:TASK`` wherever a task or interface file is named, and said so in help."""
    encoded = run_copilot(["interface", "encode", "tasks.py:summarize", "--only", "interface"])
    assert encoded.returncode == 0, encoded.stderr
    decoded = run_copilot(["interface", "decode", encoded.stdout.strip()])
    assert "reads: File" in decoded.stdout and "total: int" in decoded.stdout
    out = project / "out"
    out.mkdir()
    for name, text in {"total": "6", "title": "t"}.items():
        (out / name).write_text(text)
    (out / "report").write_text("r")
    checked = run_copilot(["validate", "--interface-file", "tasks.py:summarize", str(out)])
    assert checked.returncode == 0, checked.stderr
    for command in ("run", "stage", "pod"):
        shown = run_copilot([command, "--help"]).stdout
        assert "PATH.py:TASK or MODULE:TASK" in shown and "TASK_FILE" not in shown, command
