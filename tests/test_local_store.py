"""The file:// store answers as fsspec's LocalFileSystem does, without loading fsspec.

fsspec's class is the reference here: every listing and read is compared with
what it gives for the same tree, so the store behaves the same as before the
swap (except for an unreadable directory, which fsspec leaves out silently).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from fsspec.implementations.local import LocalFileSystem as FsspecLocal

from copilot.errors import StorageError
from copilot.storage import Store
from copilot.storage import local as local_module
from copilot.storage.local import LocalFileSystem


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "a" / "b").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "top.txt").write_bytes(b"0123456789")
    (root / "a" / "mid.bin").write_bytes(b"x" * 1000)
    (root / "a" / "b" / "deep").write_bytes(b"")
    (root / "link").symlink_to(root / "top.txt")
    (root / "dangling").symlink_to(root / "nowhere")
    (root / "dirlink").symlink_to(root / "a")
    return root


def _shape(found: Any) -> dict[str, tuple[str, int]]:
    return {name: (info["type"], info["size"]) for name, info in found.items()}


@pytest.mark.parametrize("withdirs", [True, False])
def test_find_lists_a_tree_as_fsspec_does(tree: Path, withdirs: bool) -> None:
    mine = LocalFileSystem().find(str(tree), withdirs=withdirs, detail=True)
    theirs = FsspecLocal().find(str(tree), withdirs=withdirs, detail=True)
    assert isinstance(mine, dict)
    assert list(mine) == list(theirs)  # same names, same (sorted) order
    shape = _shape(theirs)
    if withdirs:  # fsspec gives a directory its inode's size; copilot never reads it
        shape = {n: (t, 0 if t == "directory" else s) for n, (t, s) in shape.items()}
    assert _shape(mine) == shape
    assert _shape(mine)[str(tree / "link")] == ("other", 10)  # the target's size
    assert str(tree / "a" / "b" / "deep") in mine  # nested, empty file kept


def test_find_names_only_and_trailing_slash(tree: Path) -> None:
    fs = LocalFileSystem()
    assert fs.find(str(tree) + "/") == FsspecLocal().find(str(tree))


def test_find_on_a_file_gives_the_file_and_on_nothing_gives_nothing(tree: Path) -> None:
    fs = LocalFileSystem()
    top = str(tree / "top.txt")
    assert _shape(fs.find(top, withdirs=True, detail=True)) == {top: ("file", 10)}
    assert list(FsspecLocal().find(top, withdirs=True, detail=True)) == [top]
    assert fs.find(str(tree / "missing"), withdirs=True, detail=True) == {}
    assert fs.find(str(tree / "missing")) == []


def test_an_unreadable_directory_is_an_error_not_a_gap(tree: Path, monkeypatch) -> None:
    real = os.scandir
    blocked = str(tree / "a" / "b")

    def scandir(path: str):  # root reads every directory: the refusal is simulated
        if path == blocked:
            raise PermissionError(13, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(local_module.os, "scandir", scandir)
    with pytest.raises(PermissionError):
        LocalFileSystem().find(str(tree), withdirs=True, detail=True)
    with pytest.raises(StorageError, match=r"^list file://.*/tree: access denied$"):
        Store().list_tree(f"file://{tree}")


@pytest.mark.parametrize(
    "start,end", [(None, None), (0, 4), (0, 11), (0, 100), (3, None), (3, 7), (12, 20)]
)
def test_cat_file_reads_the_same_bytes_as_fsspec(tree: Path, start, end) -> None:
    path = str(tree / "top.txt")
    mine = LocalFileSystem().cat_file(path, start=start, end=end)
    assert mine == FsspecLocal().cat_file(path, start=start, end=end)


def test_cat_file_of_a_directory_or_nothing_fails_as_the_os_does(tree: Path) -> None:
    fs = LocalFileSystem()
    with pytest.raises(IsADirectoryError):
        fs.cat_file(str(tree / "a"))
    with pytest.raises(FileNotFoundError):
        fs.cat_file(str(tree / "missing"))


def test_the_store_reads_lists_checks_and_deletes_local_files(tree: Path) -> None:
    store = Store()
    uri = f"file://{tree}"
    assert store.read_bytes(f"{uri}/top.txt") == b"0123456789"
    assert store.exists(f"{uri}/a") and store.is_file(f"{uri}/top.txt")
    assert not store.is_file(f"{uri}/a") and not store.exists(f"{uri}/missing")
    entries = {e.relpath: (e.size, e.is_dir) for e in store.list_tree(uri)}
    assert entries["a/mid.bin"] == (1000, False)
    assert entries["a/b/deep"] == (0, False)
    assert entries["empty"] == (0, True)
    assert entries["dirlink"][1] is False  # a link is not walked into
    store.delete(f"{uri}/top.txt")
    store.delete(f"{uri}/top.txt")  # already gone: not an error
    assert not (tree / "top.txt").exists()
    with pytest.raises(StorageError, match="not found"):
        store.read_bytes(f"{uri}/top.txt")
