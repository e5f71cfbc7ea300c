"""Who failed, and whether a retry can help: one test per row of the README's table.

Each test makes the failure happen for real (moto, a fault proxy, a stalled
HTTP server, a signal), then reads `error.pb` back with flyteidl2 and checks
code, origin and kind, as Flyte's output reader would.  The commands run with
Flyte's own argument lists, without `--err-output-name`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import lits
import pytest
from conftest import S3, clean_env, copilot_exe, record, run_copilot
from faultproxy import FaultProxy
from flyteidl2.core import execution_pb2
from httpserve import FileServer
from sidecar_helpers import typed_interface, wait_catches_sigterm

from copilot.errors import ErrorInfo
from copilot.steps import as_copilot_error

USER, SYSTEM = "USER", "SYSTEM"
RECOVERABLE, NON_RECOVERABLE = "RECOVERABLE", "NON_RECOVERABLE"
DOWN, UP = "InputDownloadFailed", "OutputUploadFailed"


def read_back(s3: S3, key: str = "meta/error.pb") -> tuple[str, str, str, str]:
    """(code, origin, kind, message) of the ErrorDocument at ``key``, as Flyte reads it."""
    assert s3.exists(key), f"no {key}"
    doc = execution_pb2.ErrorDocument()
    doc.ParseFromString(s3.get(key))
    err = doc.error
    return (
        err.code,
        execution_pb2.ExecutionError.ErrorKind.Name(err.origin),
        execution_pb2.ContainerError.Kind.Name(err.kind),
        err.message,
    )


def flyte_download(s3: S3, inputs_uri: str, local: Path, *extra: str, flags=None) -> list[str]:
    """download exactly as Flyte's plugin builds it (SPEC §2)."""
    return [
        *(s3.stow_flags() if flags is None else flags),
        "download",
        "--from-remote",
        inputs_uri,
        "--to-output-prefix",
        s3.uri("meta/"),
        "--to-local-dir",
        str(local),
        "--format",
        "JSON",
        "--file-input-layout",
        "DIRECT",
        *extra,
    ]


def flyte_sidecar(s3: S3, outdir: Path, outputs: dict, *extra: str, flags=None) -> list[str]:
    """sidecar exactly as Flyte's plugin builds it, with a watcher that does not wait."""
    return [
        *(s3.stow_flags() if flags is None else flags),
        "sidecar",
        "--timeout",
        "1h0m0s",
        "--to-raw-output",
        s3.uri("raw/"),
        "--to-output-prefix",
        s3.uri("meta/"),
        "--from-local-dir",
        str(outdir),
        "--interface",
        lits.b64(typed_interface(outputs)),
        "--exit-watcher-type",
        "noop",
        *extra,
    ]


def sidecar_fails(s3: S3, outdir: Path, outputs: dict, *extra: str, flags=None):
    res = run_copilot(flyte_sidecar(s3, outdir, outputs, *extra, flags=flags))
    assert res.returncode == 0, res.stderr  # the failure is in the document, as upstream
    assert "Traceback" not in res.stderr
    assert not s3.exists("meta/outputs.pb")
    return read_back(s3)


def download_fails(s3: S3, inputs_uri: str, local: Path, *extra: str):
    res = run_copilot(flyte_download(s3, inputs_uri, local, *extra))
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    return read_back(s3)


def _out(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    return out


# -- what the main container wrote (origin USER) --------------------------------------


def test_error_file_is_the_users_recoverable_failure(s3: S3, tmp_path: Path) -> None:
    out = _out(tmp_path)
    (out / "_ERROR").write_text("ran out of patience\n")
    code, origin, kind, message = sidecar_fails(s3, out, {"n": lits.simple(lits.T.INTEGER)})
    assert (code, origin, kind) == (UP, USER, RECOVERABLE)
    assert message == "User Error: ran out of patience"


def test_error_file_with_the_marker_is_not_retried(s3: S3, tmp_path: Path) -> None:
    out = _out(tmp_path)
    (out / "_ERROR").write_text("NON_RECOVERABLE\ninput file is corrupt\n")
    code, origin, kind, message = sidecar_fails(s3, out, {"n": lits.simple(lits.T.INTEGER)})
    assert (code, origin, kind) == (UP, USER, NON_RECOVERABLE)
    assert message == "User Error: input file is corrupt"


def _container_document(**error: object) -> bytes:
    return execution_pb2.ErrorDocument(
        error=execution_pb2.ContainerError(**error)  # type: ignore[arg-type]
    ).SerializeToString()


def test_a_binary_error_document_in_the_error_file_is_forwarded_unchanged(
    s3: S3, tmp_path: Path
) -> None:
    """Flyte #7960: the container's own ErrorDocument reaches the reader byte for byte;
    its kind is left out, and NON_RECOVERABLE is 0, so the failure is permanent."""
    out = _out(tmp_path)
    document = _container_document(
        code="BenchmarkFailed",
        message="the model rejected the prompt",
        origin=execution_pb2.ExecutionError.USER,
    )
    (out / "_ERROR").write_bytes(document)
    code, origin, kind, message = sidecar_fails(s3, out, {"x": lits.blob_type()})
    assert (code, origin, kind) == ("BenchmarkFailed", USER, NON_RECOVERABLE)
    assert message == "the model rejected the prompt"
    assert s3.get("meta/error.pb") == document


def test_a_forwarded_error_document_keeps_the_kind_and_origin_it_chose(
    s3: S3, tmp_path: Path
) -> None:
    out = _out(tmp_path)
    document = _container_document(
        code="Flaky",
        message="the GPU fell off the bus",
        kind=execution_pb2.ContainerError.RECOVERABLE,
        origin=execution_pb2.ExecutionError.SYSTEM,
    )
    (out / "_ERROR").write_bytes(document)
    assert sidecar_fails(s3, out, {"n": lits.simple(lits.T.INTEGER)}) == (
        "Flaky",
        SYSTEM,
        RECOVERABLE,
        "the GPU fell off the bus",
    )


def test_an_error_document_without_code_or_message_is_read_as_text(s3: S3, tmp_path: Path) -> None:
    """Go takes the bytes as a document only when the error says something."""
    out = _out(tmp_path)
    (out / "_ERROR").write_bytes(_container_document(kind=execution_pb2.ContainerError.RECOVERABLE))
    code, origin, kind, message = sidecar_fails(s3, out, {"n": lits.simple(lits.T.INTEGER)})
    assert (code, origin, kind) == (UP, USER, RECOVERABLE)
    assert message.startswith("User Error:")


def test_missing_output_is_the_users_failure(s3: S3, tmp_path: Path) -> None:
    out = _out(tmp_path)
    code, origin, kind, message = sidecar_fails(s3, out, {"count": lits.simple(lits.T.INTEGER)})
    assert (code, origin, kind) == (UP, USER, NON_RECOVERABLE)
    assert "output 'count'" in message and "found nothing there" in message


def test_output_that_does_not_parse_is_the_users_failure(s3: S3, tmp_path: Path) -> None:
    out = _out(tmp_path)
    (out / "count").write_text("abc")
    code, origin, kind, message = sidecar_fails(s3, out, {"count": lits.simple(lits.T.INTEGER)})
    assert (code, origin, kind) == (UP, USER, NON_RECOVERABLE)
    assert "expected int" in message


@pytest.mark.parametrize("what", ["symlink out of the dir", "FIFO", "socket"])
def test_refused_output_is_the_users_failure(s3: S3, tmp_path: Path, what: str) -> None:
    out = _out(tmp_path)
    path = out / "report"
    if what == "FIFO":
        os.mkfifo(path)
    elif what == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
    else:
        path.symlink_to("/etc/passwd")
    code, origin, kind, message = sidecar_fails(s3, out, {"report": lits.blob_type()})
    assert (code, origin, kind) == (UP, USER, NON_RECOVERABLE)
    assert "refused" in message and "report" in message


def test_outputs_past_a_limit_are_the_users_permanent_failure(s3: S3, tmp_path: Path) -> None:
    out = _out(tmp_path)
    (out / "report").write_bytes(b"x" * 100)
    code, origin, kind, message = sidecar_fails(
        s3, out, {"report": lits.blob_type()}, "--max-output-bytes", "10"
    )
    assert (code, origin, kind) == (UP, USER, NON_RECOVERABLE)
    assert "--max-output-bytes 10" in message and not s3.exists("raw/report")


# -- storage and copilot's own trouble (origin SYSTEM) ---------------------------------


@pytest.mark.slow
def test_transient_storage_failure_past_retries_is_system_recoverable(
    s3: S3, tmp_path: Path
) -> None:
    out = _out(tmp_path)
    (out / "report").write_bytes(b"data")
    with FaultProxy(s3.endpoint, mode="503", rate=1.0, only_path="/raw/") as proxy:
        code, origin, kind, message = sidecar_fails(
            s3,
            out,
            {"report": lits.blob_type()},
            "--retries",
            "2",
            "--retry-for",
            "0s",
            flags=s3.stow_flags(proxy.url),
        )
    assert (code, origin, kind) == (UP, SYSTEM, RECOVERABLE)
    assert "raw/report" in message


def test_permanent_storage_failure_is_system_non_recoverable(s3: S3, tmp_path: Path) -> None:
    out = _out(tmp_path)
    (out / "report").write_bytes(b"data")
    with FaultProxy(s3.endpoint, mode="403", rate=1.0, only_path="/raw/") as proxy:
        code, origin, kind, message = sidecar_fails(
            s3, out, {"report": lits.blob_type()}, flags=s3.stow_flags(proxy.url)
        )
    assert (code, origin, kind) == (UP, SYSTEM, NON_RECOVERABLE)
    assert "access denied" in message


def test_corrupt_inputs_pb_is_system_non_recoverable(s3: S3, tmp_path: Path) -> None:
    uri = s3.put("in/inputs.pb", b"\xff\xfe not a protobuf")
    code, origin, kind, message = download_fails(s3, uri, tmp_path / "in")
    assert (code, origin, kind) == (DOWN, SYSTEM, NON_RECOVERABLE)
    assert "not a valid LiteralMap" in message


@pytest.mark.parametrize("missing", ["inputs.pb", "a blob"])
def test_missing_input_object_is_system_non_recoverable(
    s3: S3, tmp_path: Path, missing: str
) -> None:
    if missing == "inputs.pb":
        uri = s3.uri("in/absent.pb")
    else:
        inputs = lits.literal_map({"data": lits.blob(s3.uri("nope/missing.bin"))})
        uri = s3.put("in/inputs.pb", inputs.SerializeToString())
    code, origin, kind, message = download_fails(s3, uri, tmp_path / "in")
    assert (code, origin, kind) == (DOWN, SYSTEM, NON_RECOVERABLE)
    assert "not found" in message


def test_inputs_that_do_not_match_the_interface_are_system_non_recoverable(
    s3: S3, tmp_path: Path
) -> None:
    uri = s3.put("in/inputs.pb", lits.literal_map({"n": lits.string("x")}).SerializeToString())
    iface = lits.b64(lits.variable_map({"n": lits.simple(lits.T.INTEGER)}))
    code, origin, kind, message = download_fails(
        s3, uri, tmp_path / "in", "--input-interface", iface
    )
    assert (code, origin, kind) == (DOWN, SYSTEM, NON_RECOVERABLE)
    assert "input 'n'" in message


@pytest.mark.parametrize(
    "uri", ["file:///etc/passwd", "gs://other/secret.bin", "http://169.254.169.254/latest/"]
)
def test_an_input_from_a_store_not_served_is_system_non_recoverable(
    s3: S3, tmp_path: Path, uri: str
) -> None:
    inputs = lits.literal_map({"data": lits.blob(uri)})
    found = s3.put("in/inputs.pb", inputs.SerializeToString())
    code, origin, kind, message = download_fails(s3, found, tmp_path / "in")
    assert (code, origin, kind) == (DOWN, SYSTEM, NON_RECOVERABLE)
    assert "input 'data'" in message
    assert not (tmp_path / "in" / "data").exists()


def test_download_timeout_is_system_recoverable(s3: S3, tmp_path: Path) -> None:
    with FileServer({"/stall": b"late"}, stall_seconds=20) as http:
        inputs = lits.literal_map({"slow": lits.blob(f"{http.url}/stall")})
        uri = s3.put("in/inputs.pb", inputs.SerializeToString())
        code, origin, kind, message = download_fails(s3, uri, tmp_path / "in", "--timeout", "1s")
    assert (code, origin, kind) == (DOWN, SYSTEM, RECOVERABLE)
    assert "did not finish within the timeout of 1s" in message


@pytest.mark.slow
def test_upload_timeout_is_system_recoverable(s3: S3, tmp_path: Path) -> None:
    out = _out(tmp_path)
    (out / "report").write_bytes(b"data")
    with FaultProxy(
        s3.endpoint, mode="stall", rate=1.0, stall_seconds=20, only_path="/raw/"
    ) as proxy:
        args = flyte_sidecar(s3, out, {"report": lits.blob_type()}, flags=s3.stow_flags(proxy.url))
        args[args.index("1h0m0s")] = "2s"
        res = run_copilot(args)
    assert res.returncode == 0, res.stderr
    code, origin, kind, message = read_back(s3)
    assert (code, origin, kind) == (UP, SYSTEM, RECOVERABLE)
    assert "within the timeout of 2s" in message


def test_sigterm_before_download_completes_is_system_recoverable(s3: S3, tmp_path: Path) -> None:
    with FileServer({"/stall": b"never"}, stall_seconds=60) as http:
        uri = s3.put(
            "in/inputs.pb",
            lits.literal_map({"slow": lits.blob(f"{http.url}/stall")}).SerializeToString(),
        )
        proc = subprocess.Popen(
            [copilot_exe(), *flyte_download(s3, uri, tmp_path / "in")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        wait_catches_sigterm(proc.pid)
        assert http.stalled.wait(30), "the download never reached the stalled input"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        record(out, err)
    assert proc.returncode == 0, err
    code, origin, kind, message = read_back(s3)
    assert (code, origin, kind) == (DOWN, SYSTEM, RECOVERABLE)
    assert "interrupted by SIGTERM" in message


def test_an_internal_error_is_system_recoverable() -> None:
    err = as_copilot_error(KeyError("boom"))
    info = ErrorInfo(code=UP, message=err.message, kind=err.kind, origin=err.origin)
    doc = execution_pb2.ErrorDocument()
    doc.ParseFromString(info.to_document())
    assert execution_pb2.ExecutionError.ErrorKind.Name(doc.error.origin) == SYSTEM
    assert execution_pb2.ContainerError.Kind.Name(doc.error.kind) == RECOVERABLE
    assert doc.error.message.startswith("internal error: KeyError")


@pytest.mark.parametrize(
    "exc, said",
    [
        (MemoryError(), "ran out of memory"),
        (RuntimeError("can't start new thread"), "could not start a thread"),
    ],
)
def test_running_short_of_memory_or_threads_is_said_as_such_not_as_a_bug(
    exc: BaseException, said: str
) -> None:
    """Under a tight memory or address-space limit: a clear SYSTEM / RECOVERABLE
    error that says what ran short and what to do, not "internal error"."""
    err = as_copilot_error(exc)
    assert said in err.message and "internal error" not in err.message
    assert "more memory" in err.message
    assert (err.origin, err.kind) == (SYSTEM, RECOVERABLE)
    wrapped = ValueError("while reading")
    wrapped.__cause__ = exc
    assert said in as_copilot_error(wrapped).message


# -- the document's name and the first cause --------------------------------------------


def test_flyte_argument_lists_write_error_pb_for_both_steps(s3: S3, tmp_path: Path) -> None:
    """No --err-output-name: the document lands where Flyte's reader opens it."""
    download_fails(s3, s3.uri("in/absent.pb"), tmp_path / "in")
    assert s3.keys("meta/") == ["meta/error.pb"]
    s3.client.delete_object(Bucket=s3.bucket, Key="meta/error.pb")
    sidecar_fails(s3, _out(tmp_path), {"n": lits.simple(lits.T.INTEGER)})
    assert s3.keys("meta/") == ["meta/error.pb"]


def test_a_rerun_replaces_the_sidecars_own_error_but_keeps_downloads(
    s3: S3, tmp_path: Path
) -> None:
    out = _out(tmp_path)
    outputs = {"n": lits.simple(lits.T.INTEGER)}
    # 1. a failed sidecar run ...
    assert sidecar_fails(s3, out, outputs)[0] == UP
    # 2. ... is not the final word: a second run by hand, with the output fixed, succeeds,
    # and the stale error.pb goes (Flyte's reader would otherwise see the old failure).
    (out / "n").write_text("7")
    res = run_copilot(flyte_sidecar(s3, out, outputs))
    assert res.returncode == 0, res.stderr
    assert s3.exists("meta/outputs.pb") and not s3.exists("meta/error.pb")
    # 3. a re-run that fails again replaces the document with its own cause.
    (out / "n").write_text("seven")
    s3.client.delete_object(Bucket=s3.bucket, Key="meta/outputs.pb")
    assert "expected int" in sidecar_fails(s3, out, outputs)[3]
    # 4. download's document is the first cause: kept, and nothing is uploaded.
    download_fails(s3, s3.uri("in/absent.pb"), tmp_path / "in")
    (out / "n").write_text("7")
    res = run_copilot(flyte_sidecar(s3, out, outputs))
    assert res.returncode == 0, res.stderr
    assert read_back(s3)[0] == DOWN
    assert not s3.exists("meta/outputs.pb")
    assert "download failed first" in res.stderr
