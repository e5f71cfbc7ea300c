"""The pieces every bounded-memory transfer is made of; :mod:`~copilot.storage.driver`
puts them together.

- a response body is streamed in ``READ_CHUNK`` reads straight to disk, each
  written at its offset with ``pwrite`` (:func:`write_at`);
- a part of a large upload is read from its file as it is sent
  (:class:`FileWindow`), a streamed body ``chunk`` bytes at a time
  (:func:`read_file`); every buffer is taken from one :class:`ByteBudget` per
  store, so all uploads together never hold more than the store's
  ``upload_budget``;
- concurrent ranges or parts run as one group (:func:`all_or_none`: the first
  failure cancels the rest), each retried alone (:func:`again`), and a failed
  upload is cleaned up without hiding its cause (:func:`undone_on_failure`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from copilot.constants import CLEANUP_SECONDS
from copilot.errors import Retryable, describe
from copilot.storage.errors import mark_retried
from copilot.storage.files import LocalSource

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from copilot.storage.callback import TransferCallback
    from copilot.storage.retry import RetryPolicy

T = TypeVar("T")
log = logging.getLogger("copilot")

# Sizes tuned with scripts/bench (S1 and S7): faster than the backends' own
# get_file/put_file at a fraction of their memory (docs/BENCHMARKS.md,
# "Tuning measurements").
READ_CHUNK = 4 << 20
#: Ranges or parts of one file in flight at once.
PARTS_IN_FLIGHT = 8
#: How much of a request body is handed to the socket at a time.
SEND_SLICE = 1 << 20
#: What a part sent from its file (:class:`FileWindow`) holds while in flight:
#: the slice being written and what the socket has not taken yet.
WINDOW_COST = 2 * SEND_SLICE


class ShortRead(OSError, Retryable):
    """A body that ended before its length, or did not match its checksum."""


class ObjectChanged(Exception):
    """A range pinned to the first response's version (ETag, generation) was refused:
    the object was replaced or deleted after the download began.  Fetching the
    range again cannot help; the whole object is fetched again (the store's loop)."""


class Gate:
    """Waits for a predicate on one event loop: at once, without the condition's
    lock, when it already holds and nobody is queued before (nothing runs between
    that check and the caller's next step); ``changed()`` wakes only waiters.

    Every small file of an upload asks two of these (the byte budget, its tree's
    window): the lock and the wake-ups per file were most of that cost.
    """

    def __init__(self) -> None:
        self._cond = asyncio.Condition()
        self._waiting = 0

    async def wait_until(self, ready: Callable[[], object]) -> None:
        if not self._waiting and ready():
            return
        async with self._cond:
            self._waiting += 1
            try:
                await self._cond.wait_for(ready)
            finally:
                self._waiting -= 1

    async def changed(self) -> None:
        if self._waiting:
            async with self._cond:
                self._cond.notify_all()


class ByteBudget:
    """Admits buffers in the order they ask, each when it fits under the cap (a lone
    oversize one always fits).

    Strictly in arrival order: a large request (obstore asks for a multipart
    upload's whole window, 32 MiB) waits only for what was admitted before it,
    never for small files that came after and would otherwise keep passing it.
    With nobody waiting, a request that fits is admitted at once, without a
    future or a wake-up (every small file of an upload asks once).
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.used = 0
        self._waiting: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    def _fits(self, n: int) -> bool:
        return self.used == 0 or self.used + n <= self.cap

    async def acquire(self, n: int) -> None:
        if not self._waiting and self._fits(n):
            self.used += n
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((n, turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.used -= n  # admitted, then cancelled: hand it back
            self._admit()  # whoever was behind may go now
            raise

    async def release(self, n: int) -> None:
        self.used -= n
        self._admit()

    def _admit(self) -> None:
        while self._waiting:
            n, turn = self._waiting[0]
            if turn.done():  # cancelled while waiting
                self._waiting.popleft()
                continue
            if not self._fits(n):
                return
            self._waiting.popleft()
            self.used += n
            turn.set_result(None)


async def all_or_none(jobs: Sequence[Awaitable[T]]) -> list[T]:
    """Run ``jobs`` together; the first failure cancels the others and is raised.

    (``asyncio.gather`` would leave the others running after a failure.)
    """
    tasks = [asyncio.ensure_future(j) for j in jobs]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        return [t.result() for t in tasks]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@asynccontextmanager
async def undone_on_failure(undo: Callable[[], Awaitable[Any]], what: str) -> AsyncIterator[None]:
    """Run ``undo`` (abort a multipart upload, cancel a resumable session) when the
    body fails or is cancelled, bounded by ``CLEANUP_SECONDS``.  The body's failure
    is what is raised: a clean-up that fails too is a warning (the store is often
    down for both), never the error the user is shown."""
    try:
        yield
    except BaseException:
        try:
            await asyncio.wait_for(undo(), CLEANUP_SECONDS)
        except BaseException as exc:  # noqa: BLE001 - reported, then the cause raised
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            log.warning(
                "%s: the clean-up after the failed upload failed too (%s); what was "
                "sent may stay until the store's lifecycle rule removes it",
                what,
                describe(exc)[:200],
            )
        raise


async def again(retry: RetryPolicy | None, fn: Callable[[], Awaitable[T]], what: str) -> T:
    """A range or a part under the retry policy; when it still fails, the failure
    is marked so the whole file's attempt is not retried on top (one loop)."""
    if retry is None:
        return await fn()
    try:
        return await retry.acall(fn, what)
    except Exception as exc:
        mark_retried(exc)
        raise


async def write_at(
    chunks: AsyncIterator[bytes],
    fd: int,
    offset: int,
    callback: TransferCallback | None,
    digest: Any = None,
) -> int:
    """Write every chunk to ``fd`` from ``offset`` on; returns the bytes written."""
    start = offset
    async for chunk in chunks:
        if digest is not None:
            digest.update(chunk)
        os.pwrite(fd, chunk, offset)
        offset += len(chunk)
        if callback is not None:
            callback.relative_update(len(chunk))
    return offset - start


def write_whole(body: Buffer, fd: int, callback: TransferCallback | None, digest: Any) -> int:
    """:func:`write_at` for a body read in one piece: in a Dir of small files the
    stream's per-chunk machinery would be most of the Python work per file."""
    if digest is not None:
        digest.update(body)
    view = memoryview(body)
    written = 0
    while written < len(view):  # a short write goes on (a full disk then raises)
        written += os.pwrite(fd, view[written:], written)
    if callback is not None:
        callback.relative_update(written)
    return written


class Tee:
    """Feeds every chunk to each digest given (None ones skipped)."""

    def __init__(self, *digests: Any) -> None:
        self.digests = [d for d in digests if d is not None]
        self.any = bool(self.digests)

    def update(self, data: bytes) -> None:
        for d in self.digests:
            d.update(data)


def hash_span(fd: int, start: int, end: int, digest: Any) -> None:
    """Feed bytes ``start..end-1`` of ``fd`` to ``digest``, ``READ_CHUNK`` at a time."""
    offset = start
    while offset < end:
        data = os.pread(fd, min(READ_CHUNK, end - offset), offset)
        if not data:
            raise ShortRead(f"bytes {offset}-{end - 1} are missing from the file")
        digest.update(data)
        offset += len(data)


async def read_file(
    source: LocalSource, size: int, chunk: int, digest: Any, callback: TransferCallback | None
) -> AsyncIterator[bytes]:
    """``size`` bytes of an open file as a request body fed in ``chunk`` reads: each
    fed to ``digest`` (in file order) and counted as it is handed over.  A file that
    ends early is an error, not a short body."""
    offset = 0
    while offset < size:
        data = os.pread(source.fd, min(chunk, size - offset), offset)
        if not data:
            raise OSError(f"{source.name} shrank while it was uploaded")
        if digest is not None:
            digest.update(data)
        offset += len(data)
        if callback is not None:
            callback.relative_update(len(data))
        yield data


class FileWindow:
    """Bytes ``offset .. offset+length-1`` of an open file as a request body, read
    as it is sent: a part in flight holds a slice, not its whole bytes.

    botocore reads it through ``read``/``tell``/``seek`` to sign and checksum it
    and sizes it with ``len``; aiohttp iterates it ``SEND_SLICE`` bytes at a time,
    every pass from the top (a resent request).  A file that ends inside the
    window is an error, not a short body.
    """

    def __init__(self, fd: int, offset: int, length: int, name: str) -> None:
        self.fd, self.offset, self.length, self.name = fd, offset, length, name
        self.pos = 0

    def __len__(self) -> int:
        return self.length

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.length}[whence]
        self.pos = min(max(base + offset, 0), self.length)
        return self.pos

    def _pread(self, start: int, n: int) -> bytes:
        data = os.pread(self.fd, n, self.offset + start)
        if len(data) != n:
            raise OSError(f"{self.name} shrank while it was uploaded")
        return data

    def read(self, n: int = -1) -> bytes:
        n = self.length - self.pos if n is None or n < 0 else min(n, self.length - self.pos)
        data = self._pread(self.pos, n) if n else b""
        self.pos += len(data)
        return data

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._slices()

    async def _slices(self) -> AsyncIterator[bytes]:
        for start in range(0, self.length, SEND_SLICE):
            yield self._pread(start, min(SEND_SLICE, self.length - start))
