"""One door to every store: clients created lazily, errors made readable.

A :class:`Store` owns one client per protocol for the life of a run (obstore's
or fsspec's, :mod:`copilot.storage.engines` picks; copilot's own few ``os``
calls for ``file://``), so a run has one connection pool per store.  Engines
and backends are imported only when a URI needs them: a ``file://`` run
imports neither, nor an event loop.  Trees are listed (or walked) a page at
a time while their files are copied, through a short queue to the workers.
Transfers stream to a temporary name beside the target and are renamed into
place only when complete, so a reader never sees a partial file under its real
name.  A directory is staged whole instead (:func:`staging_dir`, :func:`publish`):
its files are written straight into a hidden sibling that is renamed into place
once, so a tree of any size costs one rename.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import logging
import os
import shutil
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from copilot.cancel import Cancelled, CancelToken
from copilot.config import StorageConfig
from copilot.constants import CLEANUP_SECONDS, DEFAULT_CONCURRENCY, TMP_SUFFIX
from copilot.errors import (
    NON_RECOVERABLE,
    USER,
    CopilotError,
    DataError,
    StorageError,
)
from copilot.paths import Openers, open_source
from copilot.storage.backends import backend_for
from copilot.storage.callback import Pulse, TransferCallback
from copilot.storage.client import Client, RemoteEntry
from copilot.storage.engines import make_client
from copilot.storage.errors import _errors, storage_error, unsatisfiable_range
from copilot.storage.files import LocalSource
from copilot.storage.local import LocalFileSystem
from copilot.storage.retry import RESOURCE_ERRNOS, RetryPolicy
from copilot.storage.uris import basename_of, display_uri, join_uri, protocol_of

if TYPE_CHECKING:
    from copilot.progress import Progress

log = logging.getLogger("copilot")
T = TypeVar("T")

#: How often a caller waiting on the engine's loop looks at the watchdog and the token.
WATCH_SECONDS = 1.0
#: Default of ``Store.stall_seconds``: five times the engines' read timeout.
STALL_SECONDS = 300.0
#: Default of ``Store.unwind_seconds``: a multipart abort's bound and a margin.
UNWIND_SECONDS = 2 * CLEANUP_SECONDS


@dataclass(frozen=True)
class Transfer:
    """Copy ``src`` to ``dst`` (one local path, one URI); ``label`` names it in errors.

    ``size``, when known, is checked after the copy; ``sha256`` too, for a download.
    """

    src: str
    dst: str
    label: str
    size: int | None = None
    #: For a download: the SHA-256 (lowercase hex) the bytes must have, checked as
    #: they arrive; a mismatch fails the transfer for good.
    sha256: str | None = None
    #: For a download into a staged directory: ``dst`` is not visible under its real
    #: name until the whole tree is published, so it is written in place, with no
    #: temporary name (and rename) of its own.
    staged: bool = False
    #: A whole tree: for a download ``src`` is a prefix and ``dst`` a (staged)
    #: directory that receives every object under it at its relative path; for an
    #: upload ``leaves`` gives the files and ``dst`` is the prefix they go under.
    #: The store lists or walks it while the transfers run: nothing is held per file.
    tree: bool = False
    #: Download: checks a relative path from the listing before it becomes a local
    #: one (returns it, or raises naming it): names from data never leave ``dst``.
    check: Callable[[str], str] | None = None
    #: Upload: ``(relative path, source, size)`` of every file, in a fixed order.
    leaves: Callable[[], Iterable[tuple[str, str, int]]] | None = None
    #: Upload: told ``(index in that order, relative path, size, SHA-256)`` as each
    #: file is sent (when digests are asked for); files finish in any order, but
    #: never more than ``TREE_WINDOW`` after the first unfinished one.  Download:
    #: told the same of each file as it lands (index 0: in no particular order).
    sink: Callable[[int, str, int, str], None] | None = None
    #: Download: compute the file's SHA-256 as it arrives, for its tree's ``sink``
    #: (a Dir digest checked once the tree is whole), with nothing to compare it to.
    hashed: bool = False
    #: Upload: the real directory ``src`` must lie in (the sidecar's output dir).
    #: The file is opened beneath it one component at a time, following no link,
    #: and sent from that descriptor (:func:`copilot.paths.open_source`); None for
    #: a file a person named on this machine (links followed).
    inside: str | None = None


def staging_dir(final: str) -> str:
    """The hidden sibling a directory is filled in before :func:`publish` renames it:
    same parent, so the rename stays on one file system."""
    parent, name = os.path.split(final.rstrip(os.sep))
    return os.path.join(parent, f".{name}{TMP_SUFFIX}")


def publish(staged: str, final: str) -> None:
    """Move a filled staging directory to its real name in one rename.

    Whatever is at ``final`` already (an earlier run's copy) is moved aside first and
    removed after, so the real name never shows a mix of the two.
    """
    try:
        if not os.path.lexists(final):
            os.rename(staged, final)
            return
        old = staged + ".old"
        shutil.rmtree(old, ignore_errors=True)
        os.rename(final, old)
        os.rename(staged, final)
    except OSError as exc:
        raise StorageError(f"cannot move {staged} to {final}: {exc.strerror}") from None
    if os.path.isdir(old) and not os.path.islink(old):
        shutil.rmtree(old, ignore_errors=True)
    else:
        _unlink_quietly(old)


def discard(staged: str) -> None:
    """Remove a staging directory that will not be published (a failed download)."""
    shutil.rmtree(staged, ignore_errors=True)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class Store:
    """Access to every store a run touches, configured once."""

    def __init__(
        self,
        config: StorageConfig | None = None,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        progress: Progress | None = None,
        retry: RetryPolicy | None = None,
        cancel: CancelToken | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.config = config or StorageConfig()
        self.concurrency = concurrency
        self.progress = progress
        self.cancel = cancel or CancelToken()
        self.retry = retry or RetryPolicy(cancel=self.cancel)
        self._clients: dict[str, Client] = {}
        self._local = LocalFileSystem()
        self._lock = threading.Lock()
        # Shared by every scoped view: one upload byte budget for the whole store.
        self._shared: dict[str, Any] = {}
        #: Uploads from local disk into a ``file://`` store are hard links where the
        #: kernel allows (see :meth:`linking`).
        self.link_uploads = False
        #: The watchdog: a call whose transfers move no byte, finish no file and list
        #: no page for this long is stopped and fails (0: never).  Each request has
        #: its own read timeout too; this catches what none of them sees (an engine
        #: whose future never completes, a runtime that lost its threads).
        self.stall_seconds = STALL_SECONDS
        #: When a call is cancelled (SIGTERM, the deadline, the watchdog), how long
        #: its transfers may take to unwind (temp files removed, multipart uploads
        #: aborted) before the caller is answered regardless.
        self.unwind_seconds = UNWIND_SECONDS
        self.pulse = Pulse()

    def scoped(
        self, cancel: CancelToken, *, attempts: int | None = None, patience: float | None = None
    ) -> Store:
        """This store (same filesystems and connections) under another token.

        Each phase of a step gets its own view: its deadline and cancellation
        reach every operation and retry made through the view, and nothing is
        changed on the original.
        """
        view = copy.copy(self)
        view.cancel = cancel
        view.retry = RetryPolicy(
            attempts=self.retry.attempts if attempts is None else attempts,
            base=self.retry.base,
            cap=self.retry.cap,
            cancel=cancel,
            patience=self.retry.patience if patience is None else patience,
        )
        return view

    def linking(self) -> Store:
        """This store, uploading a local file into a ``file://`` store on the same
        file system as a hard link instead of a copy (``copilot run``: an output is
        not kept twice on one disk).  The two names are then one file: for a
        caller whose source files are its own and are not written again."""
        view = copy.copy(self)
        view.link_uploads = True
        return view

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Let go of every client's connections (a library caller's ``with Store()``)."""
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for client in clients:
            client.close()

    def _await(self, client: Client, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the client's event loop until done or cancelled.

        On cancel the task is cancelled on its loop, and this returns only once
        it has finished unwinding (temporary files removed): nothing is left
        running behind the caller.
        """
        import asyncio  # only a remote store comes here: a local run never loads it
        import concurrent.futures

        if self.cancel.cancelled:
            coro.close()
            self.cancel.raise_if_cancelled()
        loop = client.loop

        tasks: list[asyncio.Task[Any]] = []

        def cancel_task() -> None:
            # The task itself, not the future: it is answered once it has unwound.
            loop.call_soon_threadsafe(lambda: [t.cancel() for t in tasks])

        async def runner() -> T:
            task = asyncio.current_task()
            assert task is not None
            tasks.append(task)
            unregister = self.cancel.on_cancel(cancel_task)
            try:
                return await coro
            finally:
                unregister()

        future = asyncio.run_coroutine_threadsafe(runner(), loop)
        self.pulse.beat()
        stalled = False
        try:
            while True:
                try:
                    return future.result(WATCH_SECONDS)
                except concurrent.futures.TimeoutError:
                    pass
                idle = time.monotonic() - self.pulse.last
                if self.cancel.cancelled or (stalled := 0 < self.stall_seconds < idle):
                    break
            if stalled:
                log.warning("no transfer progress for %.0fs: stopping the transfers", idle)
                cancel_task()
            try:
                return future.result(self.unwind_seconds)
            except concurrent.futures.TimeoutError:
                # The transfers did not stop (a native call that never returns):
                # the caller is answered anyway; the loop's thread is a daemon.
                log.warning(
                    "transfers did not stop within %.0fs of being told to; leaving them",
                    self.unwind_seconds,
                )
                if not stalled:
                    raise Cancelled(self.cancel.reason or "cancelled") from None
        except (asyncio.CancelledError, concurrent.futures.CancelledError):
            if not stalled:
                raise Cancelled(self.cancel.reason or "cancelled") from None
        raise StorageError(
            f"no transfer progress for {self.stall_seconds:.0f}s (no byte moved, no "
            f"file finished, no listing page came): the store or this machine stopped "
            f"answering"
        )

    #: The local store's names for the client calls (fsspec's, see local.py).
    _LOCAL = {"read": "cat_file", "delete": "rm_file", "exists": "exists", "is_file": "isfile"}

    def _op(self, uri: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """One client call for ``uri``: on local disk in this thread, else on the
        client's loop under the store's token."""
        protocol = protocol_of(uri)
        if protocol == "file":
            self.cancel.raise_if_cancelled()
            return getattr(self._local, self._LOCAL[method])(_local_path(uri), *args, **kwargs)
        client = self.client(protocol)
        return self._await(client, getattr(client, method)(client.path(uri), *args, **kwargs))

    # -- clients -------------------------------------------------------------

    def client(self, protocol: str) -> Client:
        """The run's client for a protocol, created (and its engine imported) on first use."""
        with self._lock:
            client = self._clients.get(protocol)
            if client is None:
                # The primary scheme's configuration, or another's storage.schemes entry.
                config = self.config.for_protocol(protocol)
                client = make_client(protocol, config, self.concurrency)
                self._clients[protocol] = client
            return client

    def engine_for(self, uri: str) -> str:
        """Which engine moves ``uri``'s bytes: ``local``, ``obstore`` or ``fsspec``."""
        protocol = protocol_of(uri)
        return "local" if protocol == "file" else self.client(protocol).engine

    # -- small objects -------------------------------------------------------

    def read_bytes(self, uri: str, *, what: str = "read") -> bytes:
        """Read a whole (small) object such as a protobuf document.

        ``storage.limits.maxDownloadMBs`` bounds it.  On an object store that is one
        request for at most the limit plus a byte (a HEAD first would cost a round
        trip on every task's start-up); elsewhere the size is looked up first.
        """
        if not uri:
            raise StorageError("empty URI", kind=NON_RECOVERABLE)
        limit = self.config.max_download_mb * 1024 * 1024
        where = f"{what} {display_uri(uri)}"
        with _errors(uri, what):
            if limit <= 0:
                data: bytes = self.retry.call(lambda: self._op(uri, "read"), where)
                return data
            if backend_for(protocol_of(uri)).ranged_reads:
                data = self.retry.call(lambda: self._read_at_most(uri, limit + 1), where)
                size: int | None = len(data)
            else:
                size = self._size(uri)
                data = b""
            if size is not None and size > limit:
                shown = f"more than {limit} bytes" if data else f"{size} bytes"
                raise StorageError(
                    f"{where}: {shown} is over the storage.limits.maxDownloadMBs "
                    f"limit of {self.config.max_download_mb} MB",
                    kind=NON_RECOVERABLE,
                )
            if backend_for(protocol_of(uri)).ranged_reads:
                return data
            data = self.retry.call(lambda: self._op(uri, "read"), where)
            return data

    def _size(self, uri: str) -> int | None:
        """An object's size where the store can tell it without reading it."""
        if protocol_of(uri) == "file":
            return self._local.size(_local_path(uri))
        client = self.client(protocol_of(uri))
        size = getattr(client, "size", None)
        if size is None:
            return None
        found: int | None = self._await(client, size(client.path(uri)))
        return found

    def _read_at_most(self, uri: str, n: int) -> bytes:
        """The first ``n`` bytes of an object (all of it, when it is smaller)."""
        try:
            data: bytes = self._op(uri, "read", 0, n)
            return data
        except Exception as exc:
            # An empty object has no byte 0: the stores answer 416 to the range.
            if not unsatisfiable_range(exc):
                raise
        data = self._op(uri, "read")
        return data

    def write_bytes(self, uri: str, data: bytes | Iterable[bytes], *, what: str = "write") -> None:
        """Write a whole object; on local disk atomically (temp name, then rename).

        ``data`` may come in pieces, written as they come on local disk (a big
        ``inputs.json`` is never whole in memory); a remote object is sent whole."""
        if not uri:
            raise StorageError("empty URI", kind=NON_RECOVERABLE)
        with _errors(uri, what):
            if protocol_of(uri) == "file":
                path = _local_path(uri)
                os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
                tmp = path + TMP_SUFFIX
                try:
                    with open(tmp, "wb") as fh:
                        for piece in [data] if isinstance(data, bytes) else data:
                            fh.write(piece)
                except BaseException:
                    _unlink_quietly(tmp)
                    raise
                os.replace(tmp, path)
            else:
                if backend_for(protocol_of(uri)).read_only:
                    raise StorageError(
                        f"{what} {display_uri(uri)}: {protocol_of(uri)}:// can only be read",
                        kind=NON_RECOVERABLE,
                    )
                whole = data if isinstance(data, bytes) else b"".join(data)
                self.retry.call(lambda: self._op(uri, "write", whole), f"{what} {display_uri(uri)}")

    def delete(self, uri: str) -> None:
        """Remove one object; one that is already gone is not an error."""
        with _errors(uri, "delete"):
            try:
                self.retry.call(lambda: self._op(uri, "delete"), f"delete {display_uri(uri)}")
            except FileNotFoundError:
                pass

    def exists(self, uri: str) -> bool:
        with _errors(uri, "check"):
            return bool(
                self.retry.call(lambda: self._op(uri, "exists"), f"check {display_uri(uri)}")
            )

    def is_file(self, uri: str) -> bool:
        with _errors(uri, "check"):
            return bool(
                self.retry.call(lambda: self._op(uri, "is_file"), f"check {display_uri(uri)}")
            )

    # -- trees ---------------------------------------------------------------

    def list_tree(self, uri: str) -> list[RemoteEntry]:
        """Every object under ``uri`` with its path relative to it (nested folders kept).

        A prefix with nothing under it gives an empty list: object stores do not
        keep empty directories, so "empty" and "absent" look the same there.  The
        whole listing is held: for looking at a tree, not for copying one (a
        ``Transfer(tree=True)`` lists as it copies).
        """
        protocol = protocol_of(uri)
        if protocol in ("http", "https"):
            raise StorageError(
                f"list {display_uri(uri)}: an http(s) URI can only be a single file",
                kind=NON_RECOVERABLE,
            )
        if protocol == "file":
            return self._list_local(uri)
        client = self.client(protocol)

        async def collect() -> list[RemoteEntry]:
            out: list[RemoteEntry] = []
            async for page in self._pages(client, uri):
                out.extend(page)
            out.sort(key=lambda e: e.relpath)
            return out

        with _errors(uri, "list"):
            entries: list[RemoteEntry] = self._await(client, collect())
        return entries

    def _list_local(self, uri: str) -> list[RemoteEntry]:
        base = _local_path(uri).rstrip("/") or "/"
        with _errors(uri, "list"):
            self.cancel.raise_if_cancelled()
            found = self._local.find(base, withdirs=True, detail=True)
        entries: list[RemoteEntry] = []
        assert isinstance(found, dict)
        for name, info in found.items():
            kind = info.get("type")
            if name == base:
                if kind != "directory":
                    entries.append(RemoteEntry(basename_of(name), name, info.get("size")))
                continue
            rel = name[len(base) + 1 :]
            if rel.endswith(TMP_SUFFIX):
                continue
            entries.append(RemoteEntry(rel, name, info.get("size"), kind == "directory"))
        return entries

    # -- transfers -----------------------------------------------------------

    def download(self, transfers: Sequence[Transfer], stats: dict[str, int] | None = None) -> int:
        """Copy remote ``src`` to local ``dst`` for every transfer; returns bytes copied.

        At most ``concurrency`` run at once.  The first failure stops the rest
        and is raised; files already renamed into place stay, partial ones are
        removed.  A tree transfer is listed a page at a time as its files are
        copied; ``stats["files"]`` counts the files copied.
        """
        return self._transfer(transfers, "get", stats=stats)

    def upload(
        self,
        transfers: Sequence[Transfer],
        digests: dict[str, str] | None = None,
        stats: dict[str, int] | None = None,
    ) -> int:
        """Copy local ``src`` to remote ``dst`` for every transfer; returns bytes copied.

        A local file that changes size while it is uploaded is an error: the
        object would not be the data that was declared.  With ``digests``, the
        SHA-256 (lowercase hex) of every file sent is recorded there by ``dst``
        (a tree's files go to its ``sink`` instead), computed from the bytes as
        they are read for the upload.  ``stats["files"]`` counts the files sent.
        """
        return self._transfer(transfers, "put", digests, stats)

    def _callback(self) -> TransferCallback:
        return TransferCallback(self.progress, self.pulse)

    def _transfer(
        self,
        transfers: Sequence[Transfer],
        direction: str,
        digests: dict[str, str] | None = None,
        stats: dict[str, int] | None = None,
    ) -> int:
        if stats is None:
            stats = {}
        stats.setdefault("files", 0)
        if self.progress is not None:
            self.progress.expect(sum(1 for t in transfers if not t.tree))
        groups: dict[str, list[Transfer]] = {}
        for t in transfers:
            remote = t.src if direction == "get" else t.dst
            groups.setdefault(protocol_of(remote), []).append(t)
        total = 0
        for protocol, group in groups.items():
            if protocol == "file":
                total += self._run_local(group, direction, digests, stats)
                continue
            client = self.client(protocol)
            total += self._await(client, self._run_async(client, group, direction, digests, stats))
        return total

    def _leaf(self, tree: Transfer, entry: RemoteEntry) -> Transfer | None:
        """The transfer of one object found under a tree (None for a directory,
        which is made here)."""
        rel = tree.check(entry.relpath) if tree.check is not None else entry.relpath
        dest = os.path.join(tree.dst, *rel.split("/"))
        if entry.is_dir:
            os.makedirs(dest, exist_ok=True)
            return None
        if self.progress is not None:
            self.progress.expect(1)
        return Transfer(
            entry.uri, dest, tree.label, entry.size, staged=True, hashed=tree.sink is not None
        )

    def _upload_leaves(self, tree: Transfer) -> Iterator[tuple[int, Transfer]]:
        """Every file of an upload tree, numbered in its order."""
        assert tree.leaves is not None
        for index, (rel, src, size) in enumerate(tree.leaves()):
            if self.progress is not None:
                self.progress.expect(1)
            yield (
                index,
                Transfer(src, join_uri(tree.dst, rel), tree.label, size, inside=tree.inside),
            )

    async def _leaves(self, client: Client, tree: Transfer) -> AsyncIterator[Transfer]:
        """Every object under a tree transfer's prefix, a listing page at a time."""
        async for page in self._pages(client, tree.src, tree.label):
            for entry in page:
                leaf = self._leaf(tree, entry)
                if leaf is not None:
                    yield leaf

    async def _pages(
        self, client: Client, uri: str, label: str = ""
    ) -> AsyncIterator[list[RemoteEntry]]:
        """Everything under ``uri``, a listing page at a time (names being written,
        ``….copilot-part``, left out).

        A listing that fails transiently resumes after the last object it gave,
        under the retry policy, its attempts counted afresh after every page that
        arrives: nothing is listed twice, and a long listing is not held to one
        operation's attempts over all its pages.
        """
        import asyncio

        path, where = client.path(uri), f"list {display_uri(uri)}"
        after: str | None = None
        attempt = 0
        failing_since = 0.0
        while True:
            try:
                async for page in client.listing(path, uri, after):
                    if page:
                        after = page[-1].relpath
                    self.pulse.beat()
                    yield [e for e in page if not e.relpath.endswith(TMP_SUFFIX)]
                    attempt, failing_since = 0, 0.0
                return
            except Exception as exc:
                if isinstance(exc, CopilotError):
                    raise
                failing_since = failing_since or time.monotonic()
                pause = self.retry.pause_after(attempt, exc, where, failing_since)
                if pause is None:
                    raise _labelled(storage_error(exc, uri, "list"), label) from exc
            await asyncio.sleep(pause)
            attempt += 1

    # One transfer, either direction.  A download (and a local copy) lands under a
    # temporary name and is renamed when complete, unless its directory is staged
    # whole; an upload to an object store is atomic already.

    @staticmethod
    def _tmp_for(t: Transfer, direction: str, made: set[str] | None = None) -> str | None:
        """Where a download writes (None for an upload); its directory made once."""
        if direction != "get":
            return None
        parent = os.path.dirname(t.dst) or "."
        if made is None or parent not in made:
            os.makedirs(parent, exist_ok=True)
            if made is not None:
                made.add(parent)
        return t.dst if t.staged else t.dst + TMP_SUFFIX

    def _finish(
        self,
        t: Transfer,
        tmp: str,
        final: str,
        cb: TransferCallback | None,
        written: int | None = None,
    ) -> int:
        """Check a download's size, move its temporary file into place, count the
        file (``written``: the size, when the copy counted it)."""
        got = os.path.getsize(tmp) if written is None else written
        if t.size is not None and got != t.size:
            raise StorageError(
                f"{t.label}: download of {display_uri(t.src)} ended short "
                f"({got} of {t.size} bytes)",
                retryable=True,
            )
        if tmp != final:
            os.replace(tmp, final)
        if cb is not None:
            cb.finish(got)
        return got

    def _fail(self, t: Transfer, direction: str, exc: Exception) -> CopilotError:
        local = t.dst if direction == "get" else t.src
        if isinstance(exc, OSError) and exc.errno in RESOURCE_ERRNOS:
            # This machine ran short (open files, say) past --retries: copilot's own
            # trouble, and a later attempt may well have what it needs.
            what = "download to" if direction == "get" else "upload of"
            return _labelled(StorageError(f"{what} {local}: {exc.strerror}"), t.label)
        if isinstance(exc, OSError) and exc.filename is not None:
            failed = os.path.abspath(os.fsdecode(exc.filename))
            if failed in (os.path.abspath(local), os.path.abspath(local) + TMP_SUFFIX):
                # The local side failed, not the store: name the file and the cause.
                if direction == "get":
                    return _labelled(StorageError(f"cannot write {local}: {exc.strerror}"), t.label)
                return _labelled(
                    DataError(f"cannot read {local}: {exc.strerror}", origin=USER), t.label
                )
        uri = t.src if direction == "get" else t.dst
        action = "download" if direction == "get" else "upload to"
        err = storage_error(exc, uri, action)
        if direction == "put" and err.message.endswith(": not found") and "://" in uri:
            # Nothing is "not found" on upload but the bucket itself.
            bucket = uri.split("://", 1)[1].split("/", 1)[0]
            err = StorageError(
                f"upload to {display_uri(uri)}: the bucket {bucket!r} does not exist "
                "(copilot does not create buckets)",
                kind=NON_RECOVERABLE,
            )
        return _labelled(err, t.label)

    async def _run_async(
        self,
        client: Client,
        group: list[Transfer],
        direction: str,
        digests: dict[str, str] | None,
        stats: dict[str, int],
    ) -> int:
        """Every transfer of ``group``, at most ``concurrency`` at a time.

        A producer feeds the workers through a short queue, expanding tree
        transfers (a listing page, or a directory, at a time) as they go: what is
        held at once is a page and the queue, however many files a tree has.
        """
        import asyncio

        from copilot.storage import chunked

        failure: list[BaseException] = []
        copied = 0
        # One budget per store (made on the loop that uses it), so uploads running
        # side by side (the eager uploader, the exit upload) share one bound.
        budget: chunked.ByteBudget = self._shared.setdefault(
            "upload_budget", chunked.ByteBudget(chunked.UPLOAD_BUDGET)
        )
        made: set[str] = set()
        # Every worker runs on this one loop's thread, one open at a time: they can
        # share the directories an opener keeps open.
        openers = Openers()
        trees = any(t.tree for t in group)
        workers = self.concurrency if trees else max(1, min(self.concurrency, len(group)))
        queue: asyncio.Queue[_Queued | None] = asyncio.Queue(maxsize=2 * workers)

        async def attempt(t: Transfer, source: LocalSource | None) -> tuple[int, str | None]:
            cb = self._callback()
            if source is not None:  # an upload, from the file opened for it
                # A fresh digest per attempt: a retried upload reads the file again.
                digest = hashlib.sha256() if digests is not None else None
                sent = await client.put_file(
                    source, client.path(t.dst), budget, cb, self.retry, digest
                )
                got = _sent_whole(t, source, sent)
                if cb is not None:
                    cb.finish(got)
                return got, (digest.hexdigest() if digest is not None else None)
            tmp = self._tmp_for(t, direction, made)
            assert tmp is not None
            with _Attempt(tmp):  # a download lands under a temp name
                for again in range(self.retry.attempts):
                    check = hashlib.sha256() if t.sha256 or t.hashed else None
                    try:
                        written = await client.get_file(
                            client.path(t.src), tmp, cb, self.retry, sha256=check, size=t.size
                        )
                        break
                    except chunked.ObjectChanged as exc:
                        # Replaced while it was read: never a mix of two versions; the
                        # new one is fetched whole, from its first range.
                        if again + 1 == self.retry.attempts:
                            raise StorageError(
                                f"{display_uri(t.src)} changed while it was downloaded, "
                                f"{self.retry.attempts} times in a row ({exc})",
                                retryable=False,
                            ) from None
                        log.info("%s changed while it was downloaded; fetching it again", t.src)
                _verify(t, check)
                got = self._finish(t, tmp, t.dst, cb, written)
                return got, (check.hexdigest() if t.hashed and check is not None else None)

        async def opened(t: Transfer) -> LocalSource:
            # Under the retry policy: too many open files is a moment's shortage.
            return _open_source(t, openers)

        refused = False

        async def produce() -> None:
            t: Transfer | None = None
            try:
                for t in group:
                    if t.tree and direction == "get":
                        os.makedirs(t.dst, exist_ok=True)
                        hashed = t if t.sink is not None else None
                        async for leaf in self._leaves(client, t):
                            await queue.put(_Queued(leaf, hashed))
                    elif t.tree:
                        window = _Window()
                        for index, leaf in self._upload_leaves(t):
                            await window.admit(index)
                            await queue.put(_Queued(leaf, t, index, window))
                    else:
                        await queue.put(_Queued(t))
                for _ in range(workers):
                    await queue.put(None)
            except asyncio.CancelledError:
                if refused:
                    return  # stopped by a refusal: the workers drain what was queued
                raise
            except Exception as exc:
                if not isinstance(exc, CopilotError) and t is not None:
                    exc = _labelled(storage_error(exc, t.src, "list"), t.label)
                failure.append(exc)
                raise _Stopped from None

        def refuse() -> None:
            """The container's data was refused (a file swapped for a link): nothing
            more is sent, but what is in flight lands, so the clean-up that follows
            finds every object (a cancelled request may still land after it)."""
            nonlocal refused
            refused = True
            producer.cancel()  # its pending put is cancelled with it
            while not queue.empty():
                queue.get_nowait()  # what it queued is not sent
            for _ in range(workers):
                queue.put_nowait(None)

        async def worker() -> None:
            nonlocal copied
            while (item := await queue.get()) is not None:
                t = item.transfer
                if refused:
                    continue  # drained
                try:
                    source = (
                        await self.retry.acall(functools.partial(opened, t), t.label)
                        if direction == "put"
                        else None
                    )
                    try:
                        # Not `copied += await ...`: that reads `copied` before the
                        # await and would lose what other workers add meanwhile.
                        done, hexdigest = await self.retry.acall(
                            functools.partial(attempt, t, source), t.label
                        )
                    finally:
                        if source is not None:
                            os.close(source.fd)
                except Exception as exc:
                    err = self._fail(t, direction, exc)
                    failure.append(err)
                    if err.origin == USER:
                        if not refused:
                            refuse()
                        continue
                    raise _Stopped from None
                copied += done
                stats["files"] += 1
                if hexdigest is not None:
                    if item.tree is not None and item.tree.sink is not None:
                        rel = t.dst[len(item.tree.dst.rstrip("/")) + 1 :]
                        item.tree.sink(item.index, rel, done, hexdigest)
                    elif digests is not None:
                        digests[t.dst] = hexdigest
                if item.window is not None:
                    await item.window.finish(item.index)

        # One task group: the first failure cancels every other transfer at once
        # (their back-off included) and is what is raised; nothing is left running.
        # A refusal of the container's data stops the feeding instead (above).
        with openers:
            producer = asyncio.ensure_future(produce())  # a refusal stops it (``refuse``)
            try:
                await chunked.all_or_none([producer, *(worker() for _ in range(workers))])
            except _Stopped:
                raise failure[0] from None
        if failure:
            raise failure[0]
        return copied

    def _run_local(
        self,
        group: list[Transfer],
        direction: str,
        digests: dict[str, str] | None,
        stats: dict[str, int],
    ) -> int:
        """Local disk to local disk: one by one in this thread.

        The kernel does the copying (``copy_file_range`` / ``sendfile``); threads
        would only add locking, and a pool of them costs more than 2,000 small
        copies do.  A tree is walked as it is copied.
        """
        made: set[str] = set()
        copied = 0
        with Openers() as openers:
            for t, tree, index in self._local_transfers(group, direction):
                self.cancel.raise_if_cancelled()
                src = _local_path(t.src) if direction == "get" else t.src
                dst = t.dst if direction == "get" else _local_path(t.dst)
                parent = os.path.dirname(dst) or "."
                if parent not in made:
                    os.makedirs(parent, exist_ok=True)
                    made.add(parent)
                tmp = dst if t.staged and direction == "get" else dst + TMP_SUFFIX
                digest: Any = None
                try:
                    if direction == "put":
                        source = _open_source(t, openers)
                        try:
                            got, digest = _put_local(
                                t, source, tmp, dst, self.link_uploads, digests is not None
                            )
                        finally:
                            os.close(source.fd)
                    else:
                        with _Attempt(tmp):
                            written = None  # known when the copy counted it
                            if t.sha256 or t.hashed:
                                digest = _copy_hashing(src, tmp, hashlib.sha256())
                                _verify(t, digest)
                            else:
                                written = _copy_plain(src, tmp)
                            got = self._finish(t, tmp, dst, None, written)
                except Exception as exc:
                    raise self._fail(t, direction, exc) from exc
                if self.progress is not None:  # counted here: no fsspec callback to load
                    self.progress.advance(got, files=1)
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
        self, group: list[Transfer], direction: str
    ) -> Iterator[tuple[Transfer, Transfer | None, int]]:
        """The group's transfers (with the tree each came from and its index there),
        each tree walked as it is copied."""
        for t in group:
            if t.tree and direction == "put":
                for index, leaf in self._upload_leaves(t):
                    yield leaf, t, index
                continue
            if not t.tree:
                yield t, None, 0
                continue
            os.makedirs(t.dst, exist_ok=True)
            with _errors(t.src, "list"):
                for entry in self._local.walk(_local_path(t.src)):
                    if entry.relpath.endswith(TMP_SUFFIX):
                        continue
                    found = self._leaf(t, entry)
                    if found is not None:
                        yield found, t, 0


#: How far an upload tree's files may run ahead of its first unfinished one: what
#: a Dir digest holds of finished lines waiting for it (a line each).
TREE_WINDOW = 1024


@dataclass
class _Queued:
    """A transfer on its way to a worker, with the upload tree it belongs to."""

    transfer: Transfer
    tree: Transfer | None = None
    index: int = 0
    window: _Window | None = None


class _Stopped(Exception):
    """A task of the transfer group failed; the cause is the group's first failure."""


class _Window:
    """Keeps an upload tree's files within ``TREE_WINDOW`` of its first unfinished one."""

    def __init__(self) -> None:
        from copilot.storage.chunked import Gate

        self.lowest = 0
        self.finished: set[int] = set()
        self.gate = Gate()

    async def admit(self, index: int) -> None:
        await self.gate.wait_until(lambda: index - self.lowest < TREE_WINDOW)

    async def finish(self, index: int) -> None:
        self.finished.add(index)
        while self.lowest in self.finished:
            self.finished.remove(self.lowest)
            self.lowest += 1
        await self.gate.changed()


class _Attempt:
    """Removes the temporary file of an attempt that fails.

    A class, not a ``@contextmanager`` generator: a local copy of 2,000 small
    files enters one per file, and the generator cost about 5 us each.
    """

    __slots__ = ("tmp",)

    def __init__(self, tmp: str | None) -> None:
        self.tmp = tmp

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is not None and self.tmp is not None:
            _unlink_quietly(self.tmp)


def _open_source(t: Transfer, openers: Openers) -> LocalSource:
    """The file an upload sends, opened once (beneath ``t.inside`` when set, through
    the run's opener for that directory); its size is checked against what was
    planned: a file that changed in between is not the output that was checked."""
    opener = openers.beneath(t.inside) if t.inside is not None else None
    fd, st = open_source(t.src, t.inside, t.label, opener)
    if t.size is not None and st.st_size != t.size:
        os.close(fd)
        raise DataError(
            f"{t.label}: {t.src} changed size after it was checked "
            f"({t.size} then {st.st_size} bytes)",
            origin=USER,
        )
    return LocalSource(fd, st.st_size, t.src)


def _put_local(
    t: Transfer, source: LocalSource, tmp: str, dst: str, link: bool, hashing: bool
) -> tuple[int, Any]:
    """An upload into a ``file://`` store: a hard link to the open file where ``link``
    and the kernel allow, else a copy, under a temporary name renamed when
    complete; returns the bytes and the SHA-256 (when ``hashing``)."""
    with _Attempt(tmp):
        digest: Any = None
        if link and _link(source.fd, tmp):
            written = source.size
            if hashing:
                digest = _hash_fd(source.fd)
        else:
            digest = hashlib.sha256() if hashing else None
            written = _copy_fd(source.fd, tmp, digest)
        got = _sent_whole(t, source, written)
        os.replace(tmp, dst)
    return got, digest


def _sent_whole(t: Transfer, source: LocalSource, sent: int) -> int:
    """The bytes an upload sent, checked: all of the file, and the file unchanged."""
    now = os.fstat(source.fd).st_size
    if sent != source.size or now != source.size:
        raise StorageError(
            f"{t.label}: {t.src} changed size while it was uploaded "
            f"({source.size} then {now} bytes)"
        )
    return sent


def _local_path(uri: str) -> str:
    """The absolute path a ``file://`` URI or a plain path names."""
    return os.path.abspath(uri[len("file://") :] if uri.startswith("file://") else uri)


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


def _verify(t: Transfer, digest: Any) -> None:
    """A downloaded file whose SHA-256 is not the one its literal carries: the data
    in the store is not what was written, and fetching it again cannot help."""
    if digest is None or not t.sha256:
        return
    actual = digest.hexdigest()
    if actual != t.sha256:
        raise StorageError(
            f"{display_uri(t.src)}: the content does not match the hash in its literal "
            f"(expected SHA-256 {t.sha256}, got {actual})",
            kind=NON_RECOVERABLE,
            retryable=False,
        )


def _labelled(err: CopilotError, label: str) -> CopilotError:
    if label and not err.message.startswith(label + ":"):
        err.message = f"{label}: {err.message}"
        err.args = (err.message,)
    return err
