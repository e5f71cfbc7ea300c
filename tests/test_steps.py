"""The step library's failure policy, in-process on file:// (fast, no server)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import lits
import pytest
from flyteidl2.core import execution_pb2, literals_pb2
from sidecar_helpers import typed_interface

from copilot import (
    CancelToken,
    DownloadOptions,
    StepFailed,
    StorageConfig,
    Store,
    UploadOptions,
    download,
    sidecar,
)
from copilot.errors import UsageError

T = lits.T


def _store() -> Store:
    return Store(StorageConfig())


def test_primitive_outputs_need_no_raw_output_prefix(tmp_path: Path) -> None:
    out, meta = tmp_path / "out", tmp_path / "meta"
    out.mkdir()
    (out / "n").write_text("7\n")
    (out / "name").write_text("x")
    opts = UploadOptions(
        from_local_dir=str(out),
        to_output_prefix=str(meta),
        interface=typed_interface({"n": lits.simple(T.INTEGER), "name": lits.simple(T.STRING)}),
    )
    with _store() as store:
        result = sidecar(store, opts)
    assert result.outputs_uri is not None
    lm = literals_pb2.LiteralMap()
    lm.ParseFromString((meta / "outputs.pb").read_bytes())
    assert lm.literals["n"].scalar.primitive.integer == 7
    assert lm.literals["name"].scalar.primitive.string_value == "x"
    assert not (meta / "error.pb").exists()


def test_a_blob_without_raw_output_prefix_writes_the_error_document(tmp_path: Path) -> None:
    out, meta = tmp_path / "out", tmp_path / "meta"
    out.mkdir()
    (out / "n").write_text("7")
    (out / "model").write_bytes(b"weights")
    opts = UploadOptions(
        from_local_dir=str(out),
        to_output_prefix=str(meta),
        interface=typed_interface({"n": lits.simple(T.INTEGER), "model": lits.blob_type()}),
    )
    with _store() as store, pytest.raises(StepFailed) as failed:
        sidecar(store, opts)
    assert failed.value.document is not None
    err = lits.read_error_document((meta / "error.pb").read_bytes())
    message = err.message
    assert "output 'model'" in message and "--to-raw-output" in message, message
    assert str(out / "model") in message, message
    assert err.kind == execution_pb2.ContainerError.NON_RECOVERABLE
    assert not (meta / "outputs.pb").exists()


def test_a_configuration_error_found_after_the_wait_writes_the_error_document(
    tmp_path: Path,
) -> None:
    """The store's CA bundle is read when its client is first made, after the main
    container ended: the task's result must still be a document, not exit 2."""
    out, meta = tmp_path / "out", tmp_path / "meta"
    out.mkdir()
    (out / "model").write_bytes(b"weights")
    config = dataclasses.replace(
        StorageConfig.s3(endpoint="http://127.0.0.1:9", access_key_id="a", secret_key="b"),
        ca_bundle=str(tmp_path / "missing.pem"),
    )
    opts = UploadOptions(
        from_local_dir=str(out),
        to_output_prefix=str(meta),
        to_raw_output="s3://bucket/raw",
        interface=typed_interface({"model": lits.blob_type()}),
    )
    with Store(config) as store, pytest.raises(StepFailed) as failed:
        sidecar(store, opts)
    assert failed.value.document is not None
    err = lits.read_error_document((meta / "error.pb").read_bytes())
    assert "storage.ca-bundle" in err.message and "missing.pem" in err.message, err.message
    assert err.kind == execution_pb2.ContainerError.NON_RECOVERABLE


def test_a_usage_error_before_the_wait_writes_nothing(tmp_path: Path) -> None:
    opts = UploadOptions(from_local_dir=str(tmp_path), to_output_prefix=str(tmp_path / "m"))
    opts.hash_outputs = "md5"
    with _store() as store, pytest.raises(UsageError, match="--hash-outputs"):
        sidecar(store, opts)
    assert not (tmp_path / "m").exists()


def test_the_sidecar_command_without_raw_output_exits_0_for_primitives(tmp_path: Path) -> None:
    from conftest import run_copilot

    from copilot.interface import encode

    out, meta = tmp_path / "out", tmp_path / "meta"
    out.mkdir()
    (out / "n").write_text("3")
    iface = typed_interface({"n": lits.simple(T.INTEGER)})
    res = run_copilot(
        [
            "sidecar",
            "--to-output-prefix",
            str(meta),
            "--from-local-dir",
            str(out),
            "--interface",
            encode(iface),
            "--exit-watcher-type",
            "noop",
        ]
    )
    assert res.returncode == 0, res.stderr
    lm = literals_pb2.LiteralMap()
    lm.ParseFromString((meta / "outputs.pb").read_bytes())
    assert lm.literals["n"].scalar.primitive.integer == 3


def test_a_long_lived_token_collects_nothing_from_the_steps_it_serves(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "n").write_text("1")
    parent = CancelToken()
    opts = UploadOptions(
        from_local_dir=str(out),
        to_output_prefix=str(tmp_path / "meta"),
        interface=typed_interface({"n": lits.simple(T.INTEGER)}),
    )
    with _store() as store:
        for _ in range(50):
            sidecar(store, opts, cancel=parent)
            download(
                store,
                DownloadOptions(
                    from_remote=str(tmp_path / "meta" / "outputs.pb"),
                    to_local_dir=str(tmp_path / "in"),
                ),
                cancel=parent,
            )
    assert parent._callbacks == {}  # each step's child let go of it


def test_a_child_follows_its_parent_until_it_detaches() -> None:
    parent = CancelToken()
    with parent.child() as inner:
        pass
    assert parent._callbacks == {}
    follower = parent.child()
    parent.cancel("SIGTERM")
    assert follower.cancelled and follower.reason == "SIGTERM"
    assert not inner.cancelled  # it had let go before the parent was cancelled


def test_copilot_inside_another_program_leaves_its_process_state_alone(
    gcs_server, tmp_path: Path
) -> None:
    """Handlers, the root logger and the environment belong to the host: the CLI run
    in-process and the library (gs:// through gcsfs included) leave them as found."""
    import logging
    import os
    import signal

    from conftest import clean_env, run_copilot
    from stores import GCSBucket

    from copilot.interface import encode

    def snapshot() -> tuple:
        root = logging.getLogger()
        return signal.getsignal(signal.SIGTERM), list(root.handlers), root.level, dict(os.environ)

    before = snapshot()
    out, meta = tmp_path / "out", tmp_path / "meta"
    out.mkdir()
    (out / "n").write_text("3")
    iface = encode(typed_interface({"n": lits.simple(T.INTEGER)}))
    res = run_copilot(
        [
            "sidecar",
            "-o",
            str(meta),
            "-f",
            str(out),
            "--interface",
            iface,
            "--exit-watcher-type",
            "noop",
        ],
        env={**os.environ, **clean_env()},
    )
    assert res.returncode == 0, res.stderr
    bucket = GCSBucket(gcs_server)
    uri = bucket.put("doc.pb", (meta / "outputs.pb").read_bytes())
    with bucket.store(4) as store:
        assert store.read_bytes(uri) == (meta / "outputs.pb").read_bytes()
        import gcsfs.core

        # the plain class, not gcsfs's experimental subclass (no env var needed)
        assert type(store.client("gs").fs) is gcsfs.core.GCSFileSystem  # type: ignore[attr-defined]
    assert snapshot() == before


def test_every_test_has_a_hang_guard(request: pytest.FixtureRequest) -> None:
    """pytest-timeout is loaded with a default: a test that hangs fails, with its stacks."""
    assert request.config.pluginmanager.hasplugin("timeout")
    assert float(request.config.getini("timeout")) >= 60
