"""The ``file://`` store: local disk through the few calls :class:`Store` makes.

fsspec's ``LocalFileSystem`` would do, but importing fsspec (and asyncio with
it) costs a third of a local run's start-up (docs/BENCHMARKS.md, "Tuning
measurements"), for what is a handful
of ``os`` calls.  This class answers the same method names with the same
results, so the store's code is one path for every backend.  Copies between
local paths never come here: :meth:`Store._run_local` does them in the kernel.

One difference on purpose: a directory that cannot be read while listing is an
error, where fsspec's walk leaves it out (a Dir input would lose files).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from typing import Any

from copilot.storage.client import RemoteEntry


class LocalFileSystem:
    """The subset of fsspec's ``AbstractFileSystem`` that :class:`Store` calls."""

    protocol = "file"
    #: Calls are made directly, not on an event loop.
    async_impl = False

    def cat_file(self, path: str, start: int | None = None, end: int | None = None) -> bytes:
        """Bytes ``start`` (default 0) up to ``end`` (default the end) of a file."""
        fd = os.open(path, os.O_RDONLY)
        try:  # a directory opens, and its first read fails (EISDIR)
            os.lseek(fd, start or 0, os.SEEK_SET)
            want = None if end is None else max(0, end - (start or 0))
            chunks: list[bytes] = []
            got = 0
            while want is None or got < want:
                # At most 1 MiB per read: a large ``end`` is a bound, not a buffer size.
                chunk = os.read(fd, 1 << 20 if want is None else min(want - got, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def size(self, path: str) -> int:
        return os.stat(path).st_size

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def isfile(self, path: str) -> bool:
        return os.path.isfile(path)

    def rm_file(self, path: str) -> None:
        os.remove(path)

    def find(
        self, path: str, *, withdirs: bool = False, detail: bool = False
    ) -> dict[str, dict[str, Any]] | list[str]:
        """Everything under ``path`` by name, sorted, as fsspec gives it: ``type``
        ("file", "directory", or "other" for a link or device) and ``size`` (a
        link's target's).  A file gives itself; a missing path gives nothing."""
        path = path.rstrip("/") or "/"
        found: dict[str, dict[str, Any]] = {}
        try:
            top = os.stat(path)
        except FileNotFoundError:
            return {} if detail else []
        if not stat.S_ISDIR(top.st_mode):
            kind = "file" if stat.S_ISREG(top.st_mode) else "other"
            found[path] = {"name": path, "type": kind, "size": top.st_size}
        else:
            if withdirs:
                found[path] = {"name": path, "type": "directory", "size": 0}
            pending = [path]
            while pending:
                with os.scandir(pending.pop()) as it:
                    for entry in it:
                        info = _info(entry)
                        if info["type"] == "directory":
                            pending.append(entry.path)
                            if not withdirs:
                                continue
                        found[entry.path] = info
        names = sorted(found)
        return {n: found[n] for n in names} if detail else names

    def walk(self, path: str) -> Iterator[RemoteEntry]:
        """Everything under ``path``, as it is found (nothing held for the whole tree):
        directories (made on the other side, so empty ones are kept) and everything
        else (a link is copied as its target).  A file gives itself; a missing path
        gives nothing."""
        path = path.rstrip("/") or "/"
        try:
            top = os.stat(path)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(top.st_mode):
            yield RemoteEntry(os.path.basename(path), path, top.st_size)
            return
        pending = [""]
        while pending:
            rel = pending.pop()
            with os.scandir(os.path.join(path, rel) if rel else path) as it:
                for entry in it:
                    name = f"{rel}/{entry.name}" if rel else entry.name
                    info = _info(entry)
                    is_dir = info["type"] == "directory"
                    if is_dir:
                        pending.append(name)
                    yield RemoteEntry(name, entry.path, info["size"], is_dir)


def _info(entry: os.DirEntry[str]) -> dict[str, Any]:
    if entry.is_dir(follow_symlinks=False):
        return {"name": entry.path, "type": "directory", "size": 0}
    kind = "file" if entry.is_file(follow_symlinks=False) else "other"
    try:
        size = entry.stat().st_size  # a link's target's size
    except OSError:
        size = 0  # a dangling link
    return {"name": entry.path, "type": kind, "size": size}
