"""Fuzzing download and sidecar in-process with malformed input (>= 10,000 cases in all).

Every case must end in success or a clean CopilotError (never another
exception), within a bound, and write nothing outside its own directories.
"""

from __future__ import annotations

import base64
import itertools
import os
import shutil
import string
import tempfile
from pathlib import Path

import lits
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from copilot.errors import CopilotError
from copilot.inputs import DownloadOptions, download_inputs
from copilot.interface import parse_type
from copilot.outputs import UploadOptions, upload_outputs
from copilot.protobuf import parse_base64_message
from copilot.storage import Store

CASE_SECONDS = 10
COUNTER = itertools.count()
#: The cases' directory, made by the module's fixture (not at import: a worker that
#: only collects this module must leave nothing behind).
ROOT = Path()


@pytest.fixture(scope="module", autouse=True)
def _root_dir():
    global ROOT
    # tmpfs when there is one: thousands of tiny cases are file-system bound on disk.
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    ROOT = Path(tempfile.mkdtemp(prefix="copilot-fuzz-", dir=shm))
    yield
    shutil.rmtree(ROOT, ignore_errors=True)


STORE = Store()

NAMES = st.one_of(
    st.sampled_from(
        [
            "a",
            "b",
            "x.txt",
            "..",
            ".",
            "",
            "../../etc/x",
            "/abs",
            "a/b",
            "n\x00ul",
            "k" * 300,
            "inputs.pb",
            "_ERROR",
            "outputs.json",
        ]
    ),
    st.text(string.printable, max_size=12),
)


def _literals():
    leaf = st.one_of(
        st.integers(-(2**63), 2**63 - 1).map(lits.integer),
        st.floats().map(lits.floating),
        st.text(max_size=20).map(lits.string),
        st.booleans().map(lits.boolean),
        st.just(lits.none()),
        st.just(lits.empty_primitive()),
        st.just(lits.L.Literal()),  # no value at all
        st.binary(max_size=20).map(lits.binary),
        st.sampled_from(
            [
                "",
                "s3nope://x/y",
                "file:///nonexistent/f",
                "missing/relative",
                "https://127.0.0.1:9/x",
            ]
        ).map(lits.blob),
        st.sampled_from(["", "/nonexistent/dir"]).map(lambda u: lits.blob(u, multipart=True)),
        st.sampled_from(["", "/nonexistent.pb"]).map(lits.offloaded),
    )
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3).map(lambda xs: lits.collection(*xs)),
            st.dictionaries(NAMES, inner, max_size=3).map(lits.mapping_of),
        ),
        max_leaves=6,
    )


def _mutate(data: bytes, how: int, where: int, value: int) -> bytes:
    if not data:
        return bytes([value])
    pos = where % len(data)
    if how == 0:
        return data[:pos]  # truncated
    if how == 1:
        return data[:pos] + bytes([value]) + data[pos + 1 :]  # one byte changed
    return data[:pos] + bytes([value]) * 3 + data[pos:]  # bytes inserted


DOWNLOAD_INPUTS = st.one_of(
    st.binary(max_size=300),
    st.tuples(
        st.dictionaries(NAMES, _literals(), max_size=4).map(
            lambda m: lits.literal_map(m).SerializeToString()
        ),
        st.integers(0, 2),
        st.integers(0, 10_000),
        st.integers(0, 255),
    ).map(lambda t: _mutate(*t)),
    st.dictionaries(NAMES, _literals(), max_size=4).map(
        lambda m: lits.literal_map(m).SerializeToString()
    ),
)
TYPE_SPECS = st.sampled_from(
    [
        "int",
        "float",
        "str",
        "bool",
        "datetime",
        "timedelta",
        "bytes",
        "struct",
        "none",
        "File",
        "Dir",
        "list[int]",
        "dict[str, float]",
        "Optional[int]",
        "Union[int, str]",
        "list[File]",
        "StructuredDataset",
    ]
)
INTERFACES = st.one_of(
    st.none(),
    st.text(max_size=40),  # not base64 at all
    st.binary(max_size=80).map(lambda b: base64.b64encode(b).decode()),
    st.dictionaries(NAMES, TYPE_SPECS, max_size=3).map(
        lambda d: lits.b64(lits.variable_map({k: parse_type(v) for k, v in d.items()}))
    ),
)


def _case_dir() -> Path:
    """``ROOT/w<n>/case``: the wrapper shows anything written beside the case."""
    case = ROOT / f"w{next(COUNTER)}" / "case"
    case.mkdir(parents=True)
    return case


def _assert_contained(case: Path, allowed: set[str]) -> None:
    assert set(os.listdir(case)) <= allowed, os.listdir(case)
    assert os.listdir(case.parent) == ["case"], os.listdir(case.parent)


def _clean(fn) -> None:
    """Run one case: an expected failure is fine; a hang or any other exception is not."""
    import threading

    box: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except CopilotError:
            pass
        except BaseException as exc:
            box.append(exc)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(CASE_SECONDS)
    assert not worker.is_alive(), f"a fuzz case ran for more than {CASE_SECONDS} s"
    if box:
        raise box[0]


FUZZ = settings(
    max_examples=5000,  # x2 tests = 10,000 cases
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.slow
@FUZZ
@given(DOWNLOAD_INPUTS, INTERFACES)
def test_download_never_fails_uncleanly(data: bytes, interface: str | None) -> None:
    case = _case_dir()
    (case / "inputs.pb").write_bytes(data)

    def step() -> None:
        opts = DownloadOptions(from_remote=str(case / "inputs.pb"), to_local_dir=str(case / "in"))
        if interface is not None:
            opts.interface = parse_base64_message(
                lits.interface_pb2.VariableMap, interface, "--input-interface"
            )
        download_inputs(STORE, opts)

    _clean(step)
    _assert_contained(case, {"inputs.pb", "in"})


FILE_CONTENT = st.one_of(
    st.binary(max_size=64),
    st.sampled_from(
        [
            b"42",
            b"null",
            b"abc",
            b"1.5",
            b"true",
            b"[1, 2]",
            b"{a: 1}",
            b"\xff\xfe",
            b"2024-01-02T03:04:05Z",
            b"1h",
            b'{"k": [1]}',
        ]
    ),
)
ENTRIES = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "a.txt", "b.csv", "xs", "outputs.json", "_ERROR", "m"]),
        st.sampled_from(["file", "dir", "link-out", "link-in", "fifo", "loop"]),
        FILE_CONTENT,
    ),
    max_size=5,
)
OUTPUT_TYPES = st.dictionaries(
    st.sampled_from(["a", "b", "xs", "m", "outputs"]), TYPE_SPECS, min_size=1, max_size=3
)


def _materialize(out: Path, entries: list) -> None:
    for name, kind, content in entries:
        path = out / name
        if os.path.lexists(path):
            continue
        if kind == "file":
            path.write_bytes(content)
        elif kind == "dir":
            path.mkdir()
            for i, chunk in enumerate([content, content[:3]]):
                (path / str(i)).write_bytes(chunk)
        elif kind == "link-out":
            os.symlink("/etc/passwd", path)
        elif kind == "link-in":
            (out / ".target").write_bytes(content)
            os.symlink(out / ".target", path)
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            os.symlink(path, path)


@pytest.mark.slow
@FUZZ
@given(OUTPUT_TYPES, ENTRIES, st.one_of(st.none(), st.binary(max_size=60)))
def test_sidecar_never_fails_uncleanly(types: dict, entries: list, raw_iface) -> None:
    case = _case_dir()
    out = case / "out"
    out.mkdir()
    _materialize(out, entries)
    if raw_iface is not None:
        text = base64.b64encode(raw_iface).decode()
    else:
        from sidecar_helpers import typed_interface

        text = lits.b64(typed_interface({k: parse_type(v) for k, v in types.items()}))

    def step() -> None:
        iface = parse_base64_message(lits.interface_pb2.TypedInterface, text, "--interface")
        upload_outputs(
            STORE,
            UploadOptions(
                from_local_dir=str(out),
                to_output_prefix=str(case / "meta"),
                to_raw_output=str(case / "raw"),
                interface=iface,
            ),
        )

    _clean(step)
    _assert_contained(case, {"out", "meta", "raw"})
    meta = case / "meta"
    if (meta / "outputs.pb").exists():
        # Whatever outputs.pb names was written in full.
        lm = lits.L.LiteralMap()
        lm.ParseFromString((meta / "outputs.pb").read_bytes())
        for lit in lm.literals.values():
            if lit.scalar.WhichOneof("value") == "blob":
                assert os.path.exists(lit.scalar.blob.uri)
