"""S3 transfers in bounded memory (the plan is in :mod:`copilot.storage.chunked`).

s3fs's own ``_get_file`` / ``_put_file`` hold whole parts in memory (up to ten
50 MiB parts at once, and a whole file under 100 MiB for a single PUT), so a
large object or many medium ones can use gigabytes.  Requests here go through
s3fs's ``_call_s3``, which keeps its session, credentials and botocore's
single-request retry.
"""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from copilot.storage import chunked
from copilot.storage.chunked import ByteBudget
from copilot.storage.errors import unsatisfiable_range

if TYPE_CHECKING:
    from copilot.storage.callback import TransferCallback
    from copilot.storage.retry import RetryPolicy

MAX_PARTS = 10_000
#: Ranges of one object downloaded at once (the rest of the object is split into
#: as few ranges as keep them busy, see chunked.range_bounds).  Measured with a
#: 512 MiB object against moto (scripts/bench, S1): 8 in flight 4.5-4.8 s, 4 in
#: flight 3.0-3.2 s, 3 in flight 3.3-3.6 s; 75 MB peak.  Under Flyte's 500m CPU,
#: four streams are more than the process can read anyway.
RANGES_IN_FLIGHT = 4


class _Slices:
    """A request body aiohttp sends ``chunked.SEND_SLICE`` bytes at a time, uncopied.

    botocore wraps a bytes ``Body`` in a ``BytesIO`` that shares it, and aiohttp
    copies that whole (its ``getbuffer()`` un-shares it); handed the bytes
    themselves, Python 3.11's transport copies what the socket did not take,
    twice.  Either way: one more copy per body in flight (measured: 132 MB peak
    for a 256 MiB upload in 16 MiB bytes parts, 100 MB in slices).  A small file
    sent in one request is such a body; parts are sent from their file
    (:class:`chunked.FileWindow`).  botocore may send a request again: every
    ``async for`` starts from the top (``seek(0)`` is what botocore calls first).
    """

    def __init__(self, data: bytes) -> None:
        self.view = memoryview(data)

    def __aiter__(self) -> AsyncIterator[memoryview]:
        return self._slices()

    async def _slices(self) -> AsyncIterator[memoryview]:
        for start in range(0, len(self.view), chunked.SEND_SLICE):
            yield self.view[start : start + chunked.SEND_SLICE]

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0


def _sliced_body(request: Any, **_: Any) -> None:
    """botocore's ``before-send``: a whole in-memory body (a part, a small file) goes
    out in slices.  By now it is signed and checksummed, so only how it is written
    changes.  Over TLS botocore streams it with a trailing checksum already (not
    ``bytes``), and it is left alone.  Returns None: a value would be taken as
    the response."""
    body = getattr(request, "body", None)
    if type(body) is io.BytesIO and body.tell() == 0:
        body = body.getvalue()  # the bytes it shares: no copy
    if type(body) is bytes and len(body) > chunked.SEND_SLICE:
        request.body = _Slices(body)


async def _client(fs: Any, bucket: str) -> None:
    """Make sure the client that serves ``bucket`` sends part bodies uncopied."""
    await fs.set_session()
    client = await fs.get_s3(bucket)
    if not getattr(client, "_copilot_bytes_body", False):
        client.meta.events.register("before-send.s3", _sliced_body)
        client._copilot_bytes_body = True


def _split(path: str) -> tuple[str, str]:
    bucket, _, key = path.partition("/")
    return bucket, key


async def _chunks(body: Any) -> AsyncIterator[bytes]:
    try:
        while chunk := await body.read(chunked.READ_CHUNK):
            yield chunk
    finally:
        body.close()


async def _first_range(fs: Any, bucket: str, key: str) -> tuple[dict, int]:
    """GET the object's first range; returns the response and the object's whole size.

    Asking for a range up front means a big object is never streamed whole only
    to be dropped: the first range is kept and the rest fetched beside it.  An
    empty object has no byte 0, so S3 answers 416; that one is fetched plainly.
    """
    try:
        resp = await fs._call_s3(
            "get_object", Bucket=bucket, Key=key, Range=f"bytes=0-{chunked.RANGE_SIZE - 1}"
        )
    except Exception as exc:
        if not unsatisfiable_range(exc):
            raise
        resp = await fs._call_s3("get_object", Bucket=bucket, Key=key)
    content_range = str(resp.get("ContentRange") or "")
    if "/" in content_range and content_range.rsplit("/", 1)[1].isdigit():
        return resp, int(content_range.rsplit("/", 1)[1])
    return resp, int(resp.get("ContentLength") or 0)


async def get_file(
    fs: Any,
    path: str,
    lpath: str,
    callback: TransferCallback | None = None,
    retry: RetryPolicy | None = None,
    sha256: Any = None,
) -> int:
    """Download ``bucket/key`` to ``lpath`` (every byte fed to ``sha256`` in order);
    returns the bytes written."""
    bucket, key = _split(path)
    resp, size = await _first_range(fs, bucket, key)
    # A whole object in one response: its MD5 ETag (when it is one) still applies.
    whole = size <= chunked.RANGE_SIZE
    first = chunked.FirstRange(size, _chunks(resp["Body"]), whole, _md5_etag(resp))

    @asynccontextmanager
    async def open_range(start: int, end: int) -> AsyncIterator[AsyncIterator[bytes]]:
        part = await fs._call_s3("get_object", Bucket=bucket, Key=key, Range=f"bytes={start}-{end}")
        yield _chunks(part["Body"])

    return await chunked.download(
        lpath,
        first,
        open_range,
        callback,
        step=chunked.RANGE_SIZE,
        retry=retry,
        in_flight=RANGES_IN_FLIGHT,
        sha256=sha256,
    )


def _md5_etag(resp: dict) -> str | None:
    """The object's MD5, when its ETag is one (single-part, not SSE-KMS or SSE-C)."""
    etag = str(resp.get("ETag") or "").strip('"')
    if resp.get("ServerSideEncryption") == "aws:kms" or resp.get("SSECustomerAlgorithm"):
        return None
    if len(etag) == 32 and all(c in "0123456789abcdef" for c in etag.lower()):
        return etag.lower()
    return None


async def put_file(
    fs: Any,
    lpath: str,
    path: str,
    budget: ByteBudget,
    callback: TransferCallback | None = None,
    retry: RetryPolicy | None = None,
    digest: Any = None,
) -> int:
    """Upload ``lpath`` to ``bucket/key`` (its bytes fed to ``digest`` as they are
    read); returns the bytes sent."""
    bucket, key = _split(path)
    await _client(fs, bucket)
    size = os.path.getsize(lpath)
    part = chunked.part_size(size, MAX_PARTS)
    if size <= part:

        async def put(data: bytes) -> Any:
            return await fs._call_s3("put_object", Bucket=bucket, Key=key, Body=data)

        return await chunked.send_whole(lpath, size, budget, put, callback, digest)

    mpu = await fs._call_s3("create_multipart_upload", Bucket=bucket, Key=key)
    upload_id = mpu["UploadId"]

    async def send(number: int, offset: int, data: chunked.FileWindow) -> dict[str, Any]:
        resp = await fs._call_s3(
            "upload_part", Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
        )
        return {"PartNumber": number, "ETag": resp["ETag"]}

    try:
        parts = await chunked.in_parts(
            lpath, size, part, budget, send, callback, retry=retry, digest=digest
        )
        await fs._call_s3(
            "complete_multipart_upload",
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},
        )
    except BaseException:
        try:
            await fs._call_s3("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception:
            pass  # the original failure is what matters
        raise
    return size
