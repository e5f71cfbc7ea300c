"""``redis://``: Flyte 2's redis store against a real redis-server on loopback.

Objects are redis string values keyed by the path portion of the URI (what the
flyte-sdk redis plugin and flytestdlib read), so every check reads the server
itself with redis-py, not through copilot.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import lits
import pytest
from conftest import clean_env, run_copilot
from sidecar_helpers import typed_interface

from copilot.config import StorageConfig
from copilot.errors import NON_RECOVERABLE, CopilotError
from copilot.storage import Store
from copilot.storage.retry import RetryPolicy

T = lits.T


def _config(redis_server, tmp_path: Path, *, password: str | None = None) -> Path:
    cfg = tmp_path / f"redis-{uuid.uuid4().hex[:6]}.yaml"
    cfg.write_text(
        "storage:\n  type: redis\n  redis:\n"
        f"    addr: {redis_server.addr}\n"
        f"    password: {password if password is not None else redis_server.password}\n"
    )
    return cfg


def _store(redis_server, retry: RetryPolicy | None = None, **redis: object) -> Store:
    section = {"addr": redis_server.addr, "password": redis_server.password, **redis}
    return Store(StorageConfig(type="redis", redis=section), retry=retry)


def test_small_documents_round_trip_under_the_uri_path(redis_server) -> None:
    prefix = uuid.uuid4().hex
    uri = f"redis://{redis_server.addr}/{prefix}/run/outputs.pb"
    with _store(redis_server) as store:
        store.write_bytes(uri, b"\x00document")
        assert store.read_bytes(uri) == b"\x00document"
        assert store.exists(uri)
        assert redis_server.client().get(f"{prefix}/run/outputs.pb") == b"\x00document"
        store.delete(uri)
        assert not store.exists(uri)
        with pytest.raises(CopilotError, match="not found") as info:
            store.read_bytes(uri)
        assert info.value.kind == NON_RECOVERABLE


def test_both_steps_on_redis_blobs_and_a_dir_included(redis_server, tmp_path: Path) -> None:
    """Inputs, a 9 MiB File (more than two GETRANGE pieces) and a Dir read from redis;
    outputs written back, read with redis-py under the keys flyte-sdk would use."""
    r = redis_server.client()
    p = uuid.uuid4().hex
    base = f"redis://{redis_server.addr}/{p}"
    big = os.urandom(9 << 20)
    r.set(f"{p}/data/big.bin", big)
    for name in ("a.txt", "sub/b.txt"):
        r.set(f"{p}/data/tree/{name}", name.encode())
    inputs = lits.literal_map(
        {
            "n": lits.integer(3),
            "big": lits.blob(f"{base}/data/big.bin"),
            "tree": lits.blob(f"{base}/data/tree", multipart=True),
        }
    )
    r.set(f"{p}/run/inputs.pb", inputs.SerializeToString())
    cfg = _config(redis_server, tmp_path)
    res = run_copilot(
        [
            "--config",
            str(cfg),
            "download",
            "-f",
            f"{base}/run/inputs.pb",
            "-o",
            str(tmp_path / "in"),
        ]
    )
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "in" / "big").read_bytes() == big
    assert (tmp_path / "in" / "tree" / "sub" / "b.txt").read_bytes() == b"sub/b.txt"

    out = tmp_path / "out"
    (out / "result").mkdir(parents=True)
    (out / "result" / "x.txt").write_bytes(b"x")
    (out / "copy").write_bytes(big)
    (out / "total").write_text("7")
    iface = typed_interface(
        {
            "copy": lits.blob_type(),
            "result": lits.blob_type(multipart=True),
            "total": lits.simple(T.INTEGER),
        }
    )
    res = run_copilot(
        [
            "--config", str(cfg), "sidecar", "-o", f"{base}/run/", "-x", f"{base}/raw/",
            "-f", str(out), "-i", lits.b64(iface), "--exit-watcher-type", "noop",
        ]
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    lm = lits.L.LiteralMap()
    lm.ParseFromString(r.get(f"{p}/run/outputs.pb"))
    assert lm.literals["total"].scalar.primitive.integer == 7
    assert lm.literals["copy"].scalar.blob.uri == f"{base}/raw/copy"
    assert r.get(f"{p}/raw/copy") == big
    assert lm.literals["copy"].hash == hashlib.sha256(big).hexdigest()
    assert r.get(f"{p}/raw/result/x.txt") == b"x"
    assert not [k for k in r.scan_iter(match=f"{p}/*copilot-part*")], "a temporary key was left"


def test_a_value_past_redis_cap_is_refused_before_anything_is_sent(
    redis_server, tmp_path: Path
) -> None:
    from copilot.storage import Transfer

    huge = tmp_path / "huge"
    with open(huge, "wb") as fh:
        fh.truncate((512 << 20) + 1)  # sparse: no disk, no memory
    p = uuid.uuid4().hex
    uri = f"redis://{redis_server.addr}/{p}/huge"
    with _store(redis_server) as store, pytest.raises(CopilotError) as info:
        store.upload([Transfer(str(huge), uri, "output 'huge'", (512 << 20) + 1)])
    assert "at most 536870912 bytes" in info.value.message and str(huge) in info.value.message
    assert info.value.kind == NON_RECOVERABLE
    assert not list(redis_server.client().scan_iter(match=f"{p}*"))


def test_a_wrong_password_is_permanent_and_named(redis_server, tmp_path: Path) -> None:
    p = uuid.uuid4().hex
    with (
        _store(redis_server, password="pw-not-this-one") as store,
        pytest.raises(CopilotError) as info,
    ):
        store.read_bytes(f"redis://{redis_server.addr}/{p}/x")
    assert info.value.kind == NON_RECOVERABLE
    assert "credentials" in info.value.message or "denied" in info.value.message
    assert "pw-not-this-one" not in info.value.message


def test_schemes_redis_beside_a_primary_store(redis_server, tmp_path: Path) -> None:
    """`storage.schemes.redis` serves redis:// while the primary store is another."""
    p = uuid.uuid4().hex
    r = redis_server.client()
    r.set(f"{p}/in.pb", lits.literal_map({"n": lits.integer(4)}).SerializeToString())
    cfg = tmp_path / "storage.yaml"
    cfg.write_text(
        "storage:\n  type: stow\n  stow:\n    kind: s3\n    config:\n      region: us-east-1\n"
        "  schemes:\n    redis:\n      redis:\n"
        f"        addr: {redis_server.addr}\n        password: {redis_server.password}\n"
    )
    res = run_copilot(
        ["--config", str(cfg), "download", "-f", f"redis://any-host/{p}/in.pb", "-o",
         str(tmp_path / "in")],
        env=clean_env(),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "in" / "n").read_text() == "4"


def test_an_unreachable_server_is_a_transient_failure(tmp_path: Path) -> None:
    import socket

    from copilot.cancel import CancelToken
    from copilot.errors import RECOVERABLE

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    config = StorageConfig(type="redis", redis={"addr": f"127.0.0.1:{port}"})
    with Store(config) as store, pytest.raises(CopilotError) as info:
        store.scoped(CancelToken(), attempts=2).read_bytes(f"redis://x/{uuid.uuid4().hex}")
    assert info.value.kind == RECOVERABLE
    assert f"127.0.0.1:{port}" in info.value.message or "redis" in info.value.message


def test_a_value_left_half_written_by_a_killed_upload_is_not_part_of_its_dir(
    redis_server, tmp_path: Path, monkeypatch
) -> None:
    """An upload builds its value under a temporary key; one that never got to its
    RENAME (the process killed) leaves that key under the Dir's prefix, and a
    download of the Dir must not take it for a file."""
    import redis.asyncio

    from copilot.storage import Transfer

    p = uuid.uuid4().hex
    base = f"redis://{redis_server.addr}/{p}"
    r = redis_server.client()
    r.set(f"{p}/dir/kept.txt", b"whole")
    left: list[str] = []

    async def killed(self, src, dst):  # type: ignore[no-untyped-def]
        left.append(src.decode() if isinstance(src, bytes) else src)
        raise ConnectionError("killed before the rename")

    async def no_cleanup(self, *names):  # type: ignore[no-untyped-def]
        return 0  # a killed process cleans nothing up

    (tmp_path / "f.bin").write_bytes(b"half")
    quick = RetryPolicy(base=0.01, cap=0.05)  # every try fails the same way: no back-off
    with _store(redis_server, retry=quick) as store:
        monkeypatch.setattr(redis.asyncio.Redis, "rename", killed)
        monkeypatch.setattr(redis.asyncio.Redis, "delete", no_cleanup)
        with pytest.raises(CopilotError):
            store.upload([Transfer(str(tmp_path / "f.bin"), f"{base}/dir/f.bin", "f")])
        monkeypatch.undo()
        assert left and r.get(left[0]) == b"half"  # the half-written value is there
        got = tmp_path / "got"
        store.download([Transfer(f"{base}/dir", str(got), "d", tree=True)])
    assert sorted(p.name for p in got.rglob("*")) == ["kept.txt"]
