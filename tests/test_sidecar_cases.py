"""`copilot sidecar`: whole-outputs documents, every refusal, watchers, signals."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import lits
import msgpack
import pytest
from conftest import S3, clean_env, copilot_exe, record, run_copilot
from sidecar_helpers import (
    FinishedSidecar,
    Sidecar,
    noop_sidecar_args,
    typed_interface,
    wait_catches_sigterm,
)

T = lits.T
INT, STR, FLOAT = lits.simple(T.INTEGER), lits.simple(T.STRING), lits.simple(T.FLOAT)


def _noop_run(s3: S3, outdir: Path, outputs: dict, *extra: str) -> FinishedSidecar:
    return FinishedSidecar(s3, outdir, outputs, *extra)


# -- whole-outputs documents ------------------------------------------------------


def test_outputs_json_document(s3: S3, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "data.bin").write_bytes(b"payload")
    (out / "outputs.json").write_text(
        '{"n": 3, "ratio": 0.5, "name": "x", "tags": ["a", "b"], "when": "2024-01-02T03:04:05Z",'
        ' "took": 1500000000, "cfg": {"k": [1, 2]}, "maybe": null, "f": "data.bin"}'
    )
    outputs = {
        "n": INT,
        "ratio": FLOAT,
        "name": STR,
        "tags": lits.list_of(STR),
        "when": lits.simple(T.DATETIME),
        "took": lits.simple(T.DURATION),
        "cfg": lits.simple(T.STRUCT),
        "maybe": lits.union_of(INT, lits.simple(T.NONE)),
        "f": lits.blob_type(),
    }
    sc = _noop_run(s3, out, outputs)
    assert sc.result.returncode == 0, sc.result.stderr
    lm = sc.outputs().literals
    assert lm["n"].scalar.primitive.integer == 3
    assert lm["ratio"].scalar.primitive.float_value == 0.5
    assert [x.scalar.primitive.string_value for x in lm["tags"].collection.literals] == ["a", "b"]
    assert lm["when"].scalar.primitive.datetime.seconds == 1704164645
    assert lm["took"].scalar.primitive.duration.ToNanoseconds() == 1_500_000_000
    assert msgpack.unpackb(lm["cfg"].scalar.binary.value) == {"k": [1, 2]}
    assert lm["maybe"].scalar.union.value.scalar.WhichOneof("value") == "none_type"
    assert lm["f"].scalar.blob.uri == s3.uri("raw/data.bin")
    assert s3.get("raw/data.bin") == b"payload"


def test_outputs_yaml_document_and_per_file_override(s3: S3, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "outputs.yaml").write_text("n: 1\nname: from-document\n")
    (out / "name").write_text("from-file\n")  # a per-output file wins
    sc = _noop_run(s3, out, {"n": INT, "name": STR}, "--format", "YAML")
    assert sc.result.returncode == 0, sc.result.stderr
    lm = sc.outputs().literals
    assert lm["n"].scalar.primitive.integer == 1
    assert lm["name"].scalar.primitive.string_value == "from-file"


def test_outputs_pb_document(s3: S3, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.bin").write_bytes(b"weights")
    doc = lits.literal_map(
        {"n": lits.integer(9), "model": lits.blob("model.bin"), "xs": lits.collection()}
    )
    (out / "outputs.pb").write_bytes(doc.SerializeToString())
    outputs = {"n": INT, "model": lits.blob_type(), "xs": lits.list_of(INT)}
    sc = _noop_run(s3, out, outputs, "--format", "PROTO", "--meta-output-name", "result.pb")
    assert sc.result.returncode == 0, sc.result.stderr
    lm = lits.L.LiteralMap()
    lm.ParseFromString(s3.get("meta/result.pb"))
    assert lm.literals["n"].scalar.primitive.integer == 9
    assert lm.literals["model"].scalar.blob.uri == s3.uri("raw/model.bin")
    assert s3.get("raw/model.bin") == b"weights"


# -- refusals: error.pb with a precise message, never outputs.pb -----------------


def _expect_error(sc: Sidecar, *fragments: str) -> str:
    assert sc.result.returncode == 0, sc.result.stderr
    assert not sc.has_outputs(), "outputs.pb must not be written on failure"
    err = sc.error()
    assert err.code == "OutputUploadFailed"
    for fragment in fragments:
        assert fragment in err.message, err.message
    assert "Traceback" not in sc.result.stderr
    assert err.message in sc.result.stderr
    return err.message


def test_missing_output(s3: S3, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "present").write_text("1")
    sc = _noop_run(s3, out, {"present": INT, "absent": INT})
    msg = _expect_error(sc, "output 'absent'", str(out / "absent"), "expected int", "nothing")
    assert s3.keys("raw/") == []
    assert msg


def test_abc_for_an_int(s3: S3, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "count").write_text("abc\n")
    sc = _noop_run(s3, out, {"count": INT})
    _expect_error(sc, "output 'count'", str(out / "count"), "expected int", "'abc'")


def test_enum_value_not_declared(s3: S3, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "color").write_text("purple")
    sc = _noop_run(s3, out, {"color": lits.enum_of("red", "green")})
    _expect_error(sc, "output 'color'", "expected one of red, green", "'purple'")


def test_two_files_match_the_name(s3: S3, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.txt").write_text("1")
    (out / "x.csv").write_text("2")
    sc = _noop_run(s3, out, {"x": INT})
    _expect_error(sc, "output 'x'", str(out / "x.csv"), str(out / "x.txt"))


def test_oversize_primitive(s3: S3, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "s").write_text("y" * 5000)
    sc = _noop_run(s3, out, {"s": STR}, "--max-primitive-bytes", "1024")
    _expect_error(sc, "output 's'", "5000 bytes", "at most 1024 bytes")


def test_sparse_ten_gigabyte_primitive_is_refused_without_reading(s3: S3, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with open(out / "n", "wb") as fh:
        fh.truncate(10 * 1024**3)
    sc = _noop_run(s3, out, {"n": INT})
    _expect_error(sc, "output 'n'", str(10 * 1024**3) + " bytes")


def test_user_error_file(s3: S3, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "_ERROR").write_text("reference genome not found\n")
    sc = _noop_run(s3, out, {"n": INT})
    _expect_error(sc, "User Error: reference genome not found")
    err = sc.error()
    assert err.origin == lits.execution_pb2.ExecutionError.USER
    assert err.kind == lits.execution_pb2.ContainerError.RECOVERABLE


def test_user_error_marked_permanent(s3: S3, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "_ERROR").write_text("NON_RECOVERABLE\ninput file is corrupt\n")
    sc = _noop_run(s3, out, {"n": INT})
    assert sc.error().message == "User Error: input file is corrupt"
    assert sc.error().kind == lits.execution_pb2.ContainerError.NON_RECOVERABLE


def test_symlink_to_etc_passwd_is_refused(s3: S3, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    os.symlink("/etc/passwd", out / "secrets")
    sc = _noop_run(s3, out, {"secrets": lits.blob_type()})
    _expect_error(sc, "output 'secrets'", "symlink to /etc/passwd", "outside the output directory")
    assert s3.keys("raw/") == []


def test_symlink_inside_a_dir_output_is_refused(s3: S3, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "tree").mkdir(parents=True)
    (out / "tree" / "ok.txt").write_text("fine")
    os.symlink("../../../../etc/passwd", out / "tree" / "leak")
    sc = _noop_run(s3, out, {"tree": lits.blob_type(multipart=True)})
    _expect_error(sc, "output 'tree'", "leak", "outside the output directory")
    assert s3.keys("raw/") == []


def test_fifo_as_output_is_refused_without_blocking(s3: S3, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "pipe")
    sc = _noop_run(s3, out, {"pipe": STR})
    _expect_error(sc, "output 'pipe'", "is a FIFO")


def test_socket_in_a_dir_output_is_refused(s3: S3, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "d").mkdir(parents=True)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(out / "d" / "s.sock"))
    try:
        sc = _noop_run(s3, out, {"d": lits.blob_type(multipart=True)})
    finally:
        sock.close()
    _expect_error(sc, "output 'd'", "is a socket")


def test_symlink_loop_is_refused(s3: S3, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(out / "b", out / "a")
    os.symlink(out / "a", out / "b")
    sc = _noop_run(s3, out, {"a": STR})
    _expect_error(sc, "output 'a'", "symlink loop")


def test_non_utf8_string_is_refused(s3: S3, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "s").write_bytes(b"ok\xff\xfe")
    sc = _noop_run(s3, out, {"s": STR})
    _expect_error(sc, "output 's'", "not UTF-8 at offset 2")


def test_download_error_document_is_never_overwritten(s3: S3, tmp_path: Path) -> None:
    first = lits.execution_pb2.ErrorDocument(
        error=lits.execution_pb2.ContainerError(code="InputDownloadFailed", message="first cause")
    ).SerializeToString()
    s3.put("meta/error.pb", first)
    out = tmp_path / "out"
    out.mkdir()
    (out / "n").write_text("not a number")
    sc = _noop_run(s3, out, {"n": INT})
    assert sc.result.returncode == 0
    assert s3.get("meta/error.pb") == first
    assert not sc.has_outputs()


def test_no_interface_writes_nothing(s3: S3, tmp_path: Path) -> None:
    res = run_copilot(
        [
            *s3.stow_flags(),
            "sidecar",
            "-o",
            s3.uri("meta/"),
            "-x",
            s3.uri("raw/"),
            "-f",
            str(tmp_path),
        ]
    )
    assert res.returncode == 0, res.stderr
    assert s3.keys() == []


# -- watchers -------------------------------------------------------------------------


def test_file_watcher_waits_for_success_marker(s3: S3, tmp_path: Path) -> None:
    out = tmp_path / "out"
    sc = Sidecar(s3, out, {"n": INT}, watcher="file")
    sc.wait_for_log("waiting for _SUCCESS")
    # Written only now: a sidecar that did not wait would have found no output.
    (out / "n").write_text("5")
    assert sc.proc.poll() is None, "sidecar finished before _SUCCESS appeared"
    assert not sc.has_outputs() and not sc.has_error()
    (out / "_SUCCESS").touch()
    res = sc.wait(timeout=30)
    assert res.returncode == 0, res.stderr
    assert sc.outputs().literals["n"].scalar.primitive.integer == 5


def test_file_watcher_sees_a_marker_already_present(s3: S3, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "n").write_text("6")
    (out / "_SUCCESS").touch()
    sc = Sidecar(s3, out, {"n": INT}, watcher="file")
    res = sc.wait(timeout=30)
    assert res.returncode == 0, res.stderr
    assert sc.outputs().literals["n"].scalar.primitive.integer == 6


def test_file_watcher_error_marker(s3: S3, tmp_path: Path) -> None:
    out = tmp_path / "out"
    sc = Sidecar(s3, out, {"n": INT}, watcher="file")
    wait_catches_sigterm(sc.proc.pid)
    (out / "_ERROR").write_text("it broke")
    res = sc.wait(timeout=30)
    assert res.returncode == 0, res.stderr
    assert sc.error().message == "User Error: it broke"


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="needs root and unshare for a fresh PID namespace",
)
@pytest.mark.slow
def test_shared_process_namespace_watcher(s3: S3, tmp_path: Path) -> None:
    """Sidecar and main in a fresh PID namespace: the sidecar ends after main exits."""
    out = tmp_path / "out"
    out.mkdir()
    iface = lits.b64(typed_interface({"n": INT}))
    main = f"import sys, time\ntime.sleep(3)\nopen({str(out / 'n')!r}, 'w').write('77')\n"
    script = (
        f"{copilot_exe()} {' '.join(s3.stow_flags())} sidecar --exit-watcher-type "
        f"shared-process-ns -o {s3.uri('meta/')} -x {s3.uri('raw/')} -f {out} -i {iface} & "
        f'{sys.executable} -c "{main}"; wait $!; echo sidecar-exit=$?'
    )
    res = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", script],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )
    record(res.stdout, res.stderr)
    assert "sidecar-exit=0" in res.stdout, res.stderr
    assert s3.exists("meta/outputs.pb"), res.stderr
    lm = lits.L.LiteralMap()
    lm.ParseFromString(s3.get("meta/outputs.pb"))
    assert lm.literals["n"].scalar.primitive.integer == 77


# -- signals ---------------------------------------------------------------------------


def test_sigterm_before_main_finished_never_points_at_missing_data(s3: S3, tmp_path: Path) -> None:
    """SIGTERM while the main process is still writing: either an error, or complete data."""
    out = tmp_path / "out"
    outputs = {"first": lits.blob_type(), "second": lits.blob_type()}
    sc = Sidecar(s3, out, outputs)
    wait_catches_sigterm(sc.proc.pid)
    # The main process writes 'first', then 'second' only once told to: SIGTERM
    # comes in between, whatever the machine's speed.
    go = tmp_path / "go"
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys, time\n"
            "d, go = sys.argv[1], sys.argv[2]\n"
            "open(os.path.join(d, 'first.part'), 'wb').write(os.urandom(1 << 20))\n"
            "os.rename(os.path.join(d, 'first.part'), os.path.join(d, 'first'))\n"
            "while not os.path.exists(go):\n"
            "    time.sleep(0.01)\n"
            "open(os.path.join(d, 'second'), 'wb').write(b'late')\n",
            str(out),
            str(go),
        ]
    )
    while not (out / "first").exists():
        time.sleep(0.01)
    res = sc.terminate_and_wait()
    go.touch()
    writer.wait(timeout=30)
    assert res.returncode == 0, res.stderr
    if sc.has_outputs():
        for lit in sc.outputs().literals.values():
            key = lit.scalar.blob.uri.split("/", 3)[3]
            assert s3.exists(key)
    else:
        assert "output 'second'" in sc.error().message
    assert not sc.has_outputs()  # here main was still writing: an error, no outputs.pb


# -- huge output dirs (in-process, on tmpfs when there is one) --------------------------


def _scratch() -> Path:
    import tempfile

    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="copilot-huge-", dir=base))


def _upload(root: Path, outputs: dict):
    from copilot.outputs import UploadOptions, upload_outputs
    from copilot.storage import Store

    return upload_outputs(
        Store(),
        UploadOptions(
            from_local_dir=str(root / "out"),
            to_output_prefix=str(root / "meta"),
            to_raw_output=str(root / "raw"),
            interface=typed_interface(outputs),
        ),
    )


@pytest.mark.slow
def test_ten_thousand_nesting_levels_give_a_clean_short_error() -> None:
    from copilot.errors import CopilotError

    root = _scratch()
    try:
        here = os.getcwd()
        os.makedirs(root / "out" / "tree")
        os.chdir(root / "out" / "tree")
        try:
            for _ in range(10_000):
                os.mkdir("a")
                os.chdir("a")
            Path("leaf").write_text("x")
        finally:
            os.chdir(here)
        with pytest.raises(CopilotError) as info:
            _upload(root, {"tree": lits.blob_type(multipart=True)})
        assert "output 'tree'" in info.value.message
        assert "File name too long" in info.value.message
        assert len(info.value.message) < 400 and "\n" not in info.value.message
        assert not (root / "meta").exists()
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=False)


@pytest.mark.slow
def test_output_dir_with_two_hundred_thousand_entries() -> None:
    root = _scratch()
    try:
        out = root / "out"
        out.mkdir()
        for i in range(200_000):
            (out / f"junk{i}").touch()
        (out / "n").write_text("5")
        (out / "label.txt").write_text("found by the v.* lookup")
        result = _upload(root, {"n": INT, "label": STR})
        assert result.literals.literals["n"].scalar.primitive.integer == 5
        assert result.literals.literals["label"].scalar.primitive.string_value == (
            "found by the v.* lookup"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_upload_eager_sends_files_before_exit_and_resends_changed_ones(
    s3: S3, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    outputs = {"model": lits.blob_type(), "log": lits.blob_type(), "n": INT}
    sc = Sidecar(s3, out, outputs, "--upload-mode", "UPLOAD_EAGER")
    wait_catches_sigterm(sc.proc.pid)
    (out / "model.bin").write_bytes(b"weights v1" * 1000)
    (out / "log").write_bytes(b"first draft")
    deadline = time.monotonic() + 20
    while not (s3.exists("raw/model.bin") and s3.exists("raw/log")):
        assert time.monotonic() < deadline, "nothing was uploaded early"
        time.sleep(0.2)
    assert sc.proc.poll() is None  # the main container is still "running"
    assert s3.get("raw/model.bin") == b"weights v1" * 1000
    (out / "log").write_bytes(b"final log, longer than the draft")  # changed after upload
    (out / "n").write_text("1")
    res = sc.terminate_and_wait()
    assert res.returncode == 0, res.stderr
    lm = sc.outputs().literals
    assert lm["model"].scalar.blob.uri == s3.uri("raw/model.bin")
    assert s3.get("raw/model.bin") == b"weights v1" * 1000
    assert s3.get("raw/log") == b"final log, longer than the draft"
    assert "uploaded" in res.stderr and "early" in res.stderr
    # Hashes of what was sent early, and of the re-sent final content.
    assert lm["model"].hash == hashlib.sha256(b"weights v1" * 1000).hexdigest()
    assert lm["log"].hash == hashlib.sha256(b"final log, longer than the draft").hexdigest()


def test_do_not_upload_records_local_paths(s3: S3, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.csv").write_text("a,b\n")
    (out / "n").write_text("1")
    sc = _noop_run(s3, out, {"report": lits.blob_type(fmt="csv"), "n": INT}, "-u", "DO_NOT_UPLOAD")
    assert sc.result.returncode == 0, sc.result.stderr
    lm = sc.outputs().literals
    assert lm["report"].scalar.blob.uri == str(out / "report.csv")
    assert lm["report"].hash == ""  # nothing was read to upload
    assert lm["n"].scalar.primitive.integer == 1
    assert s3.keys("raw/") == []


def test_err_output_name_and_deprecated_start_timeout(s3: S3, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "n").write_text("not a number")
    res = run_copilot(
        [
            "--err-output-name",
            "failure.pb",
            "-s",
            *noop_sidecar_args(
                s3, out, "--start-timeout", "30s", "-i", lits.b64(typed_interface({"n": INT}))
            ),
        ]
    )
    assert res.returncode == 0, res.stderr
    assert "deprecated" in res.stderr
    assert s3.exists("meta/failure.pb") and not s3.exists("meta/error.pb")
    assert "expected int" in lits.read_error_document(s3.get("meta/failure.pb")).message
