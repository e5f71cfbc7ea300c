"""`copilot sidecar` against real S3, GCS and Azure Blob servers, for every row of SPEC §6.

As in a pod: the sidecar starts first with the signal watcher, a separate
"main container" process writes the files, then SIGTERM tells the sidecar the
main container is done.  One run covers every row; each row is its own test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import lits
import msgpack
import pytest
from conftest import S3
from sidecar_helpers import Sidecar, run_main
from stores import Remote

T = lits.T
INT, FLOAT, STR, BOOL = (lits.simple(k) for k in (T.INTEGER, T.FLOAT, T.STRING, T.BOOLEAN))
DATETIME, DURATION, NONE = (lits.simple(k) for k in (T.DATETIME, T.DURATION, T.NONE))
STRUCT, BINARY = lits.simple(T.STRUCT), lits.simple(T.BINARY)
BIG = os.urandom(2_000_000)

WRITER = """
import base64, json, os, sys
root = sys.argv[1]
for rel, data in json.load(open(sys.argv[2])).items():
    path = os.path.join(root, rel)
    if rel.endswith("/"):
        os.makedirs(path, exist_ok=True)
        continue
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(base64.b64decode(data))
"""

# name -> (declared type, files the main container writes, check(literal, s3, sidecar))
ROWS: dict = {}


def row(name, lt, files):
    def register(check):
        ROWS[name] = (lt, files, check)
        return check

    return register


def prim(lit):
    return getattr(lit.scalar.primitive, lit.scalar.primitive.WhichOneof("value"))


@row("int", INT, {"int": b"  42\n"})
def _(lit, s3, sc):
    assert lit.scalar.primitive.integer == 42


@row("negative_int", INT, {"negative_int": b"-9223372036854775808"})
def _(lit, s3, sc):
    assert lit.scalar.primitive.integer == -(2**63)


@row("float", FLOAT, {"float": b"3.25\n"})
def _(lit, s3, sc):
    assert lit.scalar.primitive.float_value == 3.25


@row("float_exp", FLOAT, {"float_exp": b"1e21"})
def _(lit, s3, sc):
    assert lit.scalar.primitive.float_value == 1e21


@row("string", STR, {"string": b"Hello, my name is Flyte.\n"})
def _(lit, s3, sc):
    assert lit.scalar.primitive.string_value == "Hello, my name is Flyte."


for spelling, value in [
    ("1", True),
    ("t", True),
    ("TRUE", True),
    ("True", True),
    ("0", False),
    ("f", False),
    ("FALSE", False),
    ("false", False),
]:
    row(f"bool_{spelling}", BOOL, {f"bool_{spelling}": spelling.encode() + b"\n"})(
        lambda lit, s3, sc, value=value: (
            (
                lit.scalar.primitive.WhichOneof("value") == "boolean"
                and lit.scalar.primitive.boolean is value
            )
            or pytest.fail(f"got {lit}")
        )
    )


@row("datetime_z", DATETIME, {"datetime_z": b"2024-01-02T03:04:05.5Z\n"})
def _(lit, s3, sc):
    assert lit.scalar.primitive.datetime.ToJsonString() == "2024-01-02T03:04:05.500Z"


@row("datetime_offset", DATETIME, {"datetime_offset": b"2024-01-02T05:04:05+02:00"})
def _(lit, s3, sc):
    assert lit.scalar.primitive.datetime.ToJsonString() == "2024-01-02T03:04:05Z"


@row("datetime_python", DATETIME, {"datetime_python": b"2024-01-02T03:04:05.250000+00:00"})
def _(lit, s3, sc):
    assert lit.scalar.primitive.datetime.ToJsonString() == "2024-01-02T03:04:05.250Z"


@row("duration_go", DURATION, {"duration_go": b"1h2m3s"})
def _(lit, s3, sc):
    assert lit.scalar.primitive.duration.ToNanoseconds() == 3723 * 10**9


@row("duration_neg", DURATION, {"duration_neg": b"-1.5h"})
def _(lit, s3, sc):
    assert lit.scalar.primitive.duration.ToNanoseconds() == -5400 * 10**9


@row("duration_python", DURATION, {"duration_python": b"1 day, 2:03:04.5\n"})
def _(lit, s3, sc):
    assert lit.scalar.primitive.duration.ToNanoseconds() == (93784 * 10**9 + 500_000_000)


@row("duration_iso", DURATION, {"duration_iso": b"PT1H2M"})
def _(lit, s3, sc):
    assert lit.scalar.primitive.duration.ToNanoseconds() == 3720 * 10**9


@row("none", NONE, {"none": b"anything at all"})
def _(lit, s3, sc):
    assert lit.scalar.WhichOneof("value") == "none_type"


@row("struct_json", STRUCT, {"struct_json": b'{"a": 1, "b": [1.5, "x"], "c": {"d": null}}'})
def _(lit, s3, sc):
    assert lit.scalar.binary.tag == "msgpack"
    assert msgpack.unpackb(lit.scalar.binary.value) == {"a": 1, "b": [1.5, "x"], "c": {"d": None}}


@row("struct_yaml", STRUCT, {"struct_yaml.yaml": b"name: reads\ncount: 3\ntags: [a, b]\n"})
def _(lit, s3, sc):
    assert msgpack.unpackb(lit.scalar.binary.value) == {
        "name": "reads",
        "count": 3,
        "tags": ["a", "b"],
    }


@row("binary", BINARY, {"binary": b"\x00\xff raw \n\n"})
def _(lit, s3, sc):
    assert lit.scalar.binary.value == b"\x00\xff raw \n\n"


@row("enum", lits.enum_of("red", "green"), {"enum": b"green\n"})
def _(lit, s3, sc):
    assert lit.scalar.primitive.string_value == "green"


@row("optional_missing", lits.union_of(INT, NONE), {})
def _(lit, s3, sc):
    assert lit.scalar.union.value.scalar.WhichOneof("value") == "none_type"
    assert lit.scalar.union.type.simple == T.NONE


@row("optional_null", lits.union_of(INT, NONE), {"optional_null": b"null\n"})
def _(lit, s3, sc):
    assert lit.scalar.union.value.scalar.WhichOneof("value") == "none_type"


@row("optional_value", lits.union_of(INT, NONE), {"optional_value": b"7"})
def _(lit, s3, sc):
    assert lit.scalar.union.value.scalar.primitive.integer == 7
    assert lit.scalar.union.type.simple == T.INTEGER


@row("union_second", lits.union_of(INT, STR), {"union_second": b"abc"})
def _(lit, s3, sc):
    assert lit.scalar.union.value.scalar.primitive.string_value == "abc"
    assert lit.scalar.union.type.simple == T.STRING


@row("report", lits.blob_type(fmt="csv"), {"report.csv": b"a,b\n1,2\n"})
def _(lit, s3, sc):
    assert lit.scalar.blob.uri == s3.uri("raw/report.csv")
    assert lit.scalar.blob.metadata.type.format == "csv"
    assert lit.scalar.blob.metadata.type.dimensionality == T.BlobType.SINGLE
    assert s3.get("raw/report.csv") == b"a,b\n1,2\n"


@row("big_file", lits.blob_type(), {"big_file": BIG})
def _(lit, s3, sc):
    assert s3.get("raw/big_file") == BIG
    assert lit.hash == hashlib.sha256(BIG).hexdigest()


@row(
    "tree",
    lits.blob_type(multipart=True),
    {"tree/a.txt": b"A", "tree/sub/deeper/b.bin": b"\x00" * 1000, "tree/empty/": b""},
)
def _(lit, s3, sc):
    assert lit.scalar.blob.uri == s3.uri("raw/tree")
    assert lit.scalar.blob.metadata.type.dimensionality == T.BlobType.MULTIPART
    assert sorted(s3.keys("raw/tree/")) == ["raw/tree/a.txt", "raw/tree/sub/deeper/b.bin"]
    assert s3.get("raw/tree/sub/deeper/b.bin") == b"\x00" * 1000


@row("empty_dir", lits.blob_type(multipart=True), {"empty_dir/": b""})
def _(lit, s3, sc):
    assert lit.scalar.blob.uri == s3.uri("raw/empty_dir")
    assert s3.keys("raw/empty_dir/") == []
    assert lit.hash == hashlib.sha256(b"").hexdigest()  # an empty directory, read


@row(
    "dataset",
    T.LiteralType(structured_dataset_type=T.StructuredDatasetType(format="parquet")),
    {"dataset/part-0.parquet": b"PAR1a", "dataset/part-1.parquet": b"PAR1b"},
)
def _(lit, s3, sc):
    sd = lit.scalar.structured_dataset
    assert sd.uri == s3.uri("raw/dataset")
    assert sd.metadata.structured_dataset_type.format == "parquet"
    assert s3.get("raw/dataset/part-1.parquet") == b"PAR1b"
    # The README's Dir digest: path NUL size NUL sha256 LF per file, sorted by path.
    lines = "".join(
        f"{name}\0{len(data)}\0{hashlib.sha256(data).hexdigest()}\n"
        for name, data in [("part-0.parquet", b"PAR1a"), ("part-1.parquet", b"PAR1b")]
    )
    assert lit.hash == hashlib.sha256(lines.encode()).hexdigest()


@row(
    "dataset_file",
    T.LiteralType(structured_dataset_type=T.StructuredDatasetType(format="parquet")),
    {"dataset_file.parquet": b"PAR1single"},
)
def _(lit, s3, sc):
    assert lit.scalar.structured_dataset.uri == s3.uri("raw/dataset_file.parquet")
    assert s3.get("raw/dataset_file.parquet") == b"PAR1single"
    assert lit.hash == hashlib.sha256(b"PAR1single").hexdigest()


@row("ints_dir", lits.list_of(INT), {"ints_dir/0": b"1\n", "ints_dir/1": b"2", "ints_dir/2": b"3"})
def _(lit, s3, sc):
    assert [x.scalar.primitive.integer for x in lit.collection.literals] == [1, 2, 3]


@row("ints_json", lits.list_of(INT), {"ints_json.json": b"[4, 5, 6]"})
def _(lit, s3, sc):
    assert [x.scalar.primitive.integer for x in lit.collection.literals] == [4, 5, 6]


@row("nested_lists", lits.list_of(lits.list_of(STR)), {"nested_lists": b"[[a, b], [], [c]]"})
def _(lit, s3, sc):
    got = [
        [y.scalar.primitive.string_value for y in x.collection.literals]
        for x in lit.collection.literals
    ]
    assert got == [["a", "b"], [], ["c"]]


@row(
    "files",
    lits.list_of(lits.blob_type()),
    {"files/0": b"first", "files/1.txt": b"second"},
)
def _(lit, s3, sc):
    uris = [x.scalar.blob.uri for x in lit.collection.literals]
    assert uris == [s3.uri("raw/files/0"), s3.uri("raw/files/1.txt")]
    assert s3.get("raw/files/1.txt") == b"second"


@row("empty_list", lits.list_of(INT), {"empty_list/": b""})
def _(lit, s3, sc):
    assert lit.WhichOneof("value") == "collection" and len(lit.collection.literals) == 0


@row("map_dir", lits.dict_of(FLOAT), {"map_dir/x": b"1.5", "map_dir/y": b"-2"})
def _(lit, s3, sc):
    assert {k: v.scalar.primitive.float_value for k, v in lit.map.literals.items()} == {
        "x": 1.5,
        "y": -2.0,
    }


@row("map_yaml", lits.dict_of(lits.list_of(INT)), {"map_yaml.yaml": b"a: [1, 2]\nb: []\n"})
def _(lit, s3, sc):
    got = {
        k: [x.scalar.primitive.integer for x in v.collection.literals]
        for k, v in lit.map.literals.items()
    }
    assert got == {"a": [1, 2], "b": []}


@pytest.fixture(scope="module")
def sidecar_run(remote_module: Remote, tmp_path_factory: pytest.TempPathFactory):
    s3 = remote_module
    base = tmp_path_factory.mktemp("sidecar")
    outdir = base / "outputs"
    sc = Sidecar(s3, outdir, {name: lt for name, (lt, _, _) in ROWS.items()})
    sc.wait_ready()
    files = {}
    for _, (_, written, _) in ROWS.items():
        files.update({rel: base64.b64encode(data).decode() for rel, data in written.items()})
    spec = base / "files.json"
    spec.write_text(json.dumps(files))
    run_main(WRITER, str(outdir), str(spec))
    result = sc.terminate_and_wait()
    assert result.returncode == 0, result.stderr
    assert not sc.has_error(), sc.error().message
    return sc, result


@pytest.mark.parametrize("name", sorted(ROWS))
def test_row(sidecar_run, name: str) -> None:
    sc, _ = sidecar_run
    lm = sc.outputs()
    assert name in lm.literals, f"{name} missing from outputs.pb"
    ROWS[name][2](lm.literals[name], sc.s3, sc)


def test_outputs_pb_holds_exactly_the_declared_outputs(sidecar_run) -> None:
    sc, _ = sidecar_run
    assert set(sc.outputs().literals) == set(ROWS)


def test_struct_as_generic_on_request(s3: S3, tmp_path: Path) -> None:
    sc = Sidecar(s3, tmp_path / "out", {"cfg": STRUCT}, "--struct-encoding", "generic")
    (tmp_path / "out" / "cfg").write_text('{"a": 1, "b": "x"}')
    res = sc.terminate_and_wait()
    assert res.returncode == 0, res.stderr
    generic = sc.outputs().literals["cfg"].scalar.generic
    assert dict(generic) == {"a": 1.0, "b": "x"}


def _dir_outputs(remote: Remote, tmp_path: Path):
    from sidecar_helpers import typed_interface

    from copilot.outputs import UploadOptions

    out = tmp_path / "out"
    (out / "d" / "sub").mkdir(parents=True)
    (out / "d" / "a.txt").write_bytes(b"alpha")
    (out / "d" / "sub" / "b.txt").write_bytes(b"beta")
    return UploadOptions(
        from_local_dir=str(out),
        to_output_prefix=remote.uri("meta/"),
        to_raw_output=remote.uri("raw/"),
        interface=typed_interface({"d": lits.blob_type(multipart=True)}),
    )


def test_a_dir_in_the_store_holds_exactly_what_was_uploaded(remote: Remote, tmp_path: Path) -> None:
    """Objects a killed attempt left under the Dir's prefix are removed before it is
    uploaded: a download never takes them for part of the Dir."""
    from copilot.outputs import upload_outputs

    remote.put("raw/d/stale.txt", b"from an earlier attempt")
    remote.put("raw/d/sub/b.txt", b"an earlier attempt's version, longer")
    with remote.store() as store:
        upload_outputs(store, _dir_outputs(remote, tmp_path))
    assert remote.keys("raw/") == ["raw/d/a.txt", "raw/d/sub/b.txt"]
    assert remote.get("raw/d/sub/b.txt") == b"beta"


@pytest.mark.parametrize("intrusion", ["an extra object", "a changed object"])
def test_a_second_writer_on_the_same_prefix_is_detected(
    remote: Remote, tmp_path: Path, intrusion: str
) -> None:
    from copilot.errors import CopilotError
    from copilot.outputs import upload_outputs

    with remote.store() as store:
        real = store.upload

        def upload_then_intrude(*args, **kwargs):  # type: ignore[no-untyped-def]
            copied = real(*args, **kwargs)
            if intrusion == "an extra object":
                remote.put("raw/d/theirs.txt", b"another sidecar's file")
            else:
                remote.put("raw/d/a.txt", b"another sidecar's, longer alpha")
            return copied

        store.upload = upload_then_intrude  # type: ignore[method-assign]
        with pytest.raises(CopilotError, match="were not written by this upload"):
            upload_outputs(store, _dir_outputs(remote, tmp_path))
    assert not remote.exists("meta/outputs.pb")
