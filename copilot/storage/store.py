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
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from copilot.cancel import Cancelled, CancelToken
from copilot.constants import CLEANUP_SECONDS, DEFAULT_CONCURRENCY, TMP_SUFFIX
from copilot.errors import (
    NON_RECOVERABLE,
    StorageError,
)
from copilot.storage import local_copy
from copilot.storage.backends import backend_for
from copilot.storage.callback import Pulse
from copilot.storage.client import Client, RemoteEntry
from copilot.storage.config import StorageConfig
from copilot.storage.engines import make_client
from copilot.storage.errors import _errors, unsatisfiable_range
from copilot.storage.local import LocalFileSystem
from copilot.storage.retry import RetryPolicy
from copilot.storage.sizes import TransferLimits
from copilot.storage.transfer import Transfer, local_path, unlink_quietly
from copilot.storage.uris import basename_of, display_uri, protocol_of

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


class Store:
    """Access to every store a run touches, configured once."""

    #: The sizes a store is made with when none are given (tests shrink them here to
    #: reach the multi-part paths with small files).
    default_limits = TransferLimits()

    def __init__(
        self,
        config: StorageConfig | None = None,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        progress: Progress | None = None,
        retry: RetryPolicy | None = None,
        cancel: CancelToken | None = None,
        limits: TransferLimits | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.config = config or StorageConfig()
        self.concurrency = concurrency
        self.progress = progress
        self.cancel = cancel or CancelToken()
        self.retry = retry or RetryPolicy(cancel=self.cancel)
        #: The sizes its transfers are cut to (ranges, parts, the upload budget).
        self.limits = limits or self.default_limits
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

        tasks: list[asyncio.Task[Any]] = []  # the runner, once it has started

        def cancel_runner() -> None:
            # On the loop, after the runner's first step (scheduled before this).
            for task in tasks:
                task.cancel()

        def cancel_task() -> None:
            # The task itself, not the future: it is answered once it has unwound.
            loop.call_soon_threadsafe(cancel_runner)

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
            return getattr(self._local, self._LOCAL[method])(local_path(uri), *args, **kwargs)
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
            return self._local.size(local_path(uri))
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
                path = local_path(uri)
                os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
                tmp = path + TMP_SUFFIX
                try:
                    with open(tmp, "wb") as fh:
                        for piece in [data] if isinstance(data, bytes) else data:
                            fh.write(piece)
                except BaseException:
                    unlink_quietly(tmp)
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

    def list_tree(
        self, uri: str, keep: Callable[[RemoteEntry], bool] | None = None
    ) -> list[RemoteEntry]:
        """Every object under ``uri`` with its path relative to it (nested folders
        kept), or with ``keep`` only those it passes (tested page by page, so a
        search of a large tree holds what it finds, not the tree).

        A prefix with nothing under it gives an empty list: object stores do not
        keep empty directories, so "empty" and "absent" look the same there.  The
        listing kept is held whole: for looking at a tree, not for copying one (a
        ``Transfer(tree=True)`` lists as it copies).
        """
        protocol = protocol_of(uri)
        if protocol in ("http", "https"):
            raise StorageError(
                f"list {display_uri(uri)}: an http(s) URI can only be a single file",
                kind=NON_RECOVERABLE,
            )
        if protocol == "file":
            return [e for e in self._list_local(uri) if keep is None or keep(e)]
        client = self.client(protocol)

        from copilot.storage.pool import pages

        async def collect() -> list[RemoteEntry]:
            out: list[RemoteEntry] = []
            async for page in pages(client, uri, self.retry, self.pulse):
                out.extend(page if keep is None else filter(keep, page))
            out.sort(key=lambda e: e.relpath)
            return out

        with _errors(uri, "list"):
            entries: list[RemoteEntry] = self._await(client, collect())
        return entries

    def _list_local(self, uri: str) -> list[RemoteEntry]:
        base = local_path(uri).rstrip("/") or "/"
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
            for t in transfers:
                if not t.tree:  # a tree's files are expected as they are found
                    self.progress.expect(1, t.size)
        groups: dict[str, list[Transfer]] = {}
        for t in transfers:
            remote = t.src if direction == "get" else t.dst
            groups.setdefault(protocol_of(remote), []).append(t)
        total = 0
        for protocol, group in groups.items():
            if protocol == "file":
                total += local_copy.run_local(
                    group,
                    direction,
                    digests,
                    stats,
                    cancel=self.cancel,
                    progress=self.progress,
                    link=self.link_uploads,
                )
                continue
            client = self.client(protocol)
            from copilot.storage import chunked, pool  # asyncio: a remote store's only

            # One budget per store (made on the loop that uses it), so uploads running
            # side by side (the eager uploader, the exit upload) share one bound.
            budget = self._shared.setdefault(
                "upload_budget", chunked.ByteBudget(self.limits.upload_budget)
            )
            ctx = pool.PoolContext(
                self.concurrency, self.retry, budget, self.progress, self.pulse, self.limits
            )
            total += self._await(
                client, pool.run_pool(ctx, client, group, direction, digests, stats)
            )
        return total
