"""`copilot download` against real S3, GCS and Azure Blob servers, called exactly as Flyte calls it.

One inputs document holds a variable for every row of SPEC §4; a single
download lays it out and each row is then checked byte for byte.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import lits
import pytest
import yaml
from conftest import run_copilot
from flyteidl2.core import literals_pb2
from httpserve import FileServer
from stores import Remote

RNG = random.Random(1234)
FILE_BYTES = bytes(RNG.getrandbits(8) for _ in range(300_000))
TREE = {
    "a.txt": b"alpha\n",
    "sub/deeper/b.bin": bytes(range(256)) * 10,
    "sub/c.txt": b"",
}
MSGPACK = b"\x82\xa1a\x01\xa1b\x92\x01\xa1x"  # {"a": 1, "b": [1, "x"]}
STR_TYPE = lits.simple(lits.T.STRING)
INT_TYPE = lits.simple(lits.T.INTEGER)

# name -> (literal builder, expected): bytes for a file, dict for a directory tree.
# Builders get (s3, http_url) so blobs can point at the servers of this run.
ROWS = {
    "string": (lambda s3, h: lits.string("héllo\nwörld  "), "héllo\nwörld  ".encode()),
    "integer": (lambda s3, h: lits.integer(-42), b"-42"),
    "float_one": (lambda s3, h: lits.floating(1.0), b"1"),
    "float_tenth": (lambda s3, h: lits.floating(0.1), b"0.1"),
    "float_big": (lambda s3, h: lits.floating(1e21), b"1000000000000000000000"),
    "float_small": (lambda s3, h: lits.floating(1e-7), b"0.0000001"),
    "float_nan": (lambda s3, h: lits.floating(float("nan")), b"NaN"),
    "float_inf": (lambda s3, h: lits.floating(float("inf")), b"+Inf"),
    "float_neg_inf": (lambda s3, h: lits.floating(float("-inf")), b"-Inf"),
    "bool_true": (lambda s3, h: lits.boolean(True), b"true"),
    "bool_false": (lambda s3, h: lits.boolean(False), b"false"),
    "datetime": (lambda s3, h: lits.timestamp("2024-01-02T03:04:05Z"), b"2024-01-02T03:04:05Z"),
    "datetime_frac": (
        lambda s3, h: lits.timestamp("2024-01-02T03:04:05.500Z"),
        b"2024-01-02T03:04:05.5Z",
    ),
    "duration_hms": (lambda s3, h: lits.duration_ns(3723 * 10**9), b"1h2m3s"),
    "duration_2h": (lambda s3, h: lits.duration_ns(7200 * 10**9), b"2h0m0s"),
    "duration_1_5s": (lambda s3, h: lits.duration_ns(1_500_000_000), b"1.5s"),
    "duration_ms": (lambda s3, h: lits.duration_ns(300_000_000), b"300ms"),
    "duration_zero": (lambda s3, h: lits.duration_ns(0), b"0s"),
    "duration_neg": (lambda s3, h: lits.duration_ns(-3600 * 10**9), b"-1h0m0s"),
    "duration_ns": (lambda s3, h: lits.duration_ns(100), b"100ns"),
    "duration_us": (lambda s3, h: lits.duration_ns(1500), "1.5µs".encode()),
    "none": (lambda s3, h: lits.none(), b"null"),
    "empty_primitive": (lambda s3, h: lits.empty_primitive(), b"null"),
    "error": (
        lambda s3, h: lits.error("upstream node failed: boom"),
        b"upstream node failed: boom",
    ),
    "binary": (lambda s3, h: lits.binary(MSGPACK), MSGPACK),
    "generic": (
        lambda s3, h: lits.generic({"b": [1, "x", True], "a": 1.5, "n": None, "o": {"k": 2}}),
        b'{"a":1.5,"b":[1,"x",true],"n":null,"o":{"k":2}}',
    ),
    "union": (lambda s3, h: lits.union(lits.integer(7), INT_TYPE), b"7"),
    "file": (lambda s3, h: lits.blob(s3.uri("data/file.bin"), fmt="bin"), FILE_BYTES),
    "file_http": (lambda s3, h: lits.blob(f"{h}/files/remote.txt"), b"served over http\n"),
    "dir": (lambda s3, h: lits.blob(s3.uri("data/tree"), multipart=True), TREE),
    "dir_slash": (lambda s3, h: lits.blob(s3.uri("data/tree/"), multipart=True), TREE),
    "dir_empty": (lambda s3, h: lits.blob(s3.uri("data/empty"), multipart=True), {}),
    "schema": (lambda s3, h: lits.schema(s3.uri("data/schema")), {"part-0": b"schema-part"}),
    "sd_dir": (
        lambda s3, h: lits.structured_dataset(s3.uri("data/sd")),
        {"part-0.parquet": b"PAR1-0", "part-1.parquet": b"PAR1-1"},
    ),
    "sd_file": (lambda s3, h: lits.structured_dataset(s3.uri("data/one.parquet")), b"PAR1-single"),
    "collection": (
        lambda s3, h: lits.collection(
            lits.collection(lits.integer(1), lits.integer(2)), lits.collection()
        ),
        {"0/0": b"1", "0/1": b"2", "1/": None},
    ),
    "collection_files": (
        lambda s3, h: lits.collection(lits.blob(s3.uri("data/file.bin")), lits.string("s")),
        {"0": FILE_BYTES, "1": b"s"},
    ),
    "map": (
        lambda s3, h: lits.mapping(x=lits.floating(2.5), nested=lits.mapping(y=lits.string("why"))),
        {"x": b"2.5", "nested/y": b"why"},
    ),
    "offloaded": (lambda s3, h: lits.offloaded(s3.uri("off/top.pb")), {"0": b"10", "1": b"20"}),
    "offloaded_nested": (
        lambda s3, h: lits.mapping(
            inner=lits.offloaded(s3.uri("off/inner.pb")),
            deep=lits.collection(lits.offloaded(s3.uri("off/chain.pb"))),
        ),
        {"inner": b"from offload", "deep/0": b"3.25"},
    ),
}


def _put_remote_data(s3: Remote) -> None:
    s3.put("data/file.bin", FILE_BYTES)
    for rel, data in TREE.items():
        s3.put(f"data/tree/{rel}", data)
    # A sibling whose name starts like the tree must not leak into it.
    s3.put("data/tree-sibling.txt", b"not part of the tree")
    s3.put("data/schema/part-0", b"schema-part")
    s3.put("data/sd/part-0.parquet", b"PAR1-0")
    s3.put("data/sd/part-1.parquet", b"PAR1-1")
    s3.put("data/one.parquet", b"PAR1-single")
    s3.put("off/top.pb", lits.collection(lits.integer(10), lits.integer(20)).SerializeToString())
    s3.put("off/inner.pb", lits.string("from offload").SerializeToString())
    # An offloaded literal that points at another one.
    s3.put("off/chain.pb", lits.offloaded(s3.uri("off/chain2.pb")).SerializeToString())
    s3.put("off/chain2.pb", lits.floating(3.25).SerializeToString())


@pytest.fixture(scope="module")
def downloaded(remote_module: Remote, tmp_path_factory: pytest.TempPathFactory):
    s3 = remote_module
    _put_remote_data(s3)
    base = tmp_path_factory.mktemp("download")
    with FileServer({"/files/remote.txt": b"served over http\n"}) as http:
        inputs = lits.literal_map({name: build(s3, http.url) for name, (build, _) in ROWS.items()})
        remote = s3.put("run/inputs.pb", inputs.SerializeToString())
        result = run_copilot(
            [
                "--logger.level=4",
                *s3.stow_flags(),
                "download",
                "--from-remote",
                remote,
                "--to-output-prefix",
                s3.uri("run/out/"),
                "--to-local-dir",
                str(base / "inputs"),
                "--format",
                "JSON",
                "--file-input-layout",
                "DIRECT",
                "--input-interface",
                "",
            ]
        )
        assert result.returncode == 0, result.stderr
        assert not s3.exists("run/out/error.pb"), result.stderr
        # The http server stays up for the tests that download again.
        yield base / "inputs", result, s3


def _tree(root: Path) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            full = Path(dirpath, d)
            if not any(full.iterdir()):
                out[str(full.relative_to(root)) + "/"] = None
        for f in filenames:
            full = Path(dirpath, f)
            out[str(full.relative_to(root))] = full.read_bytes()
    return out


@pytest.mark.parametrize("name", sorted(ROWS))
def test_row_is_written_exactly(downloaded, name: str) -> None:
    root, _, _ = downloaded
    expected = ROWS[name][1]
    path = root / name
    if isinstance(expected, bytes):
        assert path.is_file(), f"{path} missing"
        assert path.read_bytes() == expected
    else:
        assert path.is_dir(), f"{path} is not a directory"
        assert _tree(path) == expected


def test_no_partial_or_extra_files(downloaded) -> None:
    root, _, _ = downloaded
    names = set(os.listdir(root))
    assert names == set(ROWS) | {"inputs.pb", "inputs.json"}
    leftovers = [p for p in root.rglob("*") if p.name.endswith(".copilot-part")]
    assert leftovers == []


def test_inputs_pb_is_the_resolved_map_with_local_paths(downloaded) -> None:
    root, _, _ = downloaded
    lm = literals_pb2.LiteralMap()
    lm.ParseFromString((root / "inputs.pb").read_bytes())
    assert set(lm.literals) == set(ROWS)
    assert lm.literals["file"].scalar.blob.uri == str(root / "file")
    assert lm.literals["file"].scalar.blob.metadata.type.format == "bin"
    assert lm.literals["dir"].scalar.blob.uri == str(root / "dir")
    assert lm.literals["sd_dir"].scalar.structured_dataset.uri == str(root / "sd_dir")
    assert lm.literals["collection_files"].collection.literals[0].scalar.blob.uri == str(
        root / "collection_files" / "0"
    )
    # Offloaded literals are inlined, at any depth.
    top = lm.literals["offloaded"]
    assert [x.scalar.primitive.integer for x in top.collection.literals] == [10, 20]
    deep = lm.literals["offloaded_nested"].map.literals["deep"].collection.literals[0]
    assert deep.scalar.primitive.float_value == 3.25
    assert lm.literals["union"].scalar.union.value.scalar.primitive.integer == 7


def test_inputs_json_values(downloaded) -> None:
    root, _, _ = downloaded
    values = json.loads((root / "inputs.json").read_text())
    assert values["integer"] == -42
    assert values["float_big"] == 1e21
    assert values["float_nan"] == "NaN"
    assert values["string"] == "héllo\nwörld  "
    assert values["bool_true"] is True
    assert values["datetime_frac"] == "2024-01-02T03:04:05.5Z"
    assert values["duration_hms"] == 3723 * 10**9
    assert values["duration_neg"] == -3600 * 10**9
    assert values["none"] is None
    assert values["binary"] == "gqFhAaFikgGheA=="
    assert values["generic"] == {"a": 1.5, "b": [1, "x", True], "n": None, "o": {"k": 2}}
    assert values["file"] == str(root / "file")
    assert values["dir"] == str(root / "dir")
    assert values["collection"] == [[1, 2], []]
    assert values["map"] == {"x": 2.5, "nested": {"y": "why"}}
    assert values["offloaded"] == [10, 20]
    assert values["union"] == 7
    assert values["error"] == "upstream node failed: boom"


def test_yaml_format_writes_the_same_values(downloaded, tmp_path: Path) -> None:
    root, _, s3 = downloaded
    result = run_copilot(
        [
            *s3.stow_flags(),
            "download",
            "-f",
            s3.uri("run/inputs.pb"),
            "--to-output-prefix",
            s3.uri("run/out-yaml/"),
            "-o",
            str(tmp_path / "in"),
            "-m",
            "YAML",
        ]
    )
    assert result.returncode == 0, result.stderr
    from_yaml = yaml.safe_load((tmp_path / "in" / "inputs.yaml").read_text())
    from_json = json.loads((root / "inputs.json").read_text())
    # Same values, only the local directory differs.
    old, new = str(root), str(tmp_path / "in")
    assert json.loads(json.dumps(from_json).replace(old, new)) == from_yaml
    assert not (tmp_path / "in" / "inputs.json").exists()


def test_proto_format_writes_only_inputs_pb(downloaded, tmp_path: Path) -> None:
    _, _, s3 = downloaded
    result = run_copilot(
        [
            *s3.stow_flags(),
            "download",
            "-f",
            s3.uri("run/inputs.pb"),
            "--to-output-prefix",
            s3.uri("run/out-proto/"),
            "-o",
            str(tmp_path / "in"),
            "--format",
            "PROTO",
        ]
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "in" / "inputs.pb").is_file()
    assert not (tmp_path / "in" / "inputs.json").exists()
    assert not (tmp_path / "in" / "inputs.yaml").exists()


def test_logs_a_summary_at_info_level(downloaded) -> None:
    _, result, _ = downloaded
    assert "downloaded" in result.stderr and "bytes" in result.stderr
