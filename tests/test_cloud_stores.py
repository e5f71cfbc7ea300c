"""GCS and Azure Blob through real emulators: fake-gcs-server and Azurite.

Storage is configured only as a Flyte user would: ``--storage.stow.*`` flags,
a ``--config`` YAML file, or (GCS) the ``STORAGE_EMULATOR_HOST`` environment.
Each route round-trips an int, a str, a File and a nested Dir through
``download`` and ``sidecar``, and the data is read back with the backend's
own client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lits
import pytest
from conftest import clean_env, run_copilot
from emulators import GCS, Azure
from sidecar_helpers import typed_interface
from stores import AzureContainer, FsspecBucket, GCSBucket, Remote

T = lits.T
INTERFACE = {
    "n": lits.simple(T.INTEGER),
    "s": lits.simple(T.STRING),
    "f": lits.blob_type(),
    "d": lits.blob_type(multipart=True),
}


@pytest.fixture
def gcs(gcs_server: GCS) -> FsspecBucket:
    return GCSBucket(gcs_server)


@pytest.fixture
def azure(azure_server: Azure) -> FsspecBucket:
    return AzureContainer(azure_server)


def _download(
    flags: list[str], inputs_uri: str, store: FsspecBucket, local: Path, *extra: str, env=None
) -> Any:
    """``download`` of ``inputs_uri`` into ``local``, error document under ``run/``."""
    args = [*flags, "download", "-f", inputs_uri, "--to-output-prefix", store.uri("run/")]
    return run_copilot([*args, "-o", str(local), *extra], env=env)


def _round_trip(
    store: FsspecBucket, tmp_path: Path, root_flags: list[str], env: dict[str, str]
) -> None:
    # Inputs: an int, a str, a File and a nested Dir, written with the backend's client.
    store.put("data/x.txt", b"payload")
    store.put("data/tree/top.txt", b"top")
    store.put("data/tree/sub/leaf.bin", b"\x00\x01")
    store.put("data/tree/sub/deeper/empty", b"")
    inputs = lits.literal_map(
        {
            "n": lits.integer(42),
            "s": lits.string("Hello, GCS and Azure"),
            "f": lits.blob(store.uri("data/x.txt")),
            "d": lits.blob(store.uri("data/tree"), multipart=True),
        }
    )
    inputs_uri = store.put("run/inputs.pb", inputs.SerializeToString())
    local = tmp_path / "in"
    res = _download(root_flags, inputs_uri, store, local, env=env)
    assert res.returncode == 0, res.stderr
    assert not store.exists("run/error.pb"), res.stderr
    assert (local / "n").read_text() == "42"
    assert (local / "s").read_text() == "Hello, GCS and Azure"
    assert (local / "f").read_bytes() == b"payload"
    assert (local / "d" / "top.txt").read_bytes() == b"top"
    assert (local / "d" / "sub" / "leaf.bin").read_bytes() == b"\x00\x01"
    assert (local / "d" / "sub" / "deeper" / "empty").read_bytes() == b""

    # Outputs: the same four types, uploaded and recorded in outputs.pb.
    out = tmp_path / "out"
    (out / "d" / "nested" / "deeper").mkdir(parents=True)
    (out / "n").write_text("7\n")
    (out / "s").write_text("done")
    (out / "f").write_bytes(b"result bytes")
    (out / "d" / "a.txt").write_text("a")
    (out / "d" / "nested" / "deeper" / "b.bin").write_bytes(b"\xff")
    res = run_copilot(
        [
            *root_flags,
            "sidecar",
            "--exit-watcher-type",
            "noop",
            "-o",
            store.uri("run/"),
            "-x",
            store.uri("raw/"),
            "-f",
            str(out),
            "-i",
            lits.b64(typed_interface(INTERFACE)),
        ],
        env=env,
    )
    assert res.returncode == 0, res.stderr
    assert not store.exists("run/error.pb"), res.stderr
    lm = lits.L.LiteralMap()
    lm.ParseFromString(store.get("run/outputs.pb"))
    assert lm.literals["n"].scalar.primitive.integer == 7
    assert lm.literals["s"].scalar.primitive.string_value == "done"
    prefix = f"{store.protocol}://{store.bucket}/"
    f_uri = lm.literals["f"].scalar.blob.uri
    assert f_uri.startswith(prefix) and store.get(f_uri[len(prefix) :]) == b"result bytes"
    d_uri = lm.literals["d"].scalar.blob.uri.rstrip("/")
    assert store.get(d_uri[len(prefix) :] + "/a.txt") == b"a"
    assert store.get(d_uri[len(prefix) :] + "/nested/deeper/b.bin") == b"\xff"


def test_gcs_configured_by_stow_flags_with_an_endpoint(
    gcs: FsspecBucket, gcs_server: GCS, tmp_path: Path
) -> None:
    flags = [
        *gcs.stow_flags(),
        "--storage.stow.config",
        f"project_id={gcs_server.project}",
    ]
    _round_trip(gcs, tmp_path, flags, clean_env())


def test_gcs_configured_by_the_environment(
    gcs: FsspecBucket, gcs_server: GCS, tmp_path: Path
) -> None:
    env = clean_env(STORAGE_EMULATOR_HOST=gcs_server.endpoint)
    _round_trip(gcs, tmp_path, ["--storage.type=stow", "--storage.stow.kind=google"], env)


def test_azure_configured_by_stow_flags_only(
    azure: FsspecBucket, azure_server: Azure, tmp_path: Path
) -> None:
    flags = azure.stow_flags()
    # A connection string in the environment pointing elsewhere must not win over the flags.
    env = clean_env(
        AZURE_STORAGE_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=wrong;"
        "AccountKey=d3Jvbmc=;BlobEndpoint=http://127.0.0.1:9/wrong;"
    )
    _round_trip(azure, tmp_path, flags, env)


def test_azure_configured_by_a_config_file_only(
    azure: FsspecBucket, azure_server: Azure, tmp_path: Path
) -> None:
    config = tmp_path / "storage.yaml"
    config.write_text(
        "storage:\n"
        "  type: stow\n"
        "  stow:\n"
        "    kind: azure\n"
        "    config:\n"
        f"      account: {azure_server.account}\n"
        f"      key: {azure_server.key}\n"
        f"      endpoint: {azure_server.blob_endpoint}\n"
    )
    _round_trip(azure, tmp_path, ["--config", str(tmp_path / "*.yaml")], clean_env())


@pytest.mark.parametrize(
    ("kind", "key", "hint"),
    [
        ("azure", "endpiont", "did you mean endpoint?"),
        ("google", "project", "did you mean project_id?"),
        ("s3", "acess_key_id", "did you mean access_key_id?"),
    ],
)
def test_an_unknown_stow_key_is_an_error_naming_the_valid_ones(
    kind: str, key: str, hint: str, tmp_path: Path
) -> None:
    res = run_copilot(
        [
            f"--storage.stow.kind={kind}",
            "--storage.stow.config",
            f"{key}=x",
            "download",
            "-f",
            "gs://b/inputs.pb",
            "-o",
            str(tmp_path),
        ]
    )
    assert res.returncode == 2
    assert f"unknown key {key!r} for kind {kind} ({hint})" in res.stderr
    assert "valid keys:" in res.stderr


def test_a_service_account_json_arrives_whole_through_the_flag() -> None:
    """pflag's string-to-string flag is one CSV record: quoted, a JSON keeps its , and =."""
    import json

    from copilot.config import parse_pairs

    account = {
        "type": "service_account",
        "project_id": "p",
        "private_key_id": "abc",
        "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEv==\n-----END PRIVATE KEY-----\n",
        "client_email": "x@p.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    text = json.dumps(account)
    quoted = '"json=' + text.replace('"', '""') + '",project_id=p'
    pairs = parse_pairs(quoted, "--storage.stow.config")
    assert json.loads(pairs["json"]) == account
    assert pairs["project_id"] == "p"
    # Unquoted values with commas still continue the previous value.
    assert parse_pairs("secret_key=a,b,region=r", "x") == {"secret_key": "a,b", "region": "r"}


def test_a_missing_bucket_on_upload_is_named(remote: Remote, tmp_path: Path) -> None:
    """copilot never creates buckets (Go's stow would): the error names the missing one."""
    flags, meta = remote.stow_flags(), remote.uri("run/")
    raw, read = f"{remote.protocol}://no-such-bucket-x1/raw", remote.get
    out = tmp_path / "out"
    out.mkdir()
    (out / "f").write_bytes(b"x")
    res = run_copilot(
        [
            *flags,
            "sidecar",
            "--exit-watcher-type",
            "noop",
            "-o",
            meta,
            "-x",
            raw,
            "-f",
            str(out),
            "-i",
            lits.b64(typed_interface({"f": lits.blob_type()})),
        ]
    )
    assert res.returncode == 0, res.stderr
    doc = lits.read_error_document(read("run/error.pb"))
    assert "the bucket 'no-such-bucket-x1' does not exist" in doc.message
    assert doc.kind == lits.execution_pb2.ContainerError.NON_RECOVERABLE


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["google", "azure"])
def test_a_stalled_transfer_ends_at_the_timeout_with_the_document_written(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The deadline cancels a GCS or Azure transfer on fsspec's loop, as it does an S3 one."""
    from faultproxy import FaultProxy

    store = request.getfixturevalue("gcs" if kind == "google" else "azure")
    store.put("data/slow.bin", b"x" * 1000)
    inputs = lits.literal_map({"slow": lits.blob(store.uri("data/slow.bin"))})
    inputs_uri = store.put("run/inputs.pb", inputs.SerializeToString())
    with FaultProxy(
        store.upstream, mode="stall", rate=1.0, stall_seconds=60, only_path="slow.bin"
    ) as proxy:
        flags = store.stow_flags(proxy.url)
        res = _download(flags, inputs_uri, store, tmp_path / "in", "-t", "2s")
        stalled = proxy.faults.get("stall", 0)
    assert res.returncode == 0, res.stderr
    assert stalled, "the transfer never reached the stalled object"
    doc = lits.read_error_document(store.get("run/error.pb"))
    assert doc.message == "download did not finish within the timeout of 2s"
    assert not (tmp_path / "in" / "slow").exists()
    assert not list((tmp_path / "in").rglob("*.copilot-part"))


@pytest.mark.slow  # resolving a name that does not exist, twice per store: 3-5 s
@pytest.mark.parametrize(
    ("protocol", "flags"),
    [
        (
            "s3",
            [
                "--storage.stow.kind=s3",
                "--storage.stow.config=endpoint=http://no-such-host.invalid:9,region=us-east-1",
                "--storage.stow.config=access_key_id=a,secret_key=b",
            ],
        ),
        (
            "gs",
            [
                "--storage.stow.kind=google",
                "--storage.stow.config=endpoint=http://no-such-host.invalid:9",
            ],
        ),
        (
            "abfs",
            [
                "--storage.stow.kind=azure",
                "--storage.stow.config=account=a,key=YWJj",
                "--storage.stow.config=endpoint=http://no-such-host.invalid:9/a",
            ],
        ),
    ],
)
def test_a_store_host_that_does_not_resolve_is_retried_once_and_named(
    protocol: str, flags: list[str], tmp_path: Path
) -> None:
    res = run_copilot(
        [
            "--logger.level=4",
            *flags,
            "download",
            "-f",
            f"{protocol}://c/inputs.pb",
            "-o",
            str(tmp_path),
        ]
    )
    assert res.returncode == 1
    assert (
        f"read inputs {protocol}://c/inputs.pb: the store's host 'no-such-host.invalid' "
        "could not be resolved (DNS); check the endpoint" in res.stderr
    )
    assert "attempt 1 of 5 failed" in res.stderr and "attempt 2 of" not in res.stderr
    assert "did not finish within the timeout" not in res.stderr
