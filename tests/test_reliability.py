"""Faults, signals, hostile users: nothing lost, nothing corrupt, every failure clear.

A fault-injecting proxy stands between copilot and the store (moto's S3,
fake-gcs-server, Azurite: each storage test runs on all three); data is put
in place and checked directly on the server, so only copilot's traffic sees
the faults.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import lits
import pytest
from conftest import S3, clean_env, copilot_exe, record
from faultproxy import FaultProxy
from sidecar_helpers import noop_sidecar_args, typed_interface, wait_catches_sigterm
from stores import Remote

T = lits.T


def download_args(flags: list[str], store: Remote, uri: str, local: Path, *extra: str) -> list[str]:
    """`copilot download` with root ``flags``; the error document goes to run/."""
    return [
        *flags,
        "download",
        "-f",
        uri,
        "--to-output-prefix",
        store.uri("run/"),
        "-o",
        str(local),
        *extra,
    ]


def run(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    res = subprocess.run(
        [copilot_exe(), *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    record(res.stdout, res.stderr)
    return res


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def payload(tmp_path_factory) -> Path:
    """A 200-file Dir (nested) and a 64 MiB File, on local disk."""
    root = tmp_path_factory.mktemp("payload")
    rng = random.Random(7)
    for i in range(200):
        d = root / "tree" / f"d{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.bin").write_bytes(rng.randbytes(rng.randint(0, 20_000)))
    with open(root / "big.bin", "wb") as fh:
        for _ in range(64):
            fh.write(rng.randbytes(1 << 20))
    return root


@pytest.mark.slow
def test_download_and_sidecar_survive_thirty_percent_transient_faults(
    remote: Remote, payload: Path, tmp_path: Path
) -> None:
    s3 = remote
    tree = payload / "tree"
    for path in tree.rglob("*.bin"):
        s3.put(f"src/tree/{path.relative_to(tree)}", path.read_bytes())
    s3.put_file("src/big.bin", str(payload / "big.bin"))
    inputs = lits.literal_map(
        {
            "tree": lits.blob(s3.uri("src/tree"), multipart=True),
            "big": lits.blob(s3.uri("src/big.bin")),
        }
    )
    uri = s3.put("run/inputs.pb", inputs.SerializeToString())
    with FaultProxy(s3.upstream, mode="mixed", rate=0.3, seed=11) as proxy:
        flags = s3.stow_flags(proxy.url)
        res = run(download_args(flags, s3, uri, tmp_path / "in", "--retries", "8"))
        down_faults = dict(proxy.faults)
        assert res.returncode == 0 and not s3.exists("run/error.pb"), res.stderr[-2000:]
        out = tmp_path / "out"
        out.mkdir()
        shutil.copytree(tmp_path / "in" / "tree", out / "tree")
        shutil.copyfile(tmp_path / "in" / "big", out / "big")
        iface = lits.b64(
            typed_interface({"tree": lits.blob_type(multipart=True), "big": lits.blob_type()})
        )
        res2 = run(noop_sidecar_args(s3, out, "-i", iface, "--retries", "8", flags=flags))
        up_faults = dict(proxy.faults)
    assert res.returncode == 0 and not s3.exists("run/error.pb"), res.stderr[-2000:]
    assert sum(down_faults.values()) >= 20, down_faults  # the faults really happened
    for path in tree.rglob("*.bin"):
        rel = path.relative_to(tree)
        assert (tmp_path / "in" / "tree" / rel).read_bytes() == path.read_bytes(), rel
    assert _sha((tmp_path / "in" / "big").read_bytes()) == _sha((payload / "big.bin").read_bytes())
    assert res2.returncode == 0 and not s3.exists("meta/error.pb"), res2.stderr[-2000:]
    assert sum(up_faults.values()) > sum(down_faults.values())
    for path in tree.rglob("*.bin"):
        assert s3.get(f"raw/tree/{path.relative_to(tree)}") == path.read_bytes()
    assert _sha(s3.get("raw/big")) == _sha((payload / "big.bin").read_bytes())
    assert s3.exists("meta/outputs.pb")


@pytest.mark.slow
def test_access_denied_everywhere_fails_without_retrying(remote: Remote, tmp_path: Path) -> None:
    """A permanent failure is never retried: one request per operation, then the error."""
    s3 = remote
    uri = s3.put("run/inputs.pb", lits.literal_map({"a": lits.integer(1)}).SerializeToString())
    with FaultProxy(s3.upstream, mode="403", rate=1.0) as proxy:
        flags = s3.stow_flags(proxy.url)
        res = run(["--logger.level=4", *download_args(flags, s3, uri, tmp_path / "in")])
        download_requests = proxy.requests
        out = tmp_path / "out"
        out.mkdir()
        (out / "n").write_text("1")
        iface = lits.b64(typed_interface({"n": lits.simple(T.INTEGER)}))
        res2 = run(
            [
                "--logger.level=4",
                *noop_sidecar_args(s3, out, "-i", iface, flags=flags),
            ]
        )
    assert res.returncode == 1, res.stderr
    assert f"{uri}: access denied" in res.stderr
    assert "Traceback" not in res.stderr
    # The inputs read, then the error document write: each refused once, neither retried.
    assert download_requests == 2, download_requests
    assert "retry" not in res.stderr and "retry" not in res2.stderr
    assert res2.returncode == 1, res2.stderr
    assert "access denied" in res2.stderr and s3.uri("meta/") in res2.stderr


@pytest.mark.slow
def test_sigterm_during_download_writes_error_pb_quickly(remote: Remote, tmp_path: Path) -> None:
    """A transfer stalled on the store itself ends at SIGTERM, on every backend."""
    s3 = remote
    s3.put("data/stalled.bin", b"x" * 1000)
    uri = s3.put(
        "run/inputs.pb",
        lits.literal_map({"slow": lits.blob(s3.uri("data/stalled.bin"))}).SerializeToString(),
    )
    with FaultProxy(
        s3.upstream, mode="stall", rate=1.0, stall_seconds=60, only_path="stalled.bin"
    ) as proxy:
        flags = s3.stow_flags(proxy.url)
        proc = subprocess.Popen(
            [copilot_exe(), *download_args(flags, s3, uri, tmp_path / "in")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        wait_catches_sigterm(proc.pid)
        assert proxy.faulted.wait(30), "the transfer never reached the stalled object"
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)  # a second one changes nothing
        # The stall holds the transfer for 60 s: returning well before that
        # (communicate's bound) shows the transfer was stopped, not waited out.
        out, err = proc.communicate(timeout=30)
        record(out, err)
    assert proc.returncode == 0, err
    doc = lits.read_error_document(s3.get("run/error.pb"))
    assert "interrupted by SIGTERM" in doc.message
    assert not (tmp_path / "in" / "slow").exists()


@pytest.mark.slow
def test_sigkill_at_every_request_never_leaves_a_dangling_outputs_pb(
    remote: Remote, tmp_path: Path
) -> None:
    """The sidecar is killed at each of its requests in turn: the proxy holds the
    k-th request (a stall) and the kill comes once it has arrived, so every point
    of a run is covered, the same way on any machine.  outputs.pb is never written
    by a killed run (it is the last thing sent), and a run left alone writes one
    whose every blob is there in full."""
    s3 = remote
    rng = random.Random(2024)
    out = tmp_path / "out"
    (out / "tree").mkdir(parents=True)
    for i in range(15):
        (out / "tree" / f"f{i}").write_bytes(rng.randbytes(30_000))
    (out / "big").write_bytes(rng.randbytes(6 << 20))
    (out / "n").write_text("3")
    outputs = {
        "tree": lits.blob_type(multipart=True),
        "big": lits.blob_type(),
        "n": lits.simple(T.INTEGER),
    }
    iface = lits.b64(typed_interface(outputs))
    sizes = {
        str(p.relative_to(out)): p.stat().st_size
        for p in out.rglob("*")
        if p.is_file() and p.name != "n"  # n is a primitive: in outputs.pb itself
    }

    def start(prefix: str, proxy: FaultProxy) -> subprocess.Popen:
        args = [
            copilot_exe(),
            *noop_sidecar_args(
                s3,
                out,
                "-i",
                iface,
                flags=s3.stow_flags(proxy.url),
                prefix=prefix,
                raw=prefix + "raw",
            ),
        ]
        return subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=clean_env()
        )

    def check_complete(prefix: str) -> None:
        lm = lits.L.LiteralMap()
        lm.ParseFromString(s3.get(prefix + "outputs.pb"))
        assert set(lm.literals) == set(outputs)
        for rel, size in sizes.items():
            assert len(s3.get(f"{prefix}raw/{rel}")) == size, rel

    with FaultProxy(s3.upstream) as proxy:
        assert start("full/", proxy).wait(timeout=120) == 0
        total = len(proxy.seen)
    check_complete("full/")
    assert total >= len(sizes) + 1, proxy.seen  # every blob, then the document
    for k in range(1, total + 1):
        prefix = f"k{k}/"
        with FaultProxy(
            s3.upstream, mode="stall", rate=1.0, after=k - 1, stall_seconds=120
        ) as proxy:
            proc = start(prefix, proxy)
            assert proxy.faulted.wait(60), f"run {k} never sent request {k}"
            proc.kill()
            proc.wait()
        assert not s3.exists(prefix + "outputs.pb"), f"killed at request {k}"


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root (to drop to another user) and setpriv",
)
@pytest.mark.slow
def test_both_commands_as_an_unprivileged_user_with_a_read_only_install(
    s3: S3, installed_image: Path
) -> None:
    """uid 65534, a read-only copy of the install, only the data dirs writable."""
    work = Path(tempfile.mkdtemp(prefix="copilot-nobody-"))
    try:
        os.chmod(work, 0o755)
        for name in ("in", "out"):
            (work / name).mkdir()
            os.chown(work / name, 65534, 65534)
        (work / "out" / "n").write_text("9")
        os.chown(work / "out" / "n", 65534, 65534)
        s3.put("d/x.txt", b"payload")
        uri = s3.put(
            "run/inputs.pb",
            lits.literal_map(
                {"x": lits.blob(s3.uri("d/x.txt")), "k": lits.integer(4)}
            ).SerializeToString(),
        )
        exe = str(installed_image / "bin" / "flyte-copilot")
        drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        env = clean_env(HOME="/nonexistent", TMPDIR=str(work / "out"))

        def as_nobody(args: list[str]) -> subprocess.CompletedProcess:
            res = subprocess.run(
                [*drop, exe, *args],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
                cwd=str(work),
            )
            record(res.stdout, res.stderr)
            return res

        def sidecar(outputs: dict, prefix: str) -> subprocess.CompletedProcess:
            iface = lits.b64(typed_interface(outputs))
            return as_nobody(noop_sidecar_args(s3, work / "out", "-i", iface, prefix=prefix))

        res = as_nobody(download_args(s3.stow_flags(), s3, uri, work / "in"))
        assert res.returncode == 0 and not s3.exists("run/error.pb"), res.stderr
        assert (work / "in" / "x").read_bytes() == b"payload"
        assert (work / "in" / "x").stat().st_uid == 65534
        res = sidecar({"n": lits.simple(T.INTEGER)}, "meta/")
        assert res.returncode == 0, res.stderr
        lm = lits.L.LiteralMap()
        lm.ParseFromString(s3.get("meta/outputs.pb"))
        assert lm.literals["n"].scalar.primitive.integer == 9
        # A File output copilot may not read (EACCES): the container's failure, named.
        (work / "out" / "f").write_bytes(b"secret")
        os.chmod(work / "out" / "f", 0)
        res = sidecar({"f": lits.blob_type()}, "meta2/")
        assert res.returncode == 0, res.stderr
        doc = lits.read_error_document(s3.get("meta2/error.pb"))
        assert doc.message == f"output 'f': cannot read {work / 'out' / 'f'}: Permission denied"
        assert doc.origin == lits.execution_pb2.ExecutionError.USER
        assert "internal error" not in res.stderr
    finally:
        shutil.rmtree(work, ignore_errors=True)
