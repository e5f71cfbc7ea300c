"""`copilot run`, `copilot inspect`, `copilot interface`, and scripts/demo, as users run them."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import lits
import msgpack
import pytest
from conftest import S3, clean_env, record, run_copilot
from sidecar_helpers import noop_sidecar_args

ROOT = Path(__file__).resolve().parents[1]

# Every SPEC §6 type, as both an input and the output it is echoed to.
ALL_TYPES = """\
  i: int
  f: float
  s: str
  b: bool
  when: datetime
  took: timedelta
  raw: bytes
  cfg: struct
  color: {enum: [red, green]}
  maybe: Optional[int]
  nothing: Optional[str]
  either: Union[int, str]
  doc: File[txt]
  tree: Dir
  ds: StructuredDataset[parquet]
  xs: list[int]
  scores: dict[str, float]
  reads: list[File]
"""
ALL_TYPES_TASK = (
    "name: echo_everything\n"
    "input_data_dir: /var/inputs\n"
    "output_data_dir: /var/outputs\n"
    f"inputs:\n{ALL_TYPES}"
    f"outputs:\n{ALL_TYPES}"
    'command: [/bin/sh, -c, "cp -R /var/inputs/. /var/outputs/ && echo copied {{.inputs.i}} >&2"]\n'
)


def _env(tmp_path: Path) -> dict[str, str]:
    return clean_env(COPILOT_HOME=str(tmp_path / "home"))


def _read_store_uri(uri: str) -> bytes:
    assert uri.startswith("file://"), uri
    return Path(uri[len("file://") :]).read_bytes()


def test_run_echoes_every_type_through(tmp_path: Path) -> None:
    task = tmp_path / "task.yaml"
    task.write_text(ALL_TYPES_TASK)
    (tmp_path / "doc.txt").write_text("a document\n")
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "top.txt").write_text("top")
    (tmp_path / "tree" / "sub" / "leaf.bin").write_bytes(b"\x00\x01")
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "part-0.parquet").write_bytes(b"PAR1")
    (tmp_path / "r1.fq").write_text("@r1")
    (tmp_path / "r2.fq").write_text("@r2")
    inputs = {
        "i": "-42",
        "f": "1e-7",
        "s": "Hello, my name is Flyte.",
        "b": "true",
        "when": "2024-01-02T03:04:05.5Z",
        "took": "1h2m3s",
        "raw": base64.b64encode(b"\x00\xffraw").decode(),
        "cfg": '{"a": [1, 2], "b": {"c": null}}',
        "color": "green",
        "maybe": "7",
        "either": "abc",
        "doc": "doc.txt",
        "tree": "tree",
        "ds": "ds",
        "xs": "[1, 2, 3]",
        "scores": "{a: 0.5, b: -1}",
        "reads": "[r1.fq, r2.fq]",
    }
    args = ["run", str(task)]
    for name, value in inputs.items():
        args += ["-i", f"{name}={value}"]
    res = subprocess.run(
        [str(Path(sys.executable).with_name("copilot")), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(tmp_path),
        timeout=120,
    )
    record(res.stdout, res.stderr)
    assert res.returncode == 0, res.stderr
    assert "copied -42" in res.stderr  # the command's own output is shown
    out = json.loads(res.stdout)
    assert out["i"] == -42 and out["f"] == 1e-7 and out["s"] == "Hello, my name is Flyte."
    assert out["b"] is True
    assert out["when"] == "2024-01-02T03:04:05.5Z"
    assert out["took"] == 3723 * 10**9
    assert base64.b64decode(out["raw"]) == b"\x00\xffraw"
    assert out["cfg"] == {"a": [1, 2], "b": {"c": None}}
    assert out["color"] == "green"
    assert out["maybe"] == 7 and out["nothing"] is None and out["either"] == "abc"
    assert _read_store_uri(out["doc"]) == b"a document\n"
    tree = Path(out["tree"][len("file://") :])
    assert (tree / "top.txt").read_text() == "top"
    assert (tree / "sub" / "leaf.bin").read_bytes() == b"\x00\x01"
    assert (Path(out["ds"][len("file://") :]) / "part-0.parquet").read_bytes() == b"PAR1"
    assert out["xs"] == [1, 2, 3]
    assert out["scores"] == {"a": 0.5, "b": -1.0}
    assert [_read_store_uri(u) for u in out["reads"]] == [b"@r1", b"@r2"]


def test_run_failing_command_shows_status_stderr_and_error(tmp_path: Path) -> None:
    task = tmp_path / "fail.yaml"
    task.write_text(
        "name: failing\ninputs: {n: int}\noutputs: {result: int}\n"
        "command: [/bin/sh, -c, 'echo working on {{.inputs.n}}; "
        "echo something went wrong >&2; exit 3']\n"
    )
    res = run_copilot(["run", str(task), "-i", "n=5"], env=_env(tmp_path))
    assert res.returncode == 3
    assert "exited with status 3" in res.stderr
    assert "| something went wrong" in res.stderr
    assert res.stdout == ""
    # The error document names the command's exit status and its last stderr line
    # first, as the user's failure; the missing output is only its consequence.
    said = "the command exited with status 3: something went wrong"
    assert f"error document: {said}" in res.stderr
    from flyteidl2.core import execution_pb2

    (doc_path,) = (tmp_path / "home").rglob("error.pb")
    doc = execution_pb2.ErrorDocument.FromString(doc_path.read_bytes())
    assert doc.error.message == said and doc.error.code == "CommandFailed"
    assert doc.error.origin == execution_pb2.ExecutionError.USER
    # A command that says why in _ERROR keeps its own words.
    task.write_text(
        "name: failing\ninputs: {n: int}\noutputs: {result: int}\n"
        "command: [/bin/sh, -c, 'echo disk full > \"$COPILOT_OUTPUT_DIR/_ERROR\"; exit 4']\n"
    )
    res = run_copilot(["run", str(task), "-i", "n=5"], env=_env(tmp_path))
    assert res.returncode == 4 and "error document: User Error: disk full" in res.stderr, res.stderr


def test_an_image_that_cannot_be_pulled_is_a_system_failure() -> None:
    from copilot.command import command_failure
    from copilot.errors import SYSTEM, USER

    pull = "Error: initializing source docker://nope/nope:1: reading manifest 1: unauthorized"
    err = command_failure(125, ["Trying to pull docker.io/nope/nope:1...", pull], "nope/nope:1")
    assert err.origin == SYSTEM and "the image nope/nope:1 could not be pulled" in err.message
    assert pull in err.message
    # The same status from the command itself (no engine) is the user's.
    assert command_failure(125, ["boom"], None).origin == USER


def test_run_reports_unknown_and_missing_inputs(tmp_path: Path) -> None:
    task = tmp_path / "t.yaml"
    task.write_text("inputs: {n: int}\noutputs: {}\ncommand: ['true']\n")
    res = run_copilot(["run", str(task), "-i", "m=1"], env=_env(tmp_path))
    assert res.returncode == 2 and "unknown input 'm'" in res.stderr
    res = run_copilot(["run", str(task)], env=_env(tmp_path))
    assert res.returncode == 2 and "missing input 'n'" in res.stderr


INTERFACE_YAML = """
inputs:
  n: int
  reads: list[File[fastq]]
outputs:
  total: int
  summary: {enum: [ok, bad]}
"""


def test_interface_encode_matches_the_yaml_file(s3: S3, tmp_path: Path) -> None:
    iface_file = tmp_path / "iface.yaml"
    iface_file.write_text(INTERFACE_YAML)
    res = run_copilot(["interface", "encode", str(iface_file)])
    assert res.returncode == 0, res.stderr
    values = dict(line.split(": ", 1) for line in res.stdout.splitlines())
    s3.put("d/r.fq", b"@r")
    inputs = lits.literal_map(
        {"n": lits.string("not an int"), "reads": lits.collection(lits.blob(s3.uri("d/r.fq")))}
    )
    uri = s3.put("in/inputs.pb", inputs.SerializeToString())
    docs = []
    for how in (
        ["--input-interface", values["input-interface"]],
        ["--input-interface-file", str(iface_file)],
    ):
        prefix = f"out-{len(docs)}/"
        r = run_copilot(
            [
                *s3.stow_flags(),
                "download",
                "-f",
                uri,
                "--to-output-prefix",
                s3.uri(prefix),
                "-o",
                str(tmp_path / prefix),
                *how,
            ]
        )
        assert r.returncode == 0, r.stderr
        docs.append(lits.read_error_document(s3.get(prefix + "error.pb")).message)
    assert docs[0] == docs[1] == "input 'n': expected int, found str"

    outs = []
    for how in (["--interface", values["interface"]], ["--interface-file", str(iface_file)]):
        out = tmp_path / f"o{len(outs)}"
        out.mkdir()
        (out / "total").write_text("12")
        (out / "summary").write_text("ok")
        prefix = f"meta-{len(outs)}/"
        r = run_copilot(noop_sidecar_args(s3, out, *how, prefix=prefix))
        assert r.returncode == 0, r.stderr
        outs.append(s3.get(prefix + "outputs.pb"))
    assert outs[0] == outs[1]
    lm = lits.L.LiteralMap()
    lm.ParseFromString(outs[0])
    assert lm.literals["total"].scalar.primitive.integer == 12


def test_inspect_outputs_errors_and_interfaces(tmp_path: Path) -> None:
    outputs = lits.literal_map(
        {
            "n": lits.integer(3),
            "cfg": lits.binary(msgpack.packb({"k": "v"})),
            "report": lits.blob("s3://bucket/raw/report.csv", fmt="csv"),
            "xs": lits.collection(lits.floating(1.5)),
        }
    )
    (tmp_path / "outputs.pb").write_bytes(outputs.SerializeToString())
    res = run_copilot(["inspect", str(tmp_path / "outputs.pb")])
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {
        "cfg": {"k": "v"},
        "n": 3,
        "report": "s3://bucket/raw/report.csv",
        "xs": [1.5],
    }
    assert "LiteralMap" in res.stderr

    err = lits.execution_pb2.ErrorDocument(
        error=lits.execution_pb2.ContainerError(
            code="OutputUploadFailed",
            message="output 'n': missing",
            kind=lits.execution_pb2.ContainerError.NON_RECOVERABLE,
            origin=lits.execution_pb2.ExecutionError.USER,
        )
    )
    (tmp_path / "error.pb").write_bytes(err.SerializeToString())
    res = run_copilot(["inspect", "-o", "yaml", str(tmp_path / "error.pb")])
    assert res.returncode == 0, res.stderr
    assert "code: OutputUploadFailed" in res.stdout
    assert "kind: NON_RECOVERABLE" in res.stdout and "origin: USER" in res.stdout

    (tmp_path / "iface.yaml").write_text(INTERFACE_YAML)
    encoded = run_copilot(
        ["interface", "encode", "--only", "interface", str(tmp_path / "iface.yaml")]
    ).stdout.strip()
    (tmp_path / "iface.pb").write_bytes(base64.b64decode(encoded))
    res = run_copilot(["inspect", "-o", "yaml", str(tmp_path / "iface.pb")])
    assert res.returncode == 0, res.stderr
    import yaml

    assert yaml.safe_load(res.stdout) == yaml.safe_load(INTERFACE_YAML)


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"just some text\n"])
def test_inspect_non_flyte_file_is_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.bin"
    path.write_bytes(content)
    res = run_copilot(["inspect", str(path)])
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a Flyte document" in lines[0]


@pytest.mark.slow
def test_demo_script_prints_the_three_examples(tmp_path: Path) -> None:
    env = clean_env(COPILOT_HOME=str(tmp_path / "home"), COPILOT_VENV=sys.prefix)
    res = subprocess.run(
        [str(ROOT / "scripts" / "demo")], capture_output=True, text=True, env=env, timeout=300
    )
    record(res.stdout, res.stderr)
    assert res.returncode == 0, res.stderr[-2000:]
    assert '"greeting": "Hello, my name is Ada."' in res.stdout
    assert '"result": 30' in res.stdout
    for name in ("reads.fastq.gz", "1_reads.fastq.gz", "2_1_reads.fastq.gz"):
        assert f'"{name}"' in res.stdout
    assert os.path.isdir(tmp_path / "home" / "store" / "runs")
