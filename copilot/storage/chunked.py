"""What every bounded-memory transfer shares: sizes, the upload byte budget, ranged writes.

The S3, GCS and Azure modules each speak their own API, but follow one plan:

- a download streams each response body in ``READ_CHUNK`` reads straight to
  disk; an object bigger than one range (see :mod:`~copilot.storage.sizes`) is
  fetched as its first range and the rest in as few byte ranges as keep the
  streams busy (:func:`range_bounds`), each written at its offset with
  ``pwrite``, at most ``PARTS_IN_FLIGHT`` (or the store's own bound) per file;
- an upload sends a small file in one request and a large one in parts read
  from the file as they are sent (:class:`FileWindow`); every buffer is taken
  from one :class:`ByteBudget` per store, so all uploads together never hold
  more than the store's ``upload_budget``.

The sizes come with each transfer (:class:`~copilot.storage.sizes.TransferLimits`).
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from copilot.constants import CLEANUP_SECONDS
from copilot.errors import Retryable, describe
from copilot.storage.errors import http_status, mark_retried
from copilot.storage.files import LocalSource, read_fd
from copilot.storage.retry import is_transient

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


async def _again(retry: RetryPolicy | None, fn: Callable[[], Awaitable[T]], what: str) -> T:
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


class _Tee:
    """Feeds every chunk to each digest given (None ones skipped)."""

    def __init__(self, *digests: Any) -> None:
        self.digests = [d for d in digests if d is not None]
        self.any = bool(self.digests)

    def update(self, data: bytes) -> None:
        for d in self.digests:
            d.update(data)


def _hash_span(fd: int, start: int, end: int, digest: Any) -> None:
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


@dataclass
class FirstRange:
    """The answer to a download's first request, which asked for bytes ``0..step-1``."""

    #: The whole object's size.
    size: int
    #: That response's body: its chunks as they arrive, or (a small object the
    #: client read in one piece) the bytes themselves, written without a stream.
    chunks: AsyncIterator[bytes] | Buffer
    #: The body is the whole object (it fitted in one range, or the server ignored
    #: the Range header).
    whole: bool
    #: The whole object's MD5 (hex), checked when ``whole`` and known.
    md5: str | None = None


def range_bounds(
    size: int, step: int, in_flight: int, longest: int | None = None
) -> list[tuple[int, int]]:
    """``(start, stop)`` of every range of a ranged download: the first request's
    ``step`` bytes, then the rest in as few ranges as keep ``in_flight`` busy, none
    shorter than ``step``.  Fewer, longer ranges cost fewer requests (and, on a
    server that reads the whole object for every ranged GET, as moto does, far
    less work) for the same number of streams.  ``longest`` caps a range's length
    (a client that splits a long range into requests of its own, so that a
    range is one request and a failure retries one request's bytes)."""
    bounds = [(0, min(step, size))]
    rest = size - step
    if rest > 0:
        count = max(1, min(in_flight - 1, -(-rest // step)))
        length = -(-rest // count)
        if longest is not None:
            length = min(length, longest)
        bounds += [(a, min(a + length, size)) for a in range(step, size, length)]
    return bounds


async def download(
    lpath: str,
    first: FirstRange,
    open_range: Callable[[int, int], AbstractAsyncContextManager[AsyncIterator[bytes]]],
    callback: TransferCallback | None,
    *,
    step: int,
    retry: RetryPolicy | None = None,
    in_flight: int | None = None,
    sha256: Any = None,
    longest: int | None = None,
) -> int:
    """Write an object to ``lpath``: the first response's body (its first ``step``
    bytes), then the rest in ranges beside it (:func:`range_bounds`).

    ``open_range(start, end)`` requests bytes ``start..end`` (inclusive) and gives
    their body.  At most ``in_flight`` (``PARTS_IN_FLIGHT``) ranges run at once;
    one that fails transiently is fetched again under ``retry`` (the first
    response's body too: from where it broke off); one that ends short, or a
    whole body that does not match its MD5, is a :class:`ShortRead`.

    ``sha256`` (a hashlib object) is fed every byte in order: a single body as it
    streams; concurrent ranges in file order, each read back from the page cache
    as soon as it and every range before it have landed, while later ranges are
    still downloading.  Returns the bytes written.
    """
    size = first.size
    fd = os.open(lpath, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        if first.whole:
            digest = hashlib.md5(usedforsecurity=False) if first.md5 else None
            both = _Tee(digest, sha256)
            if isinstance(first.chunks, AsyncIterator):
                written = await write_at(first.chunks, fd, 0, callback, both if both.any else None)
            else:
                written = write_whole(first.chunks, fd, callback, both if both.any else None)
            if digest is not None and written == size and digest.hexdigest() != first.md5:
                raise ShortRead("checksum mismatch: the data does not match the object's MD5")
        else:
            os.ftruncate(fd, size)
            limit = in_flight or PARTS_IN_FLIGHT
            gate = asyncio.Semaphore(limit)
            bounds = range_bounds(size, step, limit, longest)
            landed = [asyncio.Event() for _ in bounds]

            on_disk = 0  # bytes of the first body written so far

            async def first_body() -> AsyncIterator[bytes]:
                nonlocal on_disk
                assert isinstance(first.chunks, AsyncIterator)  # a body read whole is whole
                async for chunk in first.chunks:
                    yield chunk
                    on_disk += len(chunk)  # asked for the next one: this one is written

            async def head() -> int:
                async with gate:
                    try:
                        got = await write_at(first_body(), fd, 0, callback)
                    except Exception as exc:
                        if retry is None or not is_transient(exc):
                            raise
                        # The first body broke off: what it did not bring is fetched
                        # as a range of its own, like any other range that fails.
                        start, end = on_disk, bounds[0][1] - 1
                        got = on_disk
                        if start <= end:
                            got += await _again(
                                retry, lambda: fetch(start, end), f"range {start}-{end}"
                            )
                landed[0].set()
                return got

            async def fetch(start: int, end: int) -> int:
                try:
                    async with open_range(start, end) as chunks:
                        got = await write_at(chunks, fd, start, callback)
                except Exception as exc:
                    # 412: the pinned version is not the live one; 404: it is gone
                    # (a pinned GCS generation, an object deleted since the first range).
                    status = http_status(exc)
                    if status in (404, 412):
                        raise ObjectChanged(f"the object changed (HTTP {status})") from None
                    raise
                if got != end - start + 1:
                    raise ShortRead(f"range {start}-{end}: received {got} bytes")
                return got

            async def one(index: int, start: int, stop: int) -> int:
                end = stop - 1
                async with gate:
                    got = await _again(retry, lambda: fetch(start, end), f"range {start}-{end}")
                landed[index].set()
                return got

            async def hash_in_order() -> int:
                for index, (start, stop) in enumerate(bounds):
                    await landed[index].wait()
                    await asyncio.to_thread(_hash_span, fd, start, stop, sha256)
                return 0

            parts = [head(), *(one(i, a, z) for i, (a, z) in enumerate(bounds) if i)]
            if sha256 is not None:
                parts.append(hash_in_order())
            written = sum(await all_or_none(parts))
    finally:
        os.close(fd)
    if written != size:
        raise ShortRead(f"expected {size} bytes, received {written}")
    return written


def part_size(size: int, max_parts: int, preferred: int) -> int:
    """The part size for a file: ``preferred``, or bigger when the
    service caps the number of parts."""
    return max(preferred, -(-size // max_parts))


async def in_parts(
    source: LocalSource,
    size: int,
    part: int,
    budget: ByteBudget,
    send: Callable[[int, int, FileWindow], Awaitable[Any]],
    callback: TransferCallback | None,
    *,
    in_flight: int | None = None,
    retry: RetryPolicy | None = None,
    digest: Any = None,
) -> list[Any]:
    """Send an open file in ``part``-sized pieces, ``send(number, offset, window)`` each;
    returns what every ``send`` returned, in order.  A part that fails
    transiently is sent again under ``retry`` (one lost part must not cost the
    whole file); at most ``in_flight`` (``PARTS_IN_FLIGHT``) are in flight.

    Each part is a :class:`FileWindow`, read while it is sent (a new one per
    attempt), and takes ``WINDOW_COST`` of ``budget`` rather than its size: held
    in memory, 16 MiB parts let two fit in the 32 MiB budget, as windows eight do.

    With ``digest`` (a hashlib object) the parts are fed to it in file order,
    read back from the page cache while earlier parts are being sent.  The
    hashing runs right here: handing it to a thread measured slower on two cores
    (GIL hand-offs; docs/BENCHMARKS.md, "Tuning measurements").  A part waits
    for its turn before it takes any budget, so waiting never holds memory
    another part needs.
    """
    gate = asyncio.Semaphore(in_flight or PARTS_IN_FLIGHT)
    fd = source.fd
    count = -(-size // part)
    turns = [asyncio.Event() for _ in range(count + 1)]
    turns[0].set()

    async def one(number: int, offset: int) -> Any:
        length = min(part, size - offset)
        cost = min(length, WINDOW_COST)
        async with gate:
            if digest is not None:
                await turns[number - 1].wait()
            await budget.acquire(cost)
            try:
                if digest is not None:
                    _hash_span(fd, offset, offset + length, digest)
                    turns[number].set()
                result = await _again(
                    retry,
                    lambda: send(number, offset, FileWindow(fd, offset, length, source.name)),
                    f"part {number}",
                )
            finally:
                await budget.release(cost)
        if callback is not None:
            callback.relative_update(length)
        return result

    offsets = enumerate(range(0, size, part), start=1)
    return await all_or_none([one(number, offset) for number, offset in offsets])


async def send_whole(
    source: LocalSource,
    size: int,
    budget: ByteBudget,
    send: Callable[[bytes], Awaitable[Any]],
    callback: TransferCallback | None,
    digest: Any = None,
) -> int:
    """Send a small file in one request: its bytes are read whole, counted in the
    budget while the request runs (and fed to ``digest``).  Returns the bytes sent."""
    await budget.acquire(size)
    try:
        data = read_fd(source.fd, size)  # to its end, whatever ``size`` said
        if digest is not None:
            digest.update(data)
        await send(data)
    finally:
        await budget.release(size)
    if callback is not None:
        callback.relative_update(len(data))
    return len(data)
