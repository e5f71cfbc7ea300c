"""The fsspec engine: any protocol an installed fsspec package serves, through one
:class:`~copilot.storage.client.Client`.

It serves ``http(s)://``, ``memory://`` and every protocol a user's fsspec
package registers, ``gs://`` by default (obstore's GCS writes cannot be shown
to work against a GCS emulator here, see the README), and S3 and Azure Blob
when ``--storage.engine fsspec`` asks for s3fs and adlfs, the reference
implementation.  The object stores keep copilot's bounded-memory transfers
(:mod:`copilot.storage.s3`, :mod:`~copilot.storage.gcs`,
:mod:`~copilot.storage.azure`); anything else uses the filesystem's own.
An async filesystem's coroutines run on its own loop; a synchronous one's
calls run in a worker thread of copilot's loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import AsyncIterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

from copilot.constants import CLEANUP_SECONDS
from copilot.errors import describe
from copilot.storage import driver
from copilot.storage.client import RemoteEntry
from copilot.storage.loop import event_loop
from copilot.storage.sizes import DEFAULT_LIMITS, TransferLimits

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from copilot.storage.callback import TransferCallback
    from copilot.storage.chunked import ByteBudget
    from copilot.storage.files import LocalSource
    from copilot.storage.retry import RetryPolicy

log = logging.getLogger("copilot")


class FsspecClient:
    """One fsspec filesystem as a client."""

    engine = "fsspec"

    def __init__(
        self, fs: AbstractFileSystem, protocol: str, bounded: ModuleType | None = None
    ) -> None:
        self.fs = fs
        self.protocol = protocol
        self.async_impl = bool(getattr(fs, "async_impl", False))
        self.loop = fs.loop if self.async_impl else event_loop()
        #: The store's module whose ``reader`` / ``writer`` move its bytes in bounded
        #: memory (:mod:`copilot.storage.driver`), if it has them.
        self.bounded = bounded

    def path(self, uri: str) -> str:
        if self.protocol in ("http", "https"):
            return uri
        return str(self.fs._strip_protocol(uri))

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self.async_impl:
            return await getattr(self.fs, "_" + method)(*args, **kwargs)
        # A synchronous filesystem's call runs in a thread, which a cancellation
        # cannot stop: the call is waited for (up to CLEANUP_SECONDS) before the
        # cancellation goes on, so what cleans up after it (a download's temporary
        # file removed) comes after the thread's last write, not before it.
        work = asyncio.ensure_future(asyncio.to_thread(getattr(self.fs, method), *args, **kwargs))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            await asyncio.wait({work}, timeout=CLEANUP_SECONDS)
            if work.done() and not work.cancelled():
                work.exception()  # retrieved: its failure is moot once cancelled
            raise

    async def read(self, path: str, start: int | None = None, end: int | None = None) -> bytes:
        if start is None and end is None:
            data = await self._call("cat_file", path)
        else:
            data = await self._call("cat_file", path, start=start, end=end)
        return bytes(data)

    async def size(self, path: str) -> int | None:
        found = await self._call("size", path)
        return None if found is None else int(found)

    async def write(self, path: str, data: bytes) -> None:
        await self._call("pipe_file", path, data)

    async def delete(self, path: str) -> None:
        await self._call("rm_file", path)

    async def exists(self, path: str) -> bool:
        return bool(await self._call("exists", path))

    async def is_file(self, path: str) -> bool:
        return bool(await self._call("isfile", path))

    async def listing(
        self, path: str, uri: str, after: str | None = None
    ) -> AsyncIterator[list[RemoteEntry]]:
        """One page per directory (fsspec's ``ls`` of it), from the entry after
        ``after`` when given: the walk's order is the same each time, and where
        ``after`` stood in it is known without finding it (it may be gone)."""
        base = path.rstrip("/")
        prefix = uri.rstrip("/")
        mark = None if after is None else _walk_key(after)
        async for page in self._pages(base, prefix, fresh=after is None):
            if mark is not None:
                page = [e for e in page if _walk_key(e.relpath) > mark]
                if page:
                    mark = None
            # An emptied page is still given: a directory listed again on the way
            # back to where the listing broke off is progress, and the caller's
            # attempts start afresh on it (a resume is not one request, but many).
            yield page

    async def _pages(
        self, base: str, prefix: str, fresh: bool = True
    ) -> AsyncIterator[list[RemoteEntry]]:
        """Directory by directory, depth first, each sorted by name.  A ``fresh``
        listing is what the service says now (fsspec's directory cache, which gcsfs
        and adlfs keep, is dropped directory by directory: a listing after an upload
        must see what it wrote); a resumed one takes the directories it already
        listed from that cache, so a resume costs no request for them."""
        pending = [base]
        while pending:
            current = pending.pop()
            if fresh:
                self.fs.invalidate_cache(current)
            try:
                listing = await self._call("ls", current, detail=True)
            except FileNotFoundError:
                if current == base:
                    return  # nothing under the prefix: an empty directory
                raise
            items, subdirs = [], []
            for info in listing:
                name = str(info["name"]).rstrip("/")
                if info.get("type") == "directory" and name != current:
                    subdirs.append(name)
                items.append((name, info))
            pending.extend(sorted(subdirs, reverse=True))  # visited in name order
            yield self._entries(base, prefix, sorted(items, key=lambda item: item[0]))

    @staticmethod
    def _entries(
        base: str, prefix: str, items: list[tuple[str, dict[str, Any]]]
    ) -> list[RemoteEntry]:
        entries: list[RemoteEntry] = []
        for name, info in items:
            kind = info.get("type")
            name = name.rstrip("/")
            if name == base:
                if kind != "directory":  # the path is an object itself
                    entries.append(RemoteEntry(name.rsplit("/", 1)[-1], prefix, info.get("size")))
                continue
            if not name.startswith(base + "/"):
                continue
            rel = name[len(base) + 1 :]
            entries.append(
                RemoteEntry(rel, f"{prefix}/{rel}", info.get("size"), kind == "directory")
            )
        return entries

    async def get_file(
        self,
        path: str,
        lpath: str,
        callback: TransferCallback | None,
        retry: RetryPolicy,
        sha256: Any = None,
        size: int | None = None,
        limits: TransferLimits = DEFAULT_LIMITS,
    ) -> int:
        if self.bounded is not None:
            reader = self.bounded.reader(self.fs, path)
            return await driver.get(reader, lpath, callback, retry, sha256, limits)
        kw = {"callback": fsspec_callback(callback)} if callback is not None else {}
        await self._call("get_file", path, lpath, **kw)
        if sha256 is not None:  # no streaming path: a pass of its own
            await asyncio.to_thread(_hash_file, lpath, sha256)
        return os.path.getsize(lpath)

    async def put_file(
        self,
        source: LocalSource,
        path: str,
        budget: ByteBudget,
        callback: TransferCallback | None,
        retry: RetryPolicy,
        digest: Any = None,
        limits: TransferLimits = DEFAULT_LIMITS,
    ) -> int:
        if self.bounded is not None:
            writer = self.bounded.writer(self.fs, path)
            return await driver.put(writer, source, budget, callback, retry, digest, limits)
        kw = {"callback": fsspec_callback(callback)} if callback is not None else {}
        # fsspec opens a path itself: give it the open file's own (see LocalSource.path).
        await self._call("put_file", source.path, path, **kw)
        if digest is not None:  # no streaming path (memory://): a pass of its own
            await asyncio.to_thread(_hash_fd, source.fd, digest)
        return source.size

    def close(self) -> None:
        """End the filesystem's sessions and connections (each store module says how;
        fsspec's HTTP filesystem keeps one aiohttp session).  The filesystem is
        copilot's own (made outside fsspec's instance cache), so nobody else uses it.
        Bounded by ``CLEANUP_SECONDS``: a close that hangs is not worth a hung exit."""
        if not self.async_impl or self.loop is None or not self.loop.is_running():
            return
        closer = getattr(self.bounded, "close", None)
        session: Any = getattr(self.fs, "_session", None) if closer is None else None
        if closer is None and session is None:
            return

        async def close() -> None:
            if closer is not None:
                await closer(self.fs)
            elif not session.closed:
                await session.close()

        future = asyncio.run_coroutine_threadsafe(close(), self.loop)
        try:
            future.result(CLEANUP_SECONDS)
        except Exception as exc:  # noqa: BLE001 - a failed close costs a warning only
            future.cancel()
            log.warning("closing the %s client failed: %s", self.protocol, describe(exc)[:200])


def _walk_key(relpath: str) -> tuple[tuple[str, ...], str]:
    """Where an entry comes in :meth:`FsspecClient._pages`' walk: directories depth
    first in name order (which is their components' order as tuples), then by name
    within one."""
    *parents, name = relpath.split("/")
    return tuple(parents), name


#: Bytes read at a time where a file is hashed in a pass of its own.
_HASH_CHUNK = 1 << 20


def _hash_file(path: str, digest: Any) -> Any:
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest


def _hash_fd(fd: int, digest: Any) -> Any:
    offset = 0
    while chunk := os.pread(fd, _HASH_CHUNK, offset):
        digest.update(chunk)
        offset += len(chunk)
    return digest


def fsspec_callback(target: TransferCallback) -> Any:
    """An fsspec ``Callback`` for fsspec's own transfers, whose progress lands in ``target``."""
    return _relay()(target)


@functools.cache
def _relay() -> Any:
    """The adapter's class, made once, when the first fsspec transfer needs it (fsspec
    is imported by then; the native engine never imports it)."""
    from fsspec.callbacks import Callback

    class Relay(Callback):
        def __init__(self, target: TransferCallback) -> None:
            super().__init__()
            self.target = target

        def call(self, *args: object, **kwargs: object) -> None:
            delta = self.value - self.target.reported
            if delta > 0:
                self.target.relative_update(delta)

    return Relay
