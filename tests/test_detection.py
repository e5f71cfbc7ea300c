"""Document detection for ``inspect`` and ``interface decode``: every kind, small and
large, must be told apart from the others on its structure alone."""

from __future__ import annotations

import base64
from pathlib import Path

import lits
import pytest
from conftest import run_copilot
from flyteidl2.core import execution_pb2, interface_pb2

from copilot.detect import detect
from copilot.literals.types import infer_type, type_name

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
T = lits.T


def _error(code: str = "", message: str = "", kind: int = 0) -> execution_pb2.ErrorDocument:
    doc = execution_pb2.ErrorDocument()
    doc.error.code, doc.error.message, doc.error.kind = code, message, kind
    return doc


def _vars(n: int, t: T.LiteralType | None = None) -> interface_pb2.VariableMap:
    return lits.variable_map({f"v{i}": t or lits.simple(T.STRING) for i in range(n)})


def _typed(inputs: int, outputs: int) -> interface_pb2.TypedInterface:
    return interface_pb2.TypedInterface(inputs=_vars(inputs), outputs=_vars(outputs))


CASES = {
    # LiteralMap: one value of each common kind, then many.
    "LiteralMap/one int": lits.literal_map({"n": lits.integer(7)}),
    "LiteralMap/one str": lits.literal_map({"name": lits.string("Ada")}),
    "LiteralMap/one File": lits.literal_map({"f": lits.blob("s3://b/k")}),
    "LiteralMap/mixed": lits.literal_map(
        {
            "a": lits.integer(1),
            "s": lits.string("x"),
            "xs": lits.collection(lits.integer(1), lits.integer(2)),
            "m": lits.mapping(k=lits.floating(1.5)),
            "d": lits.blob("s3://b/dir/", multipart=True),
            "g": lits.generic({"k": [1, 2]}),
        }
    ),
    "LiteralMap/1000 ints": lits.literal_map({f"x{i}": lits.integer(i) for i in range(1000)}),
    # Literal
    "Literal/int": lits.integer(42),
    "Literal/str": lits.string("hello"),
    "Literal/list": lits.collection(lits.string("a"), lits.string("b")),
    "Literal/File": lits.blob("gs://b/k.csv", fmt="csv"),
    # ErrorDocument
    "ErrorDocument/code only": _error(code="USER:Failed"),
    "ErrorDocument/message": _error(code="OOM", message="the task ran out of memory", kind=1),
    "ErrorDocument/long message": _error(code="E", message="line\n" * 2000),
    # VariableMap
    "VariableMap/one str": _vars(1),
    "VariableMap/one int": lits.variable_map({"n": lits.simple(T.INTEGER)}),
    "VariableMap/list of ints": lits.variable_map({"xs": lits.list_of(lits.simple(T.INTEGER))}),
    "VariableMap/200": _vars(200),
    # TypedInterface
    "TypedInterface/one in": _typed(1, 0),
    "TypedInterface/one out": _typed(0, 1),
    "TypedInterface/both": _typed(3, 2),
    "TypedInterface/200": _typed(100, 100),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_kind_is_detected(case: str) -> None:
    found = detect(CASES[case].SerializeToString(), "document.pb")
    assert found.kind == case.split("/")[0]
    assert found.also == ()


def _encoded(task: Path) -> dict[str, str]:
    res = run_copilot(["interface", "encode", str(task)])
    assert res.returncode == 0, res.stderr
    return dict(line.split(": ", 1) for line in res.stdout.splitlines())


def test_bytes_that_fit_two_kinds_are_reported_and_named_by_file() -> None:
    """One File variable encodes to the same bytes as one none literal: both fit."""
    data = lits.variable_map({"f": lits.blob_type()}).SerializeToString()
    found = detect(data, "document.pb")
    assert {found.kind, *found.also} == {"LiteralMap", "VariableMap"}
    assert detect(data, "inputs.pb").kind == "LiteralMap"
    assert detect(data, "task-interface.pb").kind != "LiteralMap"
    value = base64.b64encode(data).decode()
    res = run_copilot(["interface", "decode", value])
    assert res.stdout == "f: File\n"
    assert res.stderr == "# VariableMap (also parses as LiteralMap; --as chooses)\n"


@pytest.mark.parametrize("task", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_what_interface_encode_prints_decodes_as_that_kind(task: str) -> None:
    values = _encoded(EXAMPLES / task)
    assert detect(base64.b64decode(values["input-interface"])).kind == "VariableMap"
    assert detect(base64.b64decode(values["interface"])).kind == "TypedInterface"
    for flag in ("input-interface", "interface"):
        res = run_copilot(["interface", "decode", values[flag]])
        assert res.returncode == 0, res.stderr


def test_interface_decode_of_an_input_interface_value() -> None:
    value = lits.b64(lits.variable_map({"name": lits.simple(T.STRING)}))
    res = run_copilot(["interface", "decode", value])
    assert (res.returncode, res.stdout, res.stderr) == (0, "name: str\n", "# VariableMap\n")


def test_interface_decode_of_an_inputs_pb_gives_its_literals_types(tmp_path: Path) -> None:
    inputs = tmp_path / "inputs.pb"
    doc = lits.literal_map(
        {
            "a": lits.integer(1),
            "reads": lits.collection(lits.blob("s3://b/r.fastq", fmt="fastq")),
            "m": lits.mapping(k=lits.string("v")),
        }
    )
    inputs.write_bytes(doc.SerializeToString())
    res = run_copilot(["interface", "decode", str(inputs)])
    assert res.returncode == 0, res.stderr
    assert sorted(res.stdout.splitlines()) == [
        "a: int",
        "m: dict[str, str]",
        "reads: list[File[fastq]]",
    ]


def test_interface_decode_refuses_an_error_document() -> None:
    res = run_copilot(["interface", "decode", lits.b64(_error(code="E", message="boom"))])
    assert res.returncode == 1
    assert res.stderr.startswith("copilot: error: interface: not a Flyte document (tried ")


def test_inspect_says_when_two_kinds_fit(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pb"
    empty.write_bytes(b"")
    res = run_copilot(["inspect", str(empty)])
    assert res.returncode == 0
    assert res.stderr.startswith("# LiteralMap (also parses as ")
    assert "--as chooses" in res.stderr


@pytest.mark.parametrize(
    "lit",
    [
        lits.integer(1),
        lits.string("s"),
        lits.blob("s3://b/k", multipart=True),
        lits.collection(lits.collection(lits.floating(1.0))),
        lits.union(lits.integer(3), lits.simple(T.INTEGER)),
        lits.structured_dataset("s3://b/sd"),
        lits.none(),
    ],
)
def test_infer_type_fits_the_literal(lit) -> None:
    from copilot.literals.types import mismatch

    inferred = infer_type(lit)
    assert mismatch(lit, inferred, "x") is None, type_name(inferred)


def test_inspect_as_a_kind_the_document_is_not_is_refused(tmp_path: Path) -> None:
    """``--as`` settles a tie between kinds that fit; it does not make one fit (a
    TypedInterface read as a VariableMap parses, into garbage)."""
    import base64

    encoded = run_copilot(
        ["interface", "encode", "examples/greeting.yaml", "--only", "interface"]
    ).stdout
    iface = tmp_path / "iface.pb"
    iface.write_bytes(base64.b64decode(encoded))
    wrong = run_copilot(["inspect", "--as", "VariableMap", str(iface)])
    assert wrong.returncode == 1 and wrong.stdout == ""
    assert "not a VariableMap (its fields do not fit one; it reads as a TypedInterface)" in (
        wrong.stderr
    )
    right = run_copilot(["inspect", "--as", "TypedInterface", str(iface), "-o", "yaml"])
    assert right.returncode == 0 and "name: str" in right.stdout
    empty = tmp_path / "empty.pb"
    empty.write_bytes(b"")
    assert run_copilot(["inspect", "--as", "LiteralMap", str(empty)]).returncode == 0
