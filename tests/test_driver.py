"""The one get/put driver (copilot.storage.driver) over a store in memory: what it
promises every store whatever its API — later ranges pinned to the first answer's
version, a large upload begun, sent and completed (or aborted on failure or
cancellation, a failed abort never the error), the sizes from the limits.

Each real store's reader and writer are tested against its server in
test_transfers.py; these check the driver's rules alone, fast.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from copilot.storage import driver
from copilot.storage.chunked import ByteBudget, FileWindow
from copilot.storage.files import LocalSource
from copilot.storage.retry import RetryPolicy
from copilot.storage.sizes import TransferLimits


async def _pieces(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        await asyncio.sleep(0)
        yield data[start : start + size]


class MemoryObject:
    """An object in memory that can be replaced, read in ranges by version."""

    range_size = 1 << 20
    ranges_in_flight = 3
    longest: int | None = None

    def __init__(self, data: bytes, version: str = "v1") -> None:
        self.data, self.version = data, version
        self.asked: list[tuple[int, int, str | None]] = []

    @asynccontextmanager
    async def first(self, step: int) -> AsyncIterator[driver.FirstRange]:
        body = self.data[:step]
        whole = len(self.data) <= step
        yield driver.FirstRange(len(self.data), _pieces(body), whole, version=self.version)

    @asynccontextmanager
    async def read(
        self, start: int, end: int, version: str | None
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        self.asked.append((start, end, version))
        if version != self.version:
            raise PreconditionFailed()
        yield _pieces(self.data[start : end + 1])


class PreconditionFailed(Exception):
    """What a store answers to a range of a version it no longer has (412)."""

    status = 412


def test_every_range_after_the_first_is_read_from_the_first_answers_version(
    tmp_path: Path,
) -> None:
    data = os.urandom(1000)
    obj = MemoryObject(data, version='"etag-1"')
    target = tmp_path / "x"
    digest = hashlib.sha256()
    limits = TransferLimits(range_size=100)
    got = asyncio.run(driver.get(obj, str(target), None, None, digest, limits))
    assert got == 1000 and target.read_bytes() == data
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert obj.asked and {v for _, _, v in obj.asked} == {'"etag-1"'}
    # The ranges after the first cover the rest of the object exactly once.
    covered = sorted((a, z) for a, z, _ in obj.asked)
    assert covered[0][0] == 100 and covered[-1][1] == 999
    assert all(b[0] == a[1] + 1 for a, b in zip(covered, covered[1:], strict=False))


def test_an_object_replaced_after_its_first_range_is_refused_not_mixed(tmp_path: Path) -> None:
    from copilot.storage.chunked import ObjectChanged

    obj = MemoryObject(os.urandom(1000))
    real_first = obj.first

    @asynccontextmanager
    async def then_replaced(step: int) -> AsyncIterator[driver.FirstRange]:
        async with real_first(step) as first:
            obj.data, obj.version = os.urandom(1000), "v2"  # replaced meanwhile
            yield first

    obj.first = then_replaced  # type: ignore[method-assign]
    with pytest.raises(ObjectChanged, match="HTTP 412"):
        asyncio.run(
            driver.get(obj, str(tmp_path / "x"), None, None, None, TransferLimits(range_size=100))
        )


class MemoryWriter:
    """A store that keeps what it is sent; parts may fail, the abort too."""

    part_size = 100
    max_parts = 1000
    parts_in_flight = 2
    where = "mem://bucket/key"

    def __init__(
        self, *, streamed: bool = False, fail_part: int = 0, abort_fails: bool = False
    ) -> None:
        self.streamed = streamed
        self.fail_part, self.abort_fails = fail_part, abort_fails
        self.object: bytes | None = None
        self.calls: list[str] = []
        self.parts: dict[int, bytes] = {}

    async def whole(self, data: bytes) -> None:
        self.calls.append("whole")
        self.object = bytes(data)

    async def begin(self, size: int) -> MemoryWriter:
        self.calls.append(f"begin {size}")
        return self

    async def part(self, number: int, offset: int, body: FileWindow | AsyncIterator[bytes]) -> int:
        if number == self.fail_part:
            raise PermissionError(f"part {number} refused")
        if isinstance(body, FileWindow):
            data = body.read()
        else:
            data = b"".join([chunk async for chunk in body])
        self.parts[number] = data
        return number

    async def complete(self, parts: list[Any]) -> None:
        self.calls.append(f"complete {parts}")
        self.object = b"".join(self.parts[n] for n in parts)

    async def abort(self) -> None:
        self.calls.append("abort")
        if self.abort_fails:
            raise ConnectionError("the store went away")


def _put(writer: MemoryWriter, path: Path, limits: TransferLimits | None = None) -> tuple[int, str]:
    digest = hashlib.sha256()

    async def go() -> int:
        fd = os.open(path, os.O_RDONLY)
        try:
            source = LocalSource(fd, path.stat().st_size, str(path))
            return await driver.put(
                writer,
                source,
                ByteBudget(1 << 20),
                None,
                RetryPolicy(attempts=1),
                digest,
                limits or TransferLimits(),
            )
        finally:
            os.close(fd)

    return asyncio.run(go()), digest.hexdigest()


@pytest.mark.parametrize("streamed", [False, True])
def test_a_large_file_is_begun_sent_and_completed_a_small_one_sent_whole(
    tmp_path: Path, streamed: bool
) -> None:
    small, large = tmp_path / "small", tmp_path / "large"
    small.write_bytes(b"x" * 100)
    large.write_bytes(os.urandom(1050))
    writer = MemoryWriter(streamed=streamed)
    assert _put(writer, small)[0] == 100
    assert writer.calls == ["whole"] and writer.object == b"x" * 100

    writer = MemoryWriter(streamed=streamed)
    sent, digest = _put(writer, large)
    assert sent == 1050 and writer.object == large.read_bytes()
    assert digest == hashlib.sha256(large.read_bytes()).hexdigest()
    expected = [1] if streamed else list(range(1, 12))  # 100-byte parts, or one stream
    assert writer.calls == ["begin 1050", f"complete {expected}"]


def test_the_limits_part_size_overrides_the_stores_and_max_parts_makes_parts_bigger(
    tmp_path: Path,
) -> None:
    large = tmp_path / "large"
    large.write_bytes(os.urandom(1000))
    writer = MemoryWriter()
    _put(writer, large, TransferLimits(part_size=250))
    assert writer.calls[-1] == "complete [1, 2, 3, 4]"
    writer = MemoryWriter()
    writer.max_parts = 2
    _put(writer, large)
    assert writer.calls[-1] == "complete [1, 2]" and writer.object == large.read_bytes()


def test_a_failed_part_aborts_the_upload_and_is_the_error(tmp_path: Path) -> None:
    large = tmp_path / "large"
    large.write_bytes(os.urandom(1000))
    writer = MemoryWriter(fail_part=3)
    with pytest.raises(PermissionError, match="part 3 refused"):
        _put(writer, large)
    assert writer.calls == ["begin 1000", "abort"] and writer.object is None


def test_a_failed_abort_is_a_warning_and_the_first_cause_is_the_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    large = tmp_path / "large"
    large.write_bytes(os.urandom(1000))
    writer = MemoryWriter(fail_part=2, abort_fails=True)
    with (
        caplog.at_level(logging.WARNING, logger="copilot"),
        pytest.raises(PermissionError, match="part 2 refused"),
    ):
        _put(writer, large)
    assert "mem://bucket/key" in caplog.text and "the store went away" in caplog.text


def test_a_cancelled_upload_is_aborted(tmp_path: Path) -> None:
    large = tmp_path / "large"
    large.write_bytes(os.urandom(1000))
    writer = MemoryWriter()
    sending = asyncio.Event()
    real_part = writer.part

    async def slow_part(number: int, offset: int, body: Any) -> int:
        sending.set()
        await asyncio.sleep(3600)
        return await real_part(number, offset, body)

    writer.part = slow_part  # type: ignore[method-assign]

    async def go() -> None:
        fd = os.open(large, os.O_RDONLY)
        try:
            source = LocalSource(fd, 1000, str(large))
            task = asyncio.ensure_future(
                driver.put(writer, source, ByteBudget(1 << 20), None, None, None)
            )
            await sending.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            os.close(fd)

    asyncio.run(go())
    assert writer.calls == ["begin 1000", "abort"] and writer.object is None


class _AnyFs:
    """Enough of an fsspec filesystem for a store's reader and writer to be made."""

    max_concurrency = None

    def split_path(self, path: str) -> tuple[str, str, None]:
        bucket, _, key = path.partition("/")
        return bucket, key, None

    class service_client:  # noqa: N801 - adlfs's attribute
        @staticmethod
        def get_blob_client(container: str, blob: str) -> object:
            return object()


def test_every_store_the_fsspec_engine_moves_bytes_for_has_a_reader_and_a_writer() -> None:
    """The backends table's ``bounded`` rows are served by the driver: their module
    answers ``reader(fs, path)`` and ``writer(fs, path)`` with what the driver uses."""
    import importlib

    from copilot.storage.backends import BACKENDS

    bounded = [b for b in BACKENDS.values() if b.bounded]
    assert {b.protocol for b in bounded} == {"s3", "gs", "abfs"}
    for backend in bounded:
        module = importlib.import_module(backend.module)
        reader = module.reader(_AnyFs(), "bucket/key")
        writer = module.writer(_AnyFs(), "bucket/key")
        assert reader.range_size > 0 and reader.ranges_in_flight > 0, backend.module
        assert reader.longest is None or reader.longest > 0, backend.module
        assert callable(reader.first) and callable(reader.read), backend.module
        assert writer.part_size > 0 and writer.max_parts > 0, backend.module
        assert writer.parts_in_flight > 0 and isinstance(writer.streamed, bool), backend.module
        assert callable(writer.whole) and callable(writer.begin), backend.module
        assert writer.where == f"{backend.protocol}://bucket/key", backend.module
