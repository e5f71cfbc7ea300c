"""One driver for every object store's downloads and uploads, over a small protocol
each store's module implements.

A store says how to make its requests: an object's first range, and a range
pinned to the version that first answer came from (:class:`Reader`); one
request for a small file, and a large file's upload begun, sent part by part,
completed or aborted (:class:`Writer`, :class:`Upload`).  Everything else is
decided here, once for all of them: the range and part sizes
(:class:`~copilot.storage.sizes.TransferLimits` over the store's own), how many
run at once, the retry of one range or part, the version pin on every range
after the first, the byte budget, the digests fed in file order, and the abort
of a failed or cancelled upload (a failed abort a warning, the first cause the
error).  The S3, GCS and Azure modules serve the fsspec engine with it; the
obstore engine downloads with it too (obstore uploads in parts itself).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from copilot.storage.chunked import (
    PARTS_IN_FLIGHT,
    WINDOW_COST,
    ByteBudget,
    FileWindow,
    ObjectChanged,
    ShortRead,
    Tee,
    again,
    all_or_none,
    hash_span,
    read_file,
    undone_on_failure,
    write_at,
    write_whole,
)
from copilot.storage.errors import http_status
from copilot.storage.files import LocalSource, read_fd
from copilot.storage.retry import is_transient
from copilot.storage.sizes import DEFAULT_LIMITS, TransferLimits

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from copilot.storage.callback import TransferCallback
    from copilot.storage.retry import RetryPolicy

#: Bytes read from disk at a time for a streamed upload (:attr:`Writer.streamed`).
STREAM_CHUNK = 1 << 20


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
    #: The version this answer came from (an ETag, a GCS generation): every later
    #: range is read from it and no other.
    version: str | None = None


class Reader(Protocol):
    """How one store reads one object in ranges."""

    #: The store's own range size (a ``TransferLimits.range_size`` overrides it).
    range_size: int
    #: Ranges of one object in flight at once.
    ranges_in_flight: int
    #: The longest a range may be (None: any); a client that splits a long range
    #: into requests of its own is kept to one request per range.
    longest: int | None

    def first(self, step: int) -> AbstractAsyncContextManager[FirstRange]:
        """Ask for bytes ``0..step-1`` (all of an empty object, which has no byte 0)."""
        ...

    def read(
        self, start: int, end: int, version: str | None
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """Bytes ``start..end`` (inclusive) of ``version``: an object replaced since
        answers 412 (or 404), never another version's bytes."""
        ...


class Upload(Protocol):
    """A large file's upload, begun."""

    async def part(self, number: int, offset: int, body: FileWindow | AsyncIterator[bytes]) -> Any:
        """Send part ``number`` (from 1) at ``offset``; what it returns goes to
        :meth:`complete`."""
        ...

    async def complete(self, parts: list[Any]) -> None:
        """Make the object of every part sent, in order."""
        ...

    async def abort(self) -> None:
        """Remove what was sent (after a failure or a cancellation)."""
        ...


class Writer(Protocol):
    """How one store writes one object."""

    #: The object, for a warning (``s3://bucket/key``).
    where: str
    #: The store's own part size, and the most sent in one request (a
    #: ``TransferLimits.part_size`` overrides it).
    part_size: int
    #: The most parts an upload may have (larger parts when a file needs more).
    max_parts: int
    #: Parts of one file in flight at once.
    parts_in_flight: int
    #: A large file goes as one streamed request (part 1, the whole file read as
    #: it is sent, ``STREAM_CHUNK`` at a time) rather than in parts.
    streamed: bool

    async def whole(self, data: bytes) -> Any:
        """Send a small file's bytes in one request."""
        ...

    async def begin(self, size: int) -> Upload:
        """Start the upload of a large file of ``size`` bytes."""
        ...


async def get(
    reader: Reader,
    lpath: str,
    callback: TransferCallback | None,
    retry: RetryPolicy | None,
    sha256: Any = None,
    limits: TransferLimits = DEFAULT_LIMITS,
) -> int:
    """Download the object ``reader`` reads to ``lpath`` (every byte fed to
    ``sha256`` in order): its first range, the rest in ranges of the version that
    first answer came from.  Returns the bytes written."""
    step = limits.ranges(reader.range_size)
    async with reader.first(step) as first:
        version = first.version
        if callback is not None:
            callback.size(first.size)

        def pinned(start: int, end: int) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
            return reader.read(start, end, version)

        return await download(
            lpath,
            first,
            pinned,
            callback,
            step=step,
            retry=retry,
            in_flight=reader.ranges_in_flight,
            sha256=sha256,
            longest=reader.longest,
        )


async def put(
    writer: Writer,
    source: LocalSource,
    budget: ByteBudget,
    callback: TransferCallback | None,
    retry: RetryPolicy | None,
    digest: Any = None,
    limits: TransferLimits = DEFAULT_LIMITS,
) -> int:
    """Upload an open file with ``writer`` (its bytes fed to ``digest`` as they are
    read): in one request when it fits in a part, otherwise begun, sent in parts
    (or streamed) and completed, aborted when that fails or is cancelled.  Returns
    the bytes sent."""
    size = source.size
    part = limits.parts(writer.part_size)
    if not writer.streamed:
        part = part_size(size, writer.max_parts, part)
    if size <= part:
        return await send_whole(source, size, budget, writer.whole, callback, digest)
    upload = await writer.begin(size)
    async with undone_on_failure(upload.abort, writer.where):
        if writer.streamed:
            # One request, read as it is sent: a chunk and what the socket holds.
            await budget.acquire(WINDOW_COST)
            try:
                body = read_file(source, size, STREAM_CHUNK, digest, callback)
                parts = [await upload.part(1, 0, body)]
            finally:
                await budget.release(WINDOW_COST)
        else:
            parts = await in_parts(
                source,
                size,
                part,
                budget,
                upload.part,
                callback,
                in_flight=writer.parts_in_flight,
                retry=retry,
                digest=digest,
            )
        await upload.complete(parts)
    return size


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
            both = Tee(digest, sha256)
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
                            got += await again(
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
                    got = await again(retry, lambda: fetch(start, end), f"range {start}-{end}")
                landed[index].set()
                return got

            async def hash_in_order() -> int:
                for index, (start, stop) in enumerate(bounds):
                    await landed[index].wait()
                    await asyncio.to_thread(hash_span, fd, start, stop, sha256)
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
                    hash_span(fd, offset, offset + length, digest)
                    turns[number].set()
                result = await again(
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
