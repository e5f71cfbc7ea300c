"""Local disk to local disk (a ``file://`` store): one file at a time in the
calling thread, the kernel doing the copying (``sendfile``, a hard link where
``copilot run`` asks for one)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from copilot.constants import TMP_SUFFIX
from copilot.paths import Openers
from copilot.storage.errors import _errors
from copilot.storage.files import LocalSource
from copilot.storage.local import LocalFileSystem
from copilot.storage.transfer import (
    Attempt,
    Transfer,
    finish_download,
    leaf_of,
    local_path,
    open_for_upload,
    sent_whole,
    transfer_error,
    upload_leaves,
    verify,
)

if TYPE_CHECKING:
    from copilot.cancel import CancelToken
    from copilot.progress import Progress


def run_local(
    group: list[Transfer],
    direction: str,
    digests: dict[str, str] | None,
    stats: dict[str, int],
    *,
    cancel: CancelToken,
    progress: Progress | None,
    link: bool,
) -> int:
    """Local disk to local disk: one by one in this thread.

    The kernel does the copying (``copy_file_range`` / ``sendfile``); threads
    would only add locking, and a pool of them costs more than 2,000 small
    copies do.  A tree is walked as it is copied.
    """
    made: set[str] = set()
    copied = 0
    with Openers() as openers:
        for t, tree, index in _local_transfers(group, direction, progress):
            cancel.raise_if_cancelled()
            src = local_path(t.src) if direction == "get" else t.src
            dst = t.dst if direction == "get" else local_path(t.dst)
            parent = os.path.dirname(dst) or "."
            if parent not in made:
                os.makedirs(parent, exist_ok=True)
                made.add(parent)
            tmp = dst if t.staged and direction == "get" else dst + TMP_SUFFIX
            digest: Any = None
            try:
                if direction == "put":
                    source = open_for_upload(t, openers)
                    try:
                        got, digest = _put_local(t, source, tmp, dst, link, digests is not None)
                    finally:
                        os.close(source.fd)
                else:
                    with Attempt(tmp):
                        written = None  # known when the copy counted it
                        if t.sha256 or t.hashed:
                            digest = _copy_hashing(src, tmp, hashlib.sha256())
                            verify(t, digest)
                        else:
                            written = _copy_plain(src, tmp)
                        got = finish_download(t, tmp, dst, None, written)
            except Exception as exc:
                raise transfer_error(t, direction, exc) from exc
            if progress is not None:  # counted here: no fsspec callback to load
                if t.size is None:
                    progress.sized(id(t), got)
                progress.advance(got, files=1)
            copied += got
            stats["files"] += 1
            if digest is not None:
                if tree is not None and tree.sink is not None:
                    tree.sink(
                        index, t.dst[len(tree.dst.rstrip("/")) + 1 :], got, digest.hexdigest()
                    )
                elif digests is not None:
                    digests[t.dst] = digest.hexdigest()
    return copied


def _local_transfers(
    group: list[Transfer], direction: str, progress: Progress | None
) -> Iterator[tuple[Transfer, Transfer | None, int]]:
    """The group's transfers (with the tree each came from and its index there),
    each tree walked as it is copied."""
    for t in group:
        if t.tree and direction == "put":
            for index, leaf in upload_leaves(t, progress):
                yield leaf, t, index
            continue
        if not t.tree:
            yield t, None, 0
            continue
        os.makedirs(t.dst, exist_ok=True)
        with _errors(t.src, "list"):
            for entry in LocalFileSystem().walk(local_path(t.src)):
                if entry.relpath.endswith(TMP_SUFFIX):
                    continue
                found = leaf_of(t, entry, progress)
                if found is not None:
                    yield found, t, 0


def _put_local(
    t: Transfer, source: LocalSource, tmp: str, dst: str, link: bool, hashing: bool
) -> tuple[int, Any]:
    """An upload into a ``file://`` store: a hard link to the open file where ``link``
    and the kernel allow, else a copy, under a temporary name renamed when
    complete; returns the bytes and the SHA-256 (when ``hashing``)."""
    with Attempt(tmp):
        digest: Any = None
        if link and _link(source.fd, tmp):
            written = source.size
            if hashing:
                digest = _hash_fd(source.fd)
        else:
            digest = hashlib.sha256() if hashing else None
            written = _copy_fd(source.fd, tmp, digest)
        got = sent_whole(t, source, written)
        os.replace(tmp, dst)
    return got, digest


#: Bytes read at a time where copilot copies or hashes a local file itself.
_COPY_CHUNK = 1 << 20


def _copy_plain(src: str, dst: str) -> int:
    """Copy ``src`` to ``dst`` in the kernel (``sendfile``); returns the bytes copied.

    What ``shutil.copyfile`` does, without its four ``stat`` calls and two
    ``isatty`` checks per file: a tree of 2,000 small files paid ~12,000 system
    calls for them.
    """
    fin = os.open(src, os.O_RDONLY)
    try:
        fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            total = 0
            try:
                while n := os.sendfile(fout, fin, None, _COPY_CHUNK * 8):
                    total += n
            except OSError:
                if total:
                    raise
                # No sendfile between these two (a special file system): plain reads.
                while chunk := os.read(fin, _COPY_CHUNK):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fout, view) :]
                    total += len(chunk)
            return total
        finally:
            os.close(fout)
    finally:
        os.close(fin)


def _link(fd: int, dst: str) -> bool:
    """Hard-link the open regular file ``fd`` as ``dst`` (through ``/proc/self/fd``,
    so the link is to the file that was opened, not to whatever its name holds
    now); False where a copy must do (another file system, no ``/proc``, a file
    system without hard links)."""
    try:
        # linkat(AT_SYMLINK_FOLLOW): Python only calls it when a dir fd is given (else
        # link(), which would link the /proc entry itself); an absolute path ignores it.
        os.link(f"/proc/self/fd/{fd}", dst, src_dir_fd=fd, follow_symlinks=True)
    except OSError:
        return False
    return True


def _hash_fd(fd: int) -> Any:
    digest = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd, _COPY_CHUNK, offset):
        digest.update(chunk)
        offset += len(chunk)
    return digest


def _copy_fd(fd: int, dst: str, digest: Any = None) -> int:
    """Copy the open file ``fd`` (from its start) to ``dst``; returns the bytes
    copied.  With ``digest`` every byte is read once and fed to it; without, the
    kernel copies (``sendfile``)."""
    fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        if digest is None:
            try:
                return _sendfile_all(fd, fout)
            except OSError:
                os.ftruncate(fout, 0)  # no sendfile here (a special file system)
        total = 0
        while chunk := os.pread(fd, _COPY_CHUNK, total):
            if digest is not None:
                digest.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.pwrite(fout, view, total + len(chunk) - len(view)) :]
            total += len(chunk)
        return total
    finally:
        os.close(fout)


def _sendfile_all(fin: int, fout: int) -> int:
    total = 0
    while n := os.sendfile(fout, fin, total, _COPY_CHUNK * 8):
        total += n
    return total


def _copy_hashing(src: str, dst: str, digest: Any) -> Any:
    """Copy ``src`` to ``dst`` reading it once, every byte fed to ``digest``."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while chunk := fin.read(_COPY_CHUNK):
            digest.update(chunk)
            fout.write(chunk)
    return digest
