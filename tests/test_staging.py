"""A Dir input is filled under a hidden name and renamed into place once.

What makes a big tree cheap (one rename, whatever its size) and what keeps it
safe (nothing under the real name until every file is there; a failure leaves
neither the tree nor its staging directory).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lits
import pytest
from stores import Remote

from copilot.errors import CopilotError
from copilot.inputs import DownloadOptions, download_inputs
from copilot.storage import Store


def _put_tree(remote: Remote | None, root: Path, name: str, files: int) -> str:
    """``files`` small files in two levels; on a store, or as a local directory."""
    uri = ""
    for i in range(files):
        rel = f"sub{i % 3}/f{i}.txt"
        if remote is None:
            path = root / name / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"file {i}\n")
            uri = str(root / name)
        else:
            remote.put(f"{name}/{rel}", f"file {i}\n".encode())
            uri = remote.uri(name)
    return uri


def _inputs(remote: Remote | None, root: Path, name: str, dir_uri: str) -> str:
    body = lits.literal_map(
        {"d": lits.blob(dir_uri, multipart=True), "n": lits.integer(1)}
    ).SerializeToString()
    if remote is None:
        (root / f"{name}.pb").write_bytes(body)
        return f"file://{root / f'{name}.pb'}"
    return remote.put(f"{name}.pb", body)


def _renames(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for fn in ("rename", "replace"):
        real = getattr(os, fn)

        def counting(src: Any, dst: Any, *a: Any, _real: Any = real, **kw: Any) -> None:
            seen.append((os.fsdecode(src), os.fsdecode(dst)))
            _real(src, dst, *a, **kw)

        monkeypatch.setattr(os, fn, counting)
    return seen


def _renames_for_two_sizes(
    src: Remote | None, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = []
    for files in (4, 40):
        name = f"tree{files}"
        inputs = _inputs(src, tmp_path, name, _put_tree(src, tmp_path, name, files))
        out = tmp_path / f"out{files}"
        seen = _renames(monkeypatch)
        result = download_inputs(store, DownloadOptions(inputs, str(out)))
        monkeypatch.undo()
        assert result.files == files
        got = sorted(p.relative_to(out / "d").as_posix() for p in (out / "d").rglob("*.txt"))
        assert got == sorted(f"sub{i % 3}/f{i}.txt" for i in range(files))
        assert (out / "d" / "sub0" / "f3.txt").read_text() == "file 3\n"
        # The tree's own rename, then inputs.pb and inputs.json (written atomically).
        tree = [(s, d) for s, d in seen if d == str(out / "d")]
        assert len(tree) == 1 and Path(tree[0][0]).name == ".d.copilot-part"
        counts.append(len(seen))
        assert sorted(p.name for p in out.iterdir()) == ["d", "inputs.json", "inputs.pb", "n"]
    assert counts[0] == counts[1], f"renames grew with the tree: {counts}"


def test_a_local_dir_costs_the_same_renames_whatever_its_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _renames_for_two_sizes(None, Store(), tmp_path, monkeypatch)


def test_a_dir_in_a_store_costs_the_same_renames_whatever_its_size(
    remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _renames_for_two_sizes(remote, remote.store(8), tmp_path, monkeypatch)


def test_a_failed_tree_leaves_neither_the_tree_nor_its_staging_dir(s3: Any, tmp_path: Path) -> None:
    """One object of a tree is refused while the others arrive: the download fails
    naming it, and neither the tree nor its staging directory is left."""
    from faultproxy import FaultProxy

    inputs = _inputs(s3, tmp_path, "t", _put_tree(s3, tmp_path, "t", 12))
    out = tmp_path / "out"
    with FaultProxy(s3.upstream, mode="403", rate=1.0, only_path="f5.txt") as proxy:
        store = s3.store(4, endpoint=proxy.url)
        with pytest.raises(CopilotError, match=r"f5\.txt"):
            download_inputs(
                store.scoped(store.cancel, attempts=1), DownloadOptions(inputs, str(out))
            )
    assert proxy.faults == {"403": 1}
    assert sorted(p.name for p in out.iterdir()) == ["n"], "a partial tree is visible"


def test_a_rerun_replaces_the_tree_instead_of_mixing_old_and_new(tmp_path: Path) -> None:
    inputs = _inputs(None, tmp_path, "t", _put_tree(None, tmp_path, "t", 3))
    out = tmp_path / "out"
    (out / "d" / "stale").mkdir(parents=True)
    (out / "d" / "stale" / "old.txt").write_text("from an earlier run")
    download_inputs(Store(), DownloadOptions(inputs, str(out)))
    got = sorted(p.relative_to(out / "d").as_posix() for p in (out / "d").rglob("*"))
    assert got == ["sub0", "sub0/f0.txt", "sub1", "sub1/f1.txt", "sub2", "sub2/f2.txt"]
    assert sorted(p.name for p in out.iterdir()) == ["d", "inputs.json", "inputs.pb", "n"]
