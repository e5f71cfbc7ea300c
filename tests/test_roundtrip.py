"""download -> a main process that copies every input to the same-named output -> sidecar.

The outputs must equal the inputs.  Fixed cases run the real commands as
subprocesses; the property-based part drives the library in-process (same
code, far faster) against the same moto S3 server.
"""

from __future__ import annotations

import os
import shutil
import string
import uuid
from pathlib import Path

import lits
import msgpack
import pytest
from conftest import S3, run_copilot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from roundtrip import assert_equivalent
from sidecar_helpers import Sidecar, run_main

from copilot.inputs import DownloadOptions, download_inputs
from copilot.outputs import UploadOptions, upload_outputs

T = lits.T
COPY_MAIN = """
import os, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
for name in os.listdir(src):
    if name in ("inputs.pb", "inputs.json", "inputs.yaml"):
        continue
    s, d = os.path.join(src, name), os.path.join(dst, name)
    if os.path.isdir(s):
        shutil.copytree(s, d)
    else:
        shutil.copyfile(s, d)
"""


def _copy_inputs_to_outputs(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in os.listdir(src):
        if name.startswith("inputs."):
            continue
        s, d = src / name, dst / name
        if s.is_dir():
            shutil.copytree(s, d)
        else:
            shutil.copyfile(s, d)


# -- fixed cases, real commands ------------------------------------------------------


def test_fixed_round_trip_through_both_commands(s3: S3, tmp_path: Path) -> None:
    s3.put("in/report.csv", b"a,b\n1,2\n")
    s3.put("in/tree/x.txt", b"x")
    s3.put("in/tree/sub/y.bin", bytes(range(256)))
    s3.put("in/ds/part-0.parquet", b"PAR1")
    s3.put("in/r1.fq", b"@r1")
    s3.put("in/r2.fq", b"@r2")
    INT, FLOAT, STR = (lits.simple(k) for k in (T.INTEGER, T.FLOAT, T.STRING))
    cases = {
        "i": (INT, lits.integer(-(2**63))),
        "f": (FLOAT, lits.floating(1e-7)),
        "big": (FLOAT, lits.floating(1e21)),
        "s": (STR, lits.string("Hello, my name is Flyte.")),
        "b": (lits.simple(T.BOOLEAN), lits.boolean(False)),
        "when": (lits.simple(T.DATETIME), lits.timestamp("2024-01-02T03:04:05.5Z")),
        "took": (lits.simple(T.DURATION), lits.duration_ns(1500)),
        "nothing": (lits.simple(T.NONE), lits.none()),
        "blob": (lits.simple(T.BINARY), lits.binary(b"\x00\x01raw", tag="")),
        "cfg": (lits.simple(T.STRUCT), lits.binary(msgpack.packb({"a": [1, {"b": None}]}))),
        "opt": (
            lits.union_of(INT, lits.simple(T.NONE)),
            lits.union(lits.none(), lits.simple(T.NONE)),
        ),
        "either": (lits.union_of(INT, STR), lits.union(lits.string("x"), STR)),
        "color": (lits.enum_of("red", "green"), lits.string("green")),
        "report": (lits.blob_type(fmt="csv"), lits.blob(s3.uri("in/report.csv"), fmt="csv")),
        "tree": (lits.blob_type(multipart=True), lits.blob(s3.uri("in/tree"), multipart=True)),
        "ds": (
            T.LiteralType(structured_dataset_type=T.StructuredDatasetType(format="parquet")),
            lits.structured_dataset(s3.uri("in/ds")),
        ),
        "xs": (lits.list_of(INT), lits.collection(lits.integer(1), lits.integer(2))),
        "reads": (
            lits.list_of(lits.blob_type()),
            lits.collection(lits.blob(s3.uri("in/r1.fq")), lits.blob(s3.uri("in/r2.fq"))),
        ),
        "scores": (lits.dict_of(FLOAT), lits.mapping(a=lits.floating(0.5), b=lits.floating(-1))),
        "grid": (
            lits.list_of(lits.list_of(STR)),
            lits.collection(lits.collection(lits.string("a")), lits.collection()),
        ),
    }
    types = {k: t for k, (t, _) in cases.items()}
    inputs = lits.literal_map({k: v for k, (_, v) in cases.items()})
    uri = s3.put("run/inputs.pb", inputs.SerializeToString())
    indir, outdir = tmp_path / "inputs", tmp_path / "outputs"
    res = run_copilot(
        [
            *s3.stow_flags(),
            "download",
            "--from-remote",
            uri,
            "--to-output-prefix",
            s3.uri("run/"),
            "--to-local-dir",
            str(indir),
            "--format",
            "JSON",
            "--input-interface",
            lits.b64(lits.variable_map(types)),
        ]
    )
    assert res.returncode == 0 and not s3.exists("run/error.pb"), res.stderr
    sc = Sidecar(s3, outdir, types, prefix="run/", raw="run/raw/")
    run_main(COPY_MAIN, str(indir), str(outdir))
    out = sc.terminate_and_wait()
    assert out.returncode == 0 and not sc.has_error(), out.stderr
    got = sc.outputs()
    assert set(got.literals) == set(cases)
    for name, (lt, want) in cases.items():
        assert_equivalent(s3, want, got.literals[name], lt, name)


# -- property-based, in-process --------------------------------------------------------

NAMES = st.text(string.ascii_lowercase + string.digits + "_", min_size=1, max_size=8)
TRIMMED_TEXT = (
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
    .map(lambda s: s.strip(" \t\r\n"))
    .filter(lambda s: s != "null")
)
JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def _primitive_types():
    def make(kind, values, build):
        return st.tuples(st.just(lits.simple(kind)), values.map(build))

    ts = st.tuples(st.integers(-62135596800, 253402300799), st.integers(0, 999_999_999))

    def timestamp(pair):
        lit = lits.L.Literal()
        lit.scalar.primitive.datetime.seconds, lit.scalar.primitive.datetime.nanos = pair
        return lit

    return st.one_of(
        make(T.INTEGER, st.integers(-(2**63), 2**63 - 1), lits.integer),
        make(T.FLOAT, st.floats(), lits.floating),
        make(T.STRING, TRIMMED_TEXT, lits.string),
        make(T.BOOLEAN, st.booleans(), lits.boolean),
        make(T.DATETIME, ts, timestamp),
        make(T.DURATION, st.integers(-(2**63) + 1, 2**63 - 1), lits.duration_ns),
        make(
            T.STRUCT,
            st.dictionaries(st.text(max_size=5), JSONISH, max_size=4),
            lambda d: lits.binary(msgpack.packb(d)),
        ),
        # An enum value `null` in an Optional's file means None, as for strings.
        st.lists(NAMES.filter(lambda v: v != "null"), min_size=1, max_size=4, unique=True).flatmap(
            lambda values: st.tuples(
                st.just(lits.enum_of(*values)), st.sampled_from(values).map(lits.string)
            )
        ),
    )


def _with_optional(base):
    none_t = lits.simple(T.NONE)
    return base | base.flatmap(
        lambda pair: st.sampled_from(
            [
                (lits.union_of(pair[0], none_t), lits.union(pair[1], pair[0])),
                (lits.union_of(pair[0], none_t), lits.union(lits.none(), none_t)),
            ]
        )
    )


def _typed_values():
    def extend(inner):
        def list_of(pair):
            lt, lit = pair
            return st.integers(0, 3).map(lambda n: (lits.list_of(lt), lits.collection(*[lit] * n)))

        def dict_of(pair):
            lt, lit = pair
            return st.lists(NAMES, max_size=3, unique=True).map(
                lambda keys: (lits.dict_of(lt), lits.mapping_of({k: lit for k in keys}))
            )

        return inner.flatmap(list_of) | inner.flatmap(dict_of)

    return st.recursive(_with_optional(_primitive_types() | _blob_types()), extend, max_leaves=4)


def _blob_types():
    """Files and directories; their content is uploaded by the test (``@`` placeholder URIs)."""
    # The text `null` in an Optional's file means None (README, output rules), so a
    # File whose whole content is `null` cannot round-trip through an Optional[File].
    contents = st.binary(max_size=64).filter(lambda b: b.strip(b" \t\r\n") != b"null")
    files = contents.map(
        lambda data: (lits.blob_type(fmt="txt"), lits.blob("@" + data.hex(), fmt="txt"))
    )
    trees = st.dictionaries(
        st.sampled_from(["a", "b.txt", "sub/c", "sub/deeper/d.bin"]), contents, max_size=3
    ).map(
        lambda tree: (
            lits.blob_type(multipart=True),
            lits.blob("@" + repr(sorted((k, v.hex()) for k, v in tree.items())), multipart=True),
        )
    )
    return files | trees


def _materialize(s3: S3, lit, prefix: str, counter: list[int]) -> None:
    """Upload placeholder blob contents and point the literals at them."""
    which = lit.WhichOneof("value")
    if which == "collection":
        for item in lit.collection.literals:
            _materialize(s3, item, prefix, counter)
    elif which == "map":
        for item in lit.map.literals.values():
            _materialize(s3, item, prefix, counter)
    elif lit.scalar.WhichOneof("value") == "union":
        _materialize(s3, lit.scalar.union.value, prefix, counter)
    elif lit.scalar.WhichOneof("value") == "blob" and lit.scalar.blob.uri.startswith("@"):
        counter[0] += 1
        key = f"{prefix}/blob{counter[0]}"
        spec = lit.scalar.blob.uri[1:]
        if lit.scalar.blob.metadata.type.dimensionality == T.BlobType.MULTIPART:
            import ast

            for rel, hexdata in ast.literal_eval(spec):
                s3.put(f"{key}/{rel}", bytes.fromhex(hexdata))
        else:
            s3.put(key, bytes.fromhex(spec))
        lit.scalar.blob.uri = s3.uri(key)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@pytest.mark.slow
@given(st.dictionaries(NAMES, _typed_values(), min_size=1, max_size=4))
def test_property_round_trip(s3_module: S3, tmp_path_factory, variables) -> None:
    s3 = s3_module
    run = uuid.uuid4().hex[:10]
    base = tmp_path_factory.mktemp("rt")
    types = {k: lt for k, (lt, _) in variables.items()}
    inputs = lits.literal_map({k: lit for k, (_, lit) in variables.items()})
    counter = [0]
    for name in inputs.literals:
        _materialize(s3, inputs.literals[name], f"{run}/data", counter)
    s3.put(f"{run}/inputs.pb", inputs.SerializeToString())
    store = s3.store()
    download_inputs(
        store,
        DownloadOptions(
            from_remote=s3.uri(f"{run}/inputs.pb"),
            to_local_dir=str(base / "in"),
            interface=lits.variable_map(types),
        ),
    )
    _copy_inputs_to_outputs(base / "in", base / "out")
    from sidecar_helpers import typed_interface

    result = upload_outputs(
        store,
        UploadOptions(
            from_local_dir=str(base / "out"),
            to_output_prefix=s3.uri(f"{run}/meta"),
            to_raw_output=s3.uri(f"{run}/raw"),
            interface=typed_interface(types),
        ),
    )
    got = lits.L.LiteralMap()
    got.ParseFromString(s3.get(f"{run}/meta/outputs.pb"))
    assert result.outputs_uri == s3.uri(f"{run}/meta/outputs.pb")
    for name, lt in types.items():
        assert_equivalent(s3, inputs.literals[name], got.literals[name], lt, name)
