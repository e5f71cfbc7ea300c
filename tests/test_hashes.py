"""Content hashes on uploaded outputs (copilot.literals.digests): a File's is its SHA-256, a
Dir's follows the README's definition, and identical bytes give identical hashes
whatever the raw prefix or upload order."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import lits
import pytest
from conftest import run_copilot
from flyteidl2.core import literals_pb2
from sidecar_helpers import typed_interface
from stores import Remote

from copilot.storage import Store
from copilot.storage.sizes import TransferLimits

T = lits.T
SLOW = pytest.mark.slow  # a few MiB through every store
INTERFACE = {
    "f": lits.blob_type(),
    "big": lits.blob_type(),
    "d": lits.blob_type(multipart=True),
    "fs": lits.list_of(lits.blob_type()),
    "empty": lits.blob_type(multipart=True),
}


def reference_dir_digest(root: Path) -> str:
    """The README's definition, written out independently: SHA-256 over one line per
    file, sorted by relative path as UTF-8 bytes: path NUL size NUL sha256 LF."""
    lines = []
    for path in root.rglob("*"):
        if path.is_file():
            rel = path.relative_to(root).as_posix()
            data = path.read_bytes()
            lines.append(
                (rel.encode(), f"{rel}\0{len(data)}\0{hashlib.sha256(data).hexdigest()}\n")
            )
    return hashlib.sha256("".join(line for _, line in sorted(lines)).encode()).hexdigest()


def _outputs(root: Path, big: bytes, order: int = 1) -> Path:
    out = root
    (out / "d" / "sub").mkdir(parents=True)
    (out / "fs").mkdir()
    (out / "empty").mkdir()
    names = ["a.txt", "b.bin", "sub/c.txt", "sub/é.txt"][::order]
    for name in names:  # creation order differs between runs
        (out / "d" / name).write_bytes(name.encode() * 100)
    (out / "f").write_bytes(b"hello\n")
    (out / "big").write_bytes(big)
    for i in range(3):
        (out / "fs" / str(i)).write_bytes(f"element {i}".encode())
    return out


def _sidecar(remote: Remote, out: Path, prefix: str, *extra: str) -> literals_pb2.LiteralMap:
    iface = lits.b64(typed_interface(INTERFACE))
    res = run_copilot(
        [*remote.stow_flags(), "sidecar", "--exit-watcher-type", "noop", "-i", iface,
         "-o", remote.uri(f"{prefix}/"), "-x", remote.uri(f"{prefix}/raw"), "-f", str(out), *extra]
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert not remote.exists(f"{prefix}/error.pb"), res.stderr
    return literals_pb2.LiteralMap.FromString(remote.get(f"{prefix}/outputs.pb"))


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parts of 5 MiB (S3's smallest), so an 11 MiB file goes up as three parts read
    in order."""

    monkeypatch.setattr(Store, "default_limits", TransferLimits(part_size=5 << 20))


def test_every_uploaded_file_and_dir_carries_its_content_hash(
    remote: Remote, tmp_path: Path, small_parts: None
) -> None:
    big = os.urandom(11 * (1 << 20) + 123)
    out = _outputs(tmp_path / "out", big)
    lits_ = _sidecar(remote, out, "h1")
    got = {name: lit.hash for name, lit in lits_.literals.items()}
    assert got["f"] == hashlib.sha256(b"hello\n").hexdigest()
    assert got["big"] == hashlib.sha256(big).hexdigest()
    assert got["d"] == reference_dir_digest(out / "d")
    assert got["empty"] == hashlib.sha256(b"").hexdigest()
    # A list: each element's literal carries the hash, not the list.
    assert got["fs"] == ""
    elements = lits_.literals["fs"].collection.literals
    assert [e.hash for e in elements] == [
        hashlib.sha256(f"element {i}".encode()).hexdigest() for i in range(3)
    ]
    # The uploaded bytes are the hashed bytes.
    uri = lits_.literals["big"].scalar.blob.uri
    assert hashlib.sha256(remote.get(uri.split("/", 3)[3])).hexdigest() == got["big"]


@pytest.mark.slow  # three sidecar runs with a few MiB each
def test_identical_bytes_give_identical_hashes_and_one_byte_changes_them(
    s3, tmp_path: Path
) -> None:
    big = os.urandom(3 << 20)
    first = _sidecar(s3, _outputs(tmp_path / "a", big), "run1")
    second = _sidecar(s3, _outputs(tmp_path / "b", big, order=-1), "run2", "--concurrency", "1")
    for name in ("f", "big", "d", "empty"):
        assert first.literals[name].hash == second.literals[name].hash, name
        assert first.literals[name].scalar.blob.uri != second.literals[name].scalar.blob.uri
    changed = _outputs(tmp_path / "c", big)
    (changed / "d" / "sub" / "c.txt").write_bytes(
        b"X" + (changed / "d" / "sub" / "c.txt").read_bytes()[1:]
    )
    (changed / "f").write_bytes(b"hellO\n")
    third = _sidecar(s3, changed, "run3")
    assert third.literals["f"].hash != first.literals["f"].hash
    assert third.literals["d"].hash != first.literals["d"].hash
    assert third.literals["big"].hash == first.literals["big"].hash


def test_hash_outputs_none_records_nothing(s3, tmp_path: Path) -> None:
    got = _sidecar(s3, _outputs(tmp_path / "o", b"x"), "nohash", "--hash-outputs", "none")
    assert all(not lit.hash for lit in got.literals.values())


def test_a_local_store_hashes_too(tmp_path: Path) -> None:
    out = _outputs(tmp_path / "out", b"local bytes")
    prefix = tmp_path / "store"
    res = run_copilot(
        ["sidecar", "--exit-watcher-type", "noop", "-i", lits.b64(typed_interface(INTERFACE)),
         "-o", f"file://{prefix}/", "-x", f"file://{prefix}/raw", "-f", str(out)]
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    got = literals_pb2.LiteralMap.FromString((prefix / "outputs.pb").read_bytes())
    assert got.literals["big"].hash == hashlib.sha256(b"local bytes").hexdigest()
    assert got.literals["d"].hash == reference_dir_digest(out / "d")


def test_uris_the_container_gave_get_no_invented_hash(s3, tmp_path: Path) -> None:
    """An outputs document pointing at data already in the store: copilot read none
    of it, so it records no hash."""
    out = tmp_path / "out"
    out.mkdir()
    s3.put("elsewhere/f", b"someone else's bytes")
    doc = lits.literal_map({"f": lits.blob(s3.uri("elsewhere/f"))})
    (out / "outputs.pb").write_bytes(doc.SerializeToString())
    res = run_copilot(
        [*s3.stow_flags(), "sidecar", "--exit-watcher-type", "noop", "--format", "PROTO",
         "-i", lits.b64(typed_interface({"f": lits.blob_type()})),
         "-o", s3.uri("given/"), "-x", s3.uri("given/raw"), "-f", str(out)]
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    got = literals_pb2.LiteralMap.FromString(s3.get("given/outputs.pb"))
    assert got.literals["f"].scalar.blob.uri == s3.uri("elsewhere/f")
    assert got.literals["f"].hash == ""


def test_inspect_shows_each_blobs_hash(tmp_path: Path) -> None:
    lit = lits.blob("s3://b/k")
    lit.hash = "ab" * 32
    doc = tmp_path / "outputs.pb"
    doc.write_bytes(lits.literal_map({"f": lit, "n": lits.integer(1)}).SerializeToString())
    res = run_copilot(["inspect", str(doc)])
    assert json.loads(res.stdout) == {"f": {"uri": "s3://b/k", "hash": "ab" * 32}, "n": 1}


# -- download checks what the literal says -----------------------------------------------------


@pytest.fixture
def small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """1 MiB ranges, so a 3 MiB object downloads as concurrent ranges hashed in order."""

    monkeypatch.setattr(Store, "default_limits", TransferLimits(range_size=1 << 20))


def _download(remote: Remote, tmp_path: Path, lit, *extra: str):
    inputs = remote.put("in/inputs.pb", lits.literal_map({"reads": lit}).SerializeToString())
    return run_copilot(
        [*remote.stow_flags(), "download", "-f", inputs, "-o", str(tmp_path / "in"),
         "--to-output-prefix", remote.uri("in/"), *extra]
    )  # fmt: skip


@pytest.mark.parametrize(
    "size",
    [pytest.param(100, id="one-body"), pytest.param((3 << 20) + 7, id="ranged", marks=SLOW)],
)
def test_a_file_matching_its_hash_downloads(
    remote: Remote, tmp_path: Path, small_ranges: None, size: int
) -> None:
    data = os.urandom(size)
    lit = lits.blob(remote.put("in/reads.fq", data))
    lit.hash = hashlib.sha256(data).hexdigest()
    res = _download(remote, tmp_path, lit)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "in" / "reads").read_bytes() == data
    # inputs.pb keeps the hash.
    kept = literals_pb2.LiteralMap.FromString((tmp_path / "in" / "inputs.pb").read_bytes())
    assert kept.literals["reads"].hash == lit.hash


@pytest.mark.parametrize(
    "size",
    [pytest.param(100, id="one-body"), pytest.param((3 << 20) + 7, id="ranged", marks=SLOW)],
)
def test_a_tampered_input_fails_for_good_naming_both_digests(
    remote: Remote, tmp_path: Path, small_ranges: None, size: int
) -> None:
    data = os.urandom(size)
    lit = lits.blob(remote.uri("in/reads.fq"))
    lit.hash = hashlib.sha256(data).hexdigest()
    tampered = data[:-1] + bytes([data[-1] ^ 1])  # changed after the literal was written
    remote.put("in/reads.fq", tampered)
    res = _download(remote, tmp_path, lit)
    assert res.returncode == 0  # recorded in error.pb, as upstream
    err = lits.read_error_document(remote.get("in/error.pb"))
    assert err.code == "InputDownloadFailed"
    assert err.kind == lits.execution_pb2.ContainerError.NON_RECOVERABLE
    assert "input 'reads'" in err.message
    assert f"expected SHA-256 {lit.hash}, got {hashlib.sha256(tampered).hexdigest()}" in (
        err.message
    )
    assert not (tmp_path / "in" / "reads").exists()
    assert not list((tmp_path / "in").glob("*.copilot-part"))


def test_a_hash_that_is_not_sha256_is_passed_through_and_verification_can_be_off(
    s3, tmp_path: Path
) -> None:
    lit = lits.blob(s3.put("in/reads.fq", b"ACGT"))
    lit.hash = "my-own-hash:1234"
    res = _download(s3, tmp_path, lit)
    assert res.returncode == 0, res.stderr
    kept = literals_pb2.LiteralMap.FromString((tmp_path / "in" / "inputs.pb").read_bytes())
    assert kept.literals["reads"].hash == "my-own-hash:1234"
    lit.hash = "0" * 64  # wrong, but not checked when asked not to
    res = _download(s3, tmp_path / "off", lit, "--no-verify-inputs")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "off" / "in" / "reads").read_bytes() == b"ACGT"


def test_a_local_store_checks_input_hashes_too(tmp_path: Path) -> None:
    src = tmp_path / "reads.fq"
    src.write_bytes(b"ACGT")
    lit = lits.blob(f"file://{src}")
    lit.hash = hashlib.sha256(b"ACGA").hexdigest()
    inputs = tmp_path / "inputs.pb"
    inputs.write_bytes(lits.literal_map({"reads": lit}).SerializeToString())
    res = run_copilot(["download", "-f", str(inputs), "-o", str(tmp_path / "in")])
    assert res.returncode == 1  # no --to-output-prefix: nothing to record it in
    assert "the content does not match the hash in its literal" in res.stderr
    lit.hash = hashlib.sha256(b"ACGT").hexdigest()
    inputs.write_bytes(lits.literal_map({"reads": lit}).SerializeToString())
    res = run_copilot(["download", "-f", str(inputs), "-o", str(tmp_path / "in2")])
    assert res.returncode == 0, res.stderr


DIR_FILES = {"a.txt": b"alpha", "b/c.bin": b"\x00\x01" * 50, "b/é.txt": b"accent", "z": b""}


def _dir_literal(remote: Remote, prefix: str, files: dict[str, bytes]) -> literals_pb2.Literal:
    """A Dir literal as the sidecar writes it: its objects, and its Dir digest."""
    lines = []
    for rel, data in files.items():
        remote.put(f"{prefix}/{rel}", data)
        lines.append((rel.encode(), f"{rel}\0{len(data)}\0{hashlib.sha256(data).hexdigest()}\n"))
    lit = lits.blob(remote.uri(prefix), multipart=True)
    lit.hash = hashlib.sha256("".join(line for _, line in sorted(lines)).encode()).hexdigest()
    return lit


def test_a_dir_matching_its_digest_downloads(remote: Remote, tmp_path: Path) -> None:
    lit = _dir_literal(remote, "in/dir", DIR_FILES)
    res = _download(remote, tmp_path, lit)
    assert res.returncode == 0, res.stderr
    got = tmp_path / "in" / "reads"
    assert reference_dir_digest(got) == lit.hash
    assert {p.relative_to(got).as_posix() for p in got.rglob("*") if p.is_file()} == set(DIR_FILES)


@pytest.mark.parametrize("change", ["changed", "added", "removed"])
def test_a_dir_whose_objects_changed_is_refused_naming_both_digests(
    remote: Remote, tmp_path: Path, change: str
) -> None:
    lit = _dir_literal(remote, "in/dir", DIR_FILES)
    if change == "changed":
        remote.put("in/dir/b/c.bin", b"\x00\x02" * 50)
    elif change == "added":
        remote.put("in/dir/b/stale.txt", b"left by an earlier attempt")
    else:
        remote.store().delete(remote.uri("in/dir/a.txt"))
    res = _download(remote, tmp_path, lit)
    assert res.returncode == 0  # recorded in error.pb
    err = lits.read_error_document(remote.get("in/error.pb"))
    assert err.kind == lits.execution_pb2.ContainerError.NON_RECOVERABLE
    assert "input 'reads'" in err.message
    assert f"expected Dir SHA-256 {lit.hash}, got " in err.message
    assert "changed, added or removed" in err.message
    assert not (tmp_path / "in" / "reads").exists()  # never published
    assert not list((tmp_path / "in").glob(".*copilot-part*"))


def test_a_local_dir_is_checked_too(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for rel, data in DIR_FILES.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    lit = lits.blob(f"file://{src}", multipart=True)
    lit.hash = reference_dir_digest(src)
    inputs = tmp_path / "inputs.pb"
    inputs.write_bytes(lits.literal_map({"d": lit}).SerializeToString())
    res = run_copilot(["download", "-f", str(inputs), "-o", str(tmp_path / "in")])
    assert res.returncode == 0, res.stderr
    (src / "extra").write_bytes(b"x")
    res = run_copilot(["download", "-f", str(inputs), "-o", str(tmp_path / "in2")])
    assert res.returncode == 1 and "expected Dir SHA-256" in res.stderr, res.stderr
    assert not (tmp_path / "in2" / "d").exists()
