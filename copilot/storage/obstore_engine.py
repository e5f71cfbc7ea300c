"""The native engine: obstore (Python bindings of the Rust ``object_store``) for S3 and
Azure Blob.

The bytes move on obstore's Rust runtime, outside the GIL; Python sees one
call per request and the chunks it writes to disk.  Measured against the
fsspec engine (docs/BENCHMARKS.md), a process that imports it, builds a client
and reads one small object takes a tenth of the CPU s3fs needs, and a large
transfer a third of the CPU at a fifth of the memory.

The plan is :mod:`copilot.storage.chunked`'s, as for every object store: a
download is its first range, then the rest in ranges beside it pinned to the
first response's ETag, each streamed to its offset; a small upload is one PUT.
A large upload is obstore's multipart writer fed from the file as it is read
(the SHA-256 taken on the way), its memory taken from the store's byte budget;
cancelled, it is made to fail so that obstore aborts it (:func:`_abortable`),
and a failure whose abort failed too is reported as the upload's
(:class:`MultipartFailed`).

Retries: copilot's loop (:mod:`copilot.storage.retry`) is the only one around
every request but the parts of a multipart upload.  obstore has no
part-by-part API, so there its own per-request retry runs instead, configured
from the same policy (attempts, back-off, patience), and copilot does not
retry the upload again on top (the failure is marked as retried).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import obstore
from obstore.store import AzureStore, S3Store

from copilot.constants import CLEANUP_SECONDS
from copilot.errors import StorageError, describe
from copilot.storage import chunked, driver
from copilot.storage.client import RemoteEntry
from copilot.storage.errors import mark_retried, unsatisfiable_range
from copilot.storage.loop import event_loop
from copilot.storage.sizes import DEFAULT_LIMITS, RANGE_SIZE, TransferLimits

if TYPE_CHECKING:
    from obstore.store import RetryConfig

    from copilot.storage.callback import TransferCallback
    from copilot.storage.chunked import ByteBudget
    from copilot.storage.files import LocalSource
    from copilot.storage.retry import RetryPolicy

log = logging.getLogger("copilot")

#: Objects listed per page: what a listing holds in memory at a time.
LIST_PAGE = 1000
#: Ranges of one object downloaded at once (the rest of the object is split into
#: as few ranges as keep them busy, see driver.range_bounds).
RANGES_IN_FLIGHT = 4
#: Bytes obstore gathers before handing a chunk of a response to Python.
STREAM_CHUNK = 1 << 20
#: Part size of a multipart upload (bigger when the service caps the number of
#: parts), and parts in flight per file: obstore holds each part whole while it
#: is sent, so one upload costs (parts in flight + 1) x part size of the budget.
PART_SIZE = 8 << 20
PARTS_IN_FLIGHT = 3
#: The services' own caps on parts per upload.
MAX_PARTS = {"s3": 10_000, "azure": 50_000}
#: HTTP client settings: a stalled connection is noticed within ``read_timeout``;
#: a whole request may take long (a 64 MiB range under a throttled CPU), bounded
#: in the end by the step's ``--timeout``.
CLIENT_OPTIONS: dict[str, Any] = {
    "connect_timeout": "10s",
    "read_timeout": "60s",
    "timeout": "30m",
}


class ObstoreClient:
    """One protocol's buckets (or containers) through obstore: a store per bucket,
    made on first use, with obstore's own retries off."""

    engine = "obstore"

    def __init__(
        self,
        protocol: str,
        kind: str,
        options: dict[str, Any],
        *,
        ca_certificates: str = "",
        upload_concurrency: int | None = None,
    ) -> None:
        self.protocol = protocol
        self.kind = kind
        # The store's own options, with the HTTP client's timeouts and a private CA
        # (trusted besides the system's roots).
        client = {**CLIENT_OPTIONS, **options.get("client_options", {})}
        if ca_certificates:
            client["root_certificate"] = ca_certificates
        self.options = {**options, "client_options": client}
        self.parts_in_flight = max(1, min(upload_concurrency or PARTS_IN_FLIGHT, 8))
        self.loop = event_loop()
        self._stores: dict[tuple[str, int, float], Any] = {}
        self._lock = threading.Lock()

    # -- addressing ------------------------------------------------------------

    def path(self, uri: str) -> str:
        """``bucket/key`` for ``s3://bucket/key``; ``container/blob`` for
        ``abfs://container/blob`` and ``abfs://container@account.host/blob``.  The
        key is taken as it is: an object store key may hold ``?`` and ``#``, which a
        URL parser would cut off as a query or a fragment."""
        rest = uri.split("://", 1)[1] if "://" in uri else uri
        netloc, _, key = rest.partition("/")
        return f"{netloc.split('@', 1)[0]}/{key}"

    @staticmethod
    def _split(path: str) -> tuple[str, str]:
        bucket, _, key = path.partition("/")
        return bucket, key

    def _store(self, bucket: str, retries: int = 0, policy: RetryPolicy | None = None) -> Any:
        if not bucket:
            raise StorageError(f"{self.protocol}:// URI without a bucket", retryable=False)
        patience = policy.patience if policy is not None and retries else 0.0
        with self._lock:
            store = self._stores.get((bucket, retries, patience))
            if store is None:
                retry: RetryConfig = {"max_retries": retries}
                if policy is not None and retries:
                    retry["backoff"] = {
                        "init_backoff": timedelta(seconds=policy.base),
                        "max_backoff": timedelta(seconds=policy.cap),
                        "base": 2,
                    }
                if policy is not None and patience > 0:
                    # The same policy as copilot's loop: past the attempts, retried
                    # until the failures have gone on for ``patience`` seconds.
                    retry["max_retries"] = max(retries, int(patience / policy.base) + 1)
                    retry["retry_timeout"] = timedelta(seconds=patience)
                opts = dict(self.options)
                if self.kind == "s3":
                    if opts.get("virtual_hosted_style_request") and opts.get("endpoint"):
                        # object_store takes the bucket's own host as the endpoint.
                        scheme, _, host = opts["endpoint"].partition("://")
                        opts["endpoint"] = f"{scheme}://{bucket}.{host}"
                    store = S3Store(bucket, retry_config=retry, **opts)
                else:
                    store = AzureStore(bucket, retry_config=retry, **opts)
                self._stores[(bucket, retries, patience)] = store
            return store

    # -- small objects -----------------------------------------------------------

    async def read(self, path: str, start: int | None = None, end: int | None = None) -> bytes:
        bucket, key = self._split(path)
        store = self._store(bucket)
        if end is None:
            options: Any = {"range": {"offset": start}} if start else None
            resp = await obstore.get_async(store, key, options=options)
            return bytes(await resp.bytes_async())
        data = await obstore.get_range_async(store, key, start=start or 0, end=end)
        return bytes(data)

    async def write(self, path: str, data: bytes) -> None:
        bucket, key = self._split(path)
        await obstore.put_async(self._store(bucket), key, data, use_multipart=False)

    async def delete(self, path: str) -> None:
        bucket, key = self._split(path)
        await obstore.delete_async(self._store(bucket), key)

    async def _head(self, path: str) -> Any:
        bucket, key = self._split(path)
        if not key:
            return None
        try:
            return await obstore.head_async(self._store(bucket), key)
        except FileNotFoundError:
            return None

    async def exists(self, path: str) -> bool:
        return await self._head(path) is not None

    async def size(self, path: str) -> int | None:
        meta = await self._head(path)
        if meta is None:
            raise FileNotFoundError(path)
        return int(meta["size"])

    async def is_file(self, path: str) -> bool:
        return await self._head(path) is not None

    async def listing(
        self, path: str, uri: str, after: str | None = None
    ) -> AsyncIterator[list[RemoteEntry]]:
        """The objects under ``path`` a page at a time (obstore streams the service's
        own pages: nothing is held for the whole tree), in key order, from the one
        after ``after`` (a relative path) when given."""
        bucket, key = self._split(path)
        prefix = key.strip("/")
        base = uri.rstrip("/")
        offset = None if after is None else (f"{prefix}/{after}" if prefix else after)
        stream = obstore.list(
            self._store(bucket), prefix or None, offset=offset, chunk_size=LIST_PAGE
        )
        found = after is not None
        async for page in stream:
            entries = []
            for meta in page:
                name = meta["path"]
                rel = name[len(prefix) + 1 :] if prefix else name
                if not rel:
                    continue
                entries.append(RemoteEntry(rel, f"{base}/{rel}", meta["size"]))
            found = found or bool(entries)
            yield entries
        if not found and prefix:
            meta = await self._head(path)
            if meta is not None:  # the path is an object itself
                yield [RemoteEntry(prefix.rsplit("/", 1)[-1], base, meta["size"])]

    # -- transfers -----------------------------------------------------------------

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
        bucket, key = self._split(path)
        reader = _Reader(self._store(bucket), key, size)
        return await driver.get(reader, lpath, callback, retry, sha256, limits)

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
        bucket, key = self._split(path)
        size = source.size
        part = driver.part_size(size, MAX_PARTS[self.kind], limits.parts(PART_SIZE))
        if size <= part:
            store = self._store(bucket)

            async def put(data: bytes) -> Any:
                return await obstore.put_async(store, key, data, use_multipart=False)

            return await driver.send_whole(source, size, budget, put, callback, digest)
        store = self._store(bucket, retries=max(0, retry.attempts - 1), policy=retry)
        cost = part * (self.parts_in_flight + 1)
        await budget.acquire(cost)
        try:
            body = chunked.read_file(source, size, chunked.READ_CHUNK, digest, callback)
            put = partial(
                obstore.put_async,
                store,
                key,
                chunk_size=part,
                max_concurrency=self.parts_in_flight,
            )
            await _abortable(put, body)
        except Exception as exc:
            if _abort_failed(exc):
                log.warning("aborting a failed multipart upload failed too: %s", str(exc)[:300])
                raise mark_retried(MultipartFailed(exc)) from exc
            raise mark_retried(exc) from None
        finally:
            await budget.release(cost)
        return size

    def close(self) -> None:
        with self._lock:
            self._stores.clear()


class UploadStopped(Exception):
    """The body of a multipart upload that was cancelled: obstore sees its body fail
    and aborts the upload."""


async def _abortable(
    put: Callable[[AsyncIterator[bytes]], Awaitable[Any]], body: AsyncIterator[bytes]
) -> None:
    """Run obstore's multipart ``put`` of ``body``; when cancelled, have obstore abort it.

    Dropping obstore's future (what cancelling it does) leaves the upload's parts
    on the service: obstore aborts a multipart upload only when it fails.  So a
    cancellation (SIGTERM, the deadline, a sibling's failure) is turned into a
    failure: the body fails on its next read, and obstore aborts the upload,
    within ``CLEANUP_SECONDS`` (parts in flight finish first; past that the
    future is dropped after all).  Then the cancellation goes on.
    """
    stopped = False

    async def stoppable() -> AsyncIterator[bytes]:
        async for chunk in body:
            if stopped:
                raise UploadStopped("the upload was cancelled")
            yield chunk

    task = asyncio.ensure_future(put(stoppable()))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        stopped = True
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, CLEANUP_SECONDS)
        raise


class MultipartFailed(Exception):
    """A multipart upload that failed, when obstore reports only the abort after it.

    obstore aborts a failed multipart upload itself and, when that DELETE fails
    too (the store stopped answering), raises the abort's error in place of the
    part's.  The abort is a clean-up (a warning where it is raised), and the error is
    the upload's, with the abort's underlying reason as the best clue obstore
    leaves to why the part failed."""

    def __init__(self, abort: BaseException) -> None:
        text = str(abort)
        reason = text.rsplit(" - ", 1)[-1] if " - " in text else describe(abort)
        reason = (reason.strip().splitlines() or ["no reason given"])[0]
        super().__init__(
            f"a part of the multipart upload failed (obstore does not say why; the "
            f"abort after it failed with: {reason}); its parts stay until the "
            f"bucket's lifecycle rule removes them"
        )


def _abort_failed(exc: BaseException) -> bool:
    """Whether obstore's error is its abort of a multipart upload (S3's
    ``DELETE …?uploadId=``), not the request that failed first."""
    text = str(exc)
    return "Error performing DELETE" in text and "uploadId=" in text


class _Reader:
    """One object of an obstore store, to download (a :class:`~copilot.storage.driver.Reader`)."""

    range_size = RANGE_SIZE
    ranges_in_flight = RANGES_IN_FLIGHT
    longest: int | None = None

    def __init__(self, store: Any, key: str, size: int | None) -> None:
        #: ``size``: what a listing said, if one did.
        self.store, self.key, self.size = store, key, size

    @asynccontextmanager
    async def first(self, step: int) -> AsyncIterator[driver.FirstRange]:
        store, key = self.store, self.key
        if self.size is not None and self.size <= step:
            # Known to fit in one response (a listing said so): one plain GET.
            resp = await obstore.get_async(store, key)
        else:
            try:
                resp = await obstore.get_async(store, key, options={"range": (0, step)})
            except Exception as exc:
                # An empty object has no byte 0: the stores answer 416 to the range;
                # some servers (rclone) answer a range past the end with all of it.
                if not (unsatisfiable_range(exc) or "non-partial response" in str(exc)):
                    raise
                resp = await obstore.get_async(store, key)
        size = int(resp.meta["size"])
        etag = resp.meta.get("e_tag")
        whole = resp.range[1] >= size  # all of it in this one response
        if whole and size <= STREAM_CHUNK:
            # A small object (by what the response says, not the listing): its body in
            # one piece, one hand-off from the Rust runtime instead of a stream's two
            # or more; in a Dir of small files those hand-offs are most of the work.
            yield driver.FirstRange(size, await resp.bytes_async(), whole, version=etag)
        else:
            yield driver.FirstRange(size, _chunks(resp), whole, version=etag)

    @asynccontextmanager
    async def read(
        self, start: int, end: int, version: str | None
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        options: Any = {"range": (start, end + 1)}
        if version:
            options["if_match"] = version
        yield _chunks(await obstore.get_async(self.store, self.key, options=options))


async def _chunks(resp: Any) -> AsyncIterator[bytes]:
    async for chunk in resp.stream(min_chunk_size=STREAM_CHUNK):
        yield chunk
