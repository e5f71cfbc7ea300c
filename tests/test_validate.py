"""``copilot validate``: the sidecar's own reading of an output dir, every problem at once,
nothing uploaded; and ``--inputs`` against an interface."""

from __future__ import annotations

import json
import os
from pathlib import Path

import lits
import pytest
from conftest import run_copilot

TASK = """\
name: t
command: [ls]
inputs:
  n: int
  f: File
outputs:
  count: int
  ratio: float
  report: File
  parts: Dir
  tags: list[str]
"""


@pytest.fixture
def task(tmp_path: Path) -> str:
    path = tmp_path / "task.yaml"
    path.write_text(TASK)
    return str(path)


def _good_outputs(root: Path) -> Path:
    out = root / "out"
    (out / "parts").mkdir(parents=True)
    (out / "parts" / "a.txt").write_text("a")
    (out / "count").write_text("3\n")
    (out / "ratio").write_text("0.5")
    (out / "report").write_text("all good")
    (out / "tags").mkdir()
    (out / "tags" / "0").write_text("x")
    (out / "tags" / "1").write_text("y")
    return out


def test_a_good_output_dir_prints_typed_values_in_declared_order(task: str, tmp_path: Path) -> None:
    out = _good_outputs(tmp_path)
    res = run_copilot(["validate", "--interface-file", task, str(out)])
    assert res.returncode == 0, res.stderr
    values = json.loads(res.stdout)
    assert list(values) == ["count", "ratio", "report", "parts", "tags"]
    assert values == {
        "count": 3,
        "ratio": 0.5,
        "report": str(out / "report"),
        "parts": str(out / "parts"),
        "tags": ["x", "y"],
    }
    assert not (tmp_path / "validate:").exists()  # nothing written anywhere


def test_every_problem_is_reported_not_just_the_first(task: str, tmp_path: Path) -> None:
    out = _good_outputs(tmp_path)
    (out / "count").write_text("three")
    (out / "report").unlink()
    os.symlink("/etc/passwd", out / "ratio.tmp")
    (out / "ratio").unlink()
    os.rename(out / "ratio.tmp", out / "ratio")
    res = run_copilot(["validate", "--interface-file", task, str(out)])
    assert res.returncode == 1
    lines = res.stderr.splitlines()
    assert lines[-1] == "copilot validate: 3 problem(s)"
    assert any(line.startswith("copilot validate: output 'count': ") for line in lines)
    assert any(
        "output 'ratio'" in line and "outside the output directory" in line for line in lines
    )
    assert any("output 'report': expected File at" in line for line in lines)
    assert res.stdout == ""


@pytest.mark.parametrize(
    "spoil",
    ["bad int", "missing file", "error file", "symlink out"],
)
def test_validate_says_what_the_sidecar_would(spoil: str, task: str, tmp_path: Path) -> None:
    """The same refusal, word for word, as the sidecar's error document."""
    out = _good_outputs(tmp_path)
    if spoil == "bad int":
        (out / "count").write_text("3.5")
    elif spoil == "missing file":
        (out / "report").unlink()
    elif spoil == "error file":
        (out / "_ERROR").write_text("the tool crashed")
    else:
        (out / "report").unlink()
        os.symlink("/etc/hostname", out / "report")
    checked = run_copilot(["validate", "--interface-file", task, str(out)])
    assert checked.returncode == 1
    problem = checked.stderr.splitlines()[0].removeprefix("copilot validate: ")
    prefix = tmp_path / "prefix"
    ran = run_copilot(
        ["sidecar", "--exit-watcher-type", "noop", "--interface-file", task,
         "-o", str(prefix), "-x", str(tmp_path / "raw"), "-f", str(out)]
    )  # fmt: skip
    assert ran.returncode == 0
    message = lits.read_error_document((prefix / "error.pb").read_bytes()).message
    assert problem.split(": ", 1)[-1] in message, (problem, message)


def test_inputs_are_checked_against_the_interface(task: str, tmp_path: Path) -> None:
    inputs = tmp_path / "inputs.pb"
    inputs.write_bytes(lits.literal_map({"n": lits.string("7")}).SerializeToString())
    res = run_copilot(["validate", "--interface-file", task, "--inputs", str(inputs)])
    assert res.returncode == 1
    assert res.stderr.splitlines() == [
        "copilot validate: input 'f': declared in the interface as File but missing from the "
        "inputs document",
        "copilot validate: input 'n': expected int, found str",
        "copilot validate: 2 problem(s)",
    ]
    inputs.write_bytes(
        lits.literal_map({"n": lits.integer(7), "f": lits.blob("s3://b/k")}).SerializeToString()
    )
    value = lits.b64(lits.variable_map({"n": lits.simple(lits.T.INTEGER)}))
    res = run_copilot(["validate", "--input-interface", value, "--inputs", str(inputs)])
    assert (res.returncode, json.loads(res.stdout)) == (0, {"n": 7})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "validate: give an output dir, or --inputs URI (one of them)"),
        (["out"], "validate: give --interface-file or --interface"),
        (["--inputs", "x.pb"], "validate --inputs: give --interface-file, --interface or "),
        (["-i", "notbase64", "out"], "--interface: not valid base64"),
    ],
)
def test_validate_usage_errors(args: list[str], message: str, tmp_path: Path) -> None:
    res = run_copilot(["validate", *args])
    assert res.returncode == 2
    assert res.stderr.startswith(f"copilot: error: {message}"), res.stderr
