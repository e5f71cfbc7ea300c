"""`copilot download`: layouts, storage configuration, interfaces and every failure path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import lits
import pytest
from conftest import ACCESS_KEY, REGION, S3, SECRET_KEY, clean_env, run_copilot
from flyteidl2.core import execution_pb2, literals_pb2
from httpserve import FileServer
from stores import Remote


def _download(s3: Remote, inputs_uri: str, local: Path, *extra: str, flags=None, env=None):
    return run_copilot(
        [
            *(s3.stow_flags() if flags is None else flags),
            "download",
            "--from-remote",
            inputs_uri,
            "--to-output-prefix",
            s3.uri("out/"),
            "--to-local-dir",
            str(local),
            *extra,
        ],
        env=env,
    )


def _error(s3: Remote, key: str = "out/error.pb"):
    assert s3.exists(key), f"no {key} written"
    return lits.read_error_document(s3.get(key))


def _tree_names(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# -- NAMED_DIR -----------------------------------------------------------------


def test_named_dir_keeps_file_names_and_never_overwrites(s3: S3, tmp_path: Path) -> None:
    s3.put("a/reads.fastq.gz", b"reads from a")
    s3.put("b/reads.fastq.gz", b"reads from b")
    s3.put("c/1_reads.fastq.gz", b"reads from c")
    s3.put("ref/genome.fa", b">chr1\nACGT\n")
    inputs = lits.literal_map(
        {
            "reads": lits.collection(
                lits.blob(s3.uri("a/reads.fastq.gz")),
                lits.blob(s3.uri("b/reads.fastq.gz")),
                lits.blob(s3.uri("c/1_reads.fastq.gz")),
            ),
            "reference": lits.blob(s3.uri("ref/genome.fa")),
            "n": lits.integer(3),
        }
    )
    uri = s3.put("in/inputs.pb", inputs.SerializeToString())
    res = _download(s3, uri, tmp_path / "in", "--file-input-layout", "NAMED_DIR")
    assert res.returncode == 0, res.stderr
    reads = tmp_path / "in" / "reads"
    contents = {p.name: p.read_bytes() for p in reads.iterdir()}
    assert len(contents) == 3
    assert sorted(contents.values()) == [b"reads from a", b"reads from b", b"reads from c"]
    assert contents["reads.fastq.gz"] == b"reads from a"
    assert contents["1_reads.fastq.gz"] == b"reads from b"
    assert (tmp_path / "in" / "reference" / "genome.fa").read_bytes() == b">chr1\nACGT\n"
    assert (tmp_path / "in" / "n").read_text() == "3"
    values = json.loads((tmp_path / "in" / "inputs.json").read_text())
    assert values["reference"] == str(tmp_path / "in" / "reference" / "genome.fa")
    assert sorted(values["reads"]) == sorted(str(reads / n) for n in contents)


# -- storage configuration -----------------------------------------------------


def _prepare_simple(s3: S3) -> str:
    s3.put("data/x.txt", b"payload")
    inputs = lits.literal_map({"x": lits.blob(s3.uri("data/x.txt")), "n": lits.integer(5)})
    return s3.put("in/inputs.pb", inputs.SerializeToString())


def _assert_simple(res, local: Path) -> None:
    assert res.returncode == 0, res.stderr
    assert (local / "x").read_bytes() == b"payload"
    assert (local / "n").read_text() == "5"
    for text in (res.stdout, res.stderr):
        assert SECRET_KEY not in text
        assert ACCESS_KEY not in text


def test_storage_from_environment(s3: S3, tmp_path: Path) -> None:
    uri = _prepare_simple(s3)
    res = _download(s3, uri, tmp_path / "in", flags=["--logger.level=5"], env=s3.env())
    _assert_simple(res, tmp_path / "in")


def test_storage_from_stow_flags_only(s3: S3, tmp_path: Path) -> None:
    uri = _prepare_simple(s3)
    flags = [*s3.stow_flags(), "--logger.level=5"]
    res = _download(s3, uri, tmp_path / "in", flags=flags, env=clean_env())
    _assert_simple(res, tmp_path / "in")
    assert "***" in res.stderr  # the debug dump shows the config, masked


def test_storage_from_config_file_with_secret_path(s3: S3, tmp_path: Path) -> None:
    uri = _prepare_simple(s3)
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET_KEY + "\n")
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    (conf_dir / "storage.yaml").write_text(
        f"""
storage:
  type: stow
  container: {s3.bucket}
  stow:
    kind: s3
    config:
      auth_type: accesskey
      access_key_id: {ACCESS_KEY}
      secret_key_path: {secret_file}
      endpoint: {s3.endpoint}
      region: {REGION}
      disable_ssl: true
logger:
  level: 5
"""
    )
    flags = ["--config", str(conf_dir / "*.yaml")]
    res = _download(s3, uri, tmp_path / "in", flags=flags, env=clean_env())
    _assert_simple(res, tmp_path / "in")


def test_storage_from_flyte1_connection_flags(s3: S3, tmp_path: Path) -> None:
    uri = _prepare_simple(s3)
    flags = [
        "--storage.type=minio",
        f"--storage.connection.endpoint={s3.endpoint}",
        "--storage.connection.auth-type=accesskey",
        f"--storage.connection.access-key={ACCESS_KEY}",
        f"--storage.connection.secret-key={SECRET_KEY}",
        f"--storage.connection.region={REGION}",
        "--storage.connection.disable-ssl",
    ]
    res = _download(s3, uri, tmp_path / "in", flags=flags, env=clean_env())
    _assert_simple(res, tmp_path / "in")


def test_missing_config_glob_is_not_an_error(s3: S3, tmp_path: Path) -> None:
    uri = _prepare_simple(s3)
    flags = ["--config", "/nonexistent/*.yaml"]
    res = _download(s3, uri, tmp_path / "in", flags=flags, env=s3.env())
    _assert_simple(res, tmp_path / "in")


def test_flags_after_the_subcommand_are_accepted(s3: S3, tmp_path: Path) -> None:
    """cobra's persistent flags may follow the subcommand; so may ours."""
    uri = _prepare_simple(s3)
    res = run_copilot(
        [
            "download",
            "-f",
            uri,
            "--to-output-prefix",
            s3.uri("out/"),
            "-o",
            str(tmp_path / "in"),
            *s3.stow_flags(),
            "--kubeconfig",
            "/nonexistent/kubeconfig",
            "--namespace",
            "flytesnacks-development",
        ]
    )
    _assert_simple(res, tmp_path / "in")


def test_failure_at_debug_level_leaks_no_secret(s3: S3, tmp_path: Path) -> None:
    """Flags in comma form, a failure, debug logging: the secret appears nowhere."""
    inputs = lits.literal_map({"x": lits.blob(s3.uri("data/absent.txt"))})
    uri = s3.put("in/inputs.pb", inputs.SerializeToString())
    flags = [
        "--logger.level=5",
        "--storage.type=stow",
        "--storage.stow.kind=s3",
        f"--storage.stow.config=endpoint={s3.endpoint},region={REGION},disable_ssl=true",
        f"--storage.stow.config=access_key_id={ACCESS_KEY},secret_key={SECRET_KEY}",
    ]
    res = _download(s3, uri, tmp_path / "in", flags=flags, env=clean_env())
    assert res.returncode == 0, res.stderr
    err = _error(s3)
    assert "data/absent.txt" in err.message
    for text in (res.stdout, res.stderr, err.message):
        assert SECRET_KEY not in text
        assert ACCESS_KEY not in text


# -- failures -------------------------------------------------------------------


def _assert_contained(sandbox: Path, allowed: set[str]) -> None:
    """Nothing outside the input dir: the sandbox holds only the input dir itself."""
    assert {p.name for p in sandbox.iterdir()} <= allowed


def test_missing_blob_gives_error_pb(remote: Remote, tmp_path: Path) -> None:
    s3 = remote
    inputs = lits.literal_map({"data": lits.blob(s3.uri("nope/missing.bin"))})
    uri = s3.put("in/inputs.pb", inputs.SerializeToString())
    res = _download(s3, uri, tmp_path / "in")
    assert res.returncode == 0, res.stderr
    err = _error(s3)
    assert err.code == "InputDownloadFailed"
    assert err.origin == lits.execution_pb2.ExecutionError.SYSTEM
    assert "input 'data'" in err.message
    assert "nope/missing.bin" in err.message and "not found" in err.message
    assert "Traceback" not in res.stderr
    assert "not found" in res.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "in" / "inputs.pb").exists()
    assert not list((tmp_path / "in").rglob("*.copilot-part"))


def test_corrupt_inputs_pb_gives_error_pb(s3: S3, tmp_path: Path) -> None:
    uri = s3.put("in/inputs.pb", b"\xff\xfe this is not a protobuf \x00\x01")
    res = _download(s3, uri, tmp_path / "in")
    assert res.returncode == 0, res.stderr
    err = _error(s3)
    assert "not a valid LiteralMap" in err.message
    assert "in/inputs.pb" in err.message
    assert "Traceback" not in res.stderr


def test_missing_inputs_pb_gives_error_pb(remote: Remote, tmp_path: Path) -> None:
    s3 = remote
    res = _download(s3, s3.uri("in/absent.pb"), tmp_path / "in")
    assert res.returncode == 0
    err = _error(s3)
    assert "read inputs" in err.message and "not found" in err.message


def test_http_404_gives_error_pb(s3: S3, tmp_path: Path) -> None:
    with FileServer({}) as http:
        inputs = lits.literal_map({"page": lits.blob(f"{http.url}/missing.txt?sig=abc")})
        uri = s3.put("in/inputs.pb", inputs.SerializeToString())
        res = _download(s3, uri, tmp_path / "in")
    assert res.returncode == 0, res.stderr
    err = _error(s3)
    assert "input 'page'" in err.message
    assert "missing.txt" in err.message
    assert "not found" in err.message or "404" in err.message
    assert "sig=abc" not in err.message  # query strings (signatures) are not echoed


def test_map_key_escaping_the_dir_is_refused(s3: S3, tmp_path: Path) -> None:
    inputs = lits.literal_map(
        {"m": lits.mapping_of({"ok": lits.string("fine"), "../../etc/x": lits.string("evil")})}
    )
    uri = s3.put("in/inputs.pb", inputs.SerializeToString())
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    res = _download(s3, uri, sandbox / "in")
    assert res.returncode == 0, res.stderr
    err = _error(s3)
    assert "../../etc/x" in err.message and "map key" in err.message
    _assert_contained(sandbox, {"in"})
    assert not (tmp_path / "etc").exists()


@pytest.mark.parametrize(
    "name,builder",
    [
        ("variable", lambda s3: {"../escape": lits.string("x")}),
        ("absolute", lambda s3: {"m": lits.mapping_of({"/etc/passwd": lits.string("x")})}),
        ("nul", lambda s3: {"m": lits.mapping_of({"a\x00b": lits.string("x")})}),
        ("long", lambda s3: {"m": lits.mapping_of({"k" * 10_000: lits.string("x")})}),
        ("remote_key", lambda s3: {"d": lits.blob(s3.uri("evil"), multipart=True)}),
    ],
)
def test_hostile_names_are_refused(s3: S3, tmp_path: Path, name: str, builder) -> None:
    # An object key with a `..` segment under a multipart prefix.
    s3.put("evil/../../outside.txt", b"x")
    uri = s3.put("in/inputs.pb", lits.literal_map(builder(s3)).SerializeToString())
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    res = _download(s3, uri, sandbox / "in")
    assert res.returncode == 0, res.stderr
    err = _error(s3)
    assert "cannot be used as a file name" in err.message, err.message
    _assert_contained(sandbox, {"in"})
    assert not (tmp_path / "outside.txt").exists()


def test_interface_mismatch_is_reported(s3: S3, tmp_path: Path) -> None:
    inputs = lits.literal_map({"n": lits.string("abc"), "f": lits.floating(1.5)})
    uri = s3.put("in/inputs.pb", inputs.SerializeToString())
    iface = lits.variable_map({"n": lits.simple(lits.T.INTEGER), "f": lits.simple(lits.T.FLOAT)})
    res = _download(s3, uri, tmp_path / "in", "--input-interface", lits.b64(iface))
    assert res.returncode == 0
    err = _error(s3)
    assert err.message == "input 'n': expected int, found str"


def test_interface_missing_variable_is_reported(s3: S3, tmp_path: Path) -> None:
    inputs = lits.literal_map({"a": lits.integer(1)})
    uri = s3.put("in/inputs.pb", inputs.SerializeToString())
    iface = lits.variable_map(
        {"a": lits.simple(lits.T.INTEGER), "reads": lits.list_of(lits.blob_type())}
    )
    res = _download(s3, uri, tmp_path / "in", "-i", lits.b64(iface))
    assert res.returncode == 0
    assert "input 'reads': declared in the interface as list[File]" in _error(s3).message


def test_interface_that_matches_is_accepted(s3: S3, tmp_path: Path) -> None:
    s3.put("d/f.csv", b"a,b\n")
    inputs = lits.literal_map(
        {
            "f": lits.blob(s3.uri("d/f.csv"), fmt="csv"),
            "maybe": lits.union(lits.none(), lits.simple(lits.T.NONE)),
            "color": lits.string("red"),
            "xs": lits.collection(lits.integer(1)),
        }
    )
    uri = s3.put("in/inputs.pb", inputs.SerializeToString())
    iface = lits.variable_map(
        {
            "f": lits.blob_type(fmt="csv"),
            "maybe": lits.union_of(lits.simple(lits.T.INTEGER), lits.simple(lits.T.NONE)),
            "color": lits.enum_of("red", "green"),
            "xs": lits.list_of(lits.simple(lits.T.INTEGER)),
        }
    )
    res = _download(s3, uri, tmp_path / "in", "-i", lits.b64(iface))
    assert res.returncode == 0, res.stderr
    assert not s3.exists("out/error.pb")
    assert (tmp_path / "in" / "f").read_bytes() == b"a,b\n"


def test_garbage_interface_is_reported(s3: S3, tmp_path: Path) -> None:
    uri = s3.put("in/inputs.pb", lits.literal_map({"a": lits.integer(1)}).SerializeToString())
    res = _download(s3, uri, tmp_path / "in", "-i", "!!not base64!!")
    # A bad argument: exit 2 and one line, before anything is written.
    assert res.returncode == 2
    assert (
        res.stderr.strip() == "copilot: error: --input-interface: not valid base64 (14 characters)"
    )
    assert not s3.exists("out/error.pb") and not (tmp_path / "in").exists()


@pytest.mark.slow
def test_timeout_gives_error_pb(s3: S3, tmp_path: Path) -> None:
    with FileServer({"/stall": b"late"}, stall_seconds=20) as http:
        inputs = lits.literal_map({"slow": lits.blob(f"{http.url}/stall")})
        uri = s3.put("in/inputs.pb", inputs.SerializeToString())
        res = _download(s3, uri, tmp_path / "in", "--timeout", "1s")
    assert res.returncode == 0, res.stderr
    assert "did not finish within the timeout of 1s" in _error(s3).message
    assert not (tmp_path / "in" / "slow").exists()


def test_do_not_download_writes_only_metadata(s3: S3, tmp_path: Path) -> None:
    s3.put("d/big.bin", b"x" * 1000)
    inputs = lits.literal_map({"big": lits.blob(s3.uri("d/big.bin")), "n": lits.integer(2)})
    uri = s3.put("in/inputs.pb", inputs.SerializeToString())
    res = _download(s3, uri, tmp_path / "in", "--download-mode", "DO_NOT_DOWNLOAD")
    assert res.returncode == 0, res.stderr
    assert sorted(os.listdir(tmp_path / "in")) == ["inputs.json", "inputs.pb"]
    values = json.loads((tmp_path / "in" / "inputs.json").read_text())
    assert values == {"big": s3.uri("d/big.bin"), "n": 2}
    lm = literals_pb2.LiteralMap()
    lm.ParseFromString((tmp_path / "in" / "inputs.pb").read_bytes())
    assert lm.literals["big"].scalar.blob.uri == s3.uri("d/big.bin")


@pytest.mark.slow
def test_unreachable_store_without_prefix_exits_nonzero(tmp_path: Path) -> None:
    flags = [
        "--storage.stow.kind=s3",
        "--storage.stow.config=endpoint=http://127.0.0.1:9,access_key_id=a,secret_key=b",
        "--storage.stow.config=region=us-east-1",
    ]
    res = run_copilot(
        [
            *flags,
            "download",
            "-f",
            "s3://b/inputs.pb",
            "-o",
            str(tmp_path / "in"),
            "-t",
            "20s",
            "--retries",
            "2",
            "--retry-for",
            "0s",
        ],
        env=clean_env(),
    )
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if "error" in line]
    assert lines and "s3://b/inputs.pb" in lines[0]


# -- storage.limits.maxDownloadMBs ----------------------------------------------


@pytest.mark.parametrize("where", ["store", "file"])
def test_an_inputs_document_over_the_download_limit_is_refused(
    s3: S3, tmp_path: Path, where: str
) -> None:
    """Read in one request (at most the limit plus a byte) on a store, after a size
    look-up elsewhere; over the limit either way is a one-line, permanent failure."""
    body = lits.literal_map({"s": lits.string("x" * (1 << 20))}).SerializeToString()
    if where == "store":
        uri = s3.put("limit/inputs.pb", body)
    else:
        (tmp_path / "inputs.pb").write_bytes(body)
        uri = f"file://{tmp_path / 'inputs.pb'}"
    flags = [f for f in s3.stow_flags() if not f.startswith("--storage.limits.maxDownloadMBs")]
    res = _download(s3, uri, tmp_path / "in", flags=[*flags, "--storage.limits.maxDownloadMBs=1"])
    assert res.returncode == 0, res.stderr  # the failure is in error.pb, for Flyte to read
    err = _error(s3)
    assert "is over the storage.limits.maxDownloadMBs limit of 1 MB" in err.message
    assert "inputs.pb" in err.message and "Traceback" not in res.stderr
    assert err.kind == execution_pb2.ContainerError.NON_RECOVERABLE
    assert not (tmp_path / "in" / "s").exists()
    # Under the limit (2 MB), the same document and an empty one (no inputs) come through.
    ok = _download(s3, uri, tmp_path / "in2", flags=[*flags, "--storage.limits.maxDownloadMBs=2"])
    assert ok.returncode == 0, ok.stderr
    assert len((tmp_path / "in2" / "s").read_bytes()) == 1 << 20
    empty = s3.put("limit/empty.pb", b"")
    ok = _download(s3, empty, tmp_path / "in3", flags=[*flags, "--storage.limits.maxDownloadMBs=2"])
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "in3" / "inputs.pb").read_bytes() == b""
