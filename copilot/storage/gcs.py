"""GCS: copilot's keys as gcsfs's options, and gcsfs transfers in bounded memory (the
plan is in :mod:`copilot.storage.driver`).

gcsfs's ``_get_file`` prefetches a large object in 16 MiB pieces held in memory
(docs/BENCHMARKS.md, "Tuning measurements") and its ``_put_file`` reads 50 MiB
chunks.  Here a download streams each byte range from the JSON API's media
URL to its offset on disk, later ranges pinned to the first one's object
generation; an upload is one multipart request for a small file and otherwise a
resumable upload session fed the whole file in one streamed request.
Requests use gcsfs's session, credentials and URLs.
"""

from __future__ import annotations

import base64
import mimetypes
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from copilot.config_values import text_value
from copilot.errors import UsageError
from copilot.storage import chunked, driver
from copilot.storage.config import StorageConfig
from copilot.storage.errors import http_status

# -- configuration: copilot's keys as gcsfs's options ------------------------------


async def close(fs: Any) -> None:
    """End the filesystem's HTTP session (made on its first request)."""
    session = fs.session
    if session is not None and not session.closed:
        await session.close()


def fsspec_class() -> type:
    """gcsfs's plain filesystem, unless the user turned gcsfs's experimental one on.

    ``gcsfs.GCSFileSystem`` is, since 2026.x, a subclass that looks up every
    bucket's type (zonal / hierarchical) through a gRPC control API first:
    without credentials that warns on every call, and against an emulator or a
    private endpoint it stalls a minute per call.  copilot reads and writes
    plain objects, so it takes ``gcsfs.core.GCSFileSystem`` (the class the
    experiment wraps) without changing the process's environment."""
    import gcsfs
    import gcsfs.core

    wanted = os.environ.get("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "").lower() in ("true", "1")
    return gcsfs.GCSFileSystem if wanted else gcsfs.core.GCSFileSystem


def fsspec_options(config: StorageConfig, concurrency: int) -> dict[str, Any]:
    """gcsfs keyword arguments from the google stow keys (the environment otherwise:
    ``GOOGLE_APPLICATION_CREDENTIALS``, ``STORAGE_EMULATOR_HOST``, workload identity)."""
    if config.ca_bundle:
        raise UsageError(
            "storage.ca-bundle: gcsfs (gs://) takes no CA bundle; set SSL_CERT_FILE "
            "to a PEM file holding the system's CAs and yours"
        )
    stow = config.stow_for("google", "gcs")
    opts: dict[str, Any] = {}
    if stow.get("project_id"):
        opts["project"] = stow["project_id"]
    if stow.get("json"):
        import json

        try:
            opts["token"] = json.loads(stow["json"])
        except ValueError:
            raise UsageError("storage stow.config json: not valid JSON credentials") from None
    elif stow.get("credentials_path"):
        opts["token"] = stow["credentials_path"]
    scopes = text_value(stow.get("scopes"))
    if scopes:
        # Go's stow takes OAuth scopes; gcsfs takes the access level they grant.
        if "read_only" in scopes:
            opts["access"] = "read_only"
        elif "full_control" in scopes or "cloud-platform" in scopes:
            opts["access"] = "full_control"
        else:
            opts["access"] = "read_write"
    endpoint = text_value(stow.get("endpoint")).strip()
    if endpoint:
        opts["endpoint_url"] = endpoint
        opts.setdefault("token", "anon")  # an emulator or private endpoint
    return opts


#: gcsfs methods decorated with its retry loop (6 tries, pauses up to 32 s);
#: ``_get_file_concurrent`` exists from gcsfs 2026.6.
RETRYING = ("_request", "_get_file_request", "_get_file_concurrent")
SINCE_2026_6 = ("_get_file_concurrent",)


def prepare(fs: Any) -> None:
    """gcsfs wraps its request methods in a loop of 6 tries with pauses of up to
    32 s, fixed when the class is defined: this instance uses the unwrapped ones,
    so copilot's loop is the only one."""
    import types

    for name in RETRYING:
        inner = getattr(getattr(type(fs), name, None), "__wrapped__", None)
        if inner is not None:
            setattr(fs, name, types.MethodType(inner, fs))


#: Range size for a download.  Against fake-gcs-server on two cores, 64 MiB ranges
#: matched gcsfs's get_file for a 256 MiB object (0.96-0.99x over ten interleaved
#: runs) where 32 MiB ranges were 1.08x: fewer requests, same bounded memory.
RANGE_SIZE = 64 << 20
#: Files up to this size go up in one multipart request (its body is built in memory).
SIMPLE_UPLOAD = 5 << 20


def _error(status: int, text: str) -> Exception:
    """A failed response as gcsfs's own error, its HTTP status kept for
    :mod:`copilot.storage.errors` to classify and name."""
    from gcsfs.retry import HttpError

    return HttpError({"code": status, "message": text[:200] or f"HTTP {status}"})


@asynccontextmanager
async def _ranged_get(fs: Any, path: str, start: int, end: int, generation: str | None) -> Any:
    url = fs.url(path)
    # The generation goes in as a query parameter (gcsfs's url() takes it only from 2026.8).
    params = fs._get_params({"generation": generation} if generation else {})
    headers = fs._get_headers({"Range": f"bytes={start}-{end}"})
    async with fs.session.get(
        url, params=params, headers=headers, timeout=fs.requests_timeout
    ) as resp:
        if resp.status == 416 and start == 0:
            # An empty object has no byte 0: fetch it plainly.
            async with fs.session.get(
                url,
                params=params,
                headers=fs._get_headers({}),
                timeout=fs.requests_timeout,
            ) as whole:
                if whole.status >= 400:
                    raise _error(whole.status, await whole.text())
                yield whole
            return
        if resp.status >= 400:
            raise _error(resp.status, await resp.text())
        yield resp


async def _chunks(resp: Any) -> AsyncIterator[bytes]:
    while chunk := await resp.content.read(chunked.READ_CHUNK):
        yield chunk


def _total_size(resp: Any) -> int:
    content_range = resp.headers.get("Content-Range", "")
    if resp.status == 206 and "/" in content_range:
        total = content_range.rsplit("/", 1)[1]
        if total.isdigit():
            return int(total)
    return int(resp.headers.get("Content-Length") or 0)


def _md5(resp: Any) -> str | None:
    """The object's MD5 from ``x-goog-hash`` (absent for composite objects)."""
    for part in resp.headers.getall("x-goog-hash", []):
        for item in part.split(","):
            name, _, value = item.strip().partition("=")
            if name == "md5":
                try:
                    return base64.b64decode(value).hex()
                except ValueError:
                    return None
    return None


class _Object:
    """One object of gcsfs's filesystem, read through the JSON API's media URL and
    written as a multipart request or a resumable session, with gcsfs's session,
    credentials and URLs (a :class:`~copilot.storage.driver.Reader` and
    :class:`~copilot.storage.driver.Writer`)."""

    range_size = RANGE_SIZE
    ranges_in_flight = chunked.PARTS_IN_FLIGHT
    longest: int | None = None
    #: Up to this size, one request; a larger file, one streamed request to a
    #: resumable session (a failure retries the whole file, as for every store).
    part_size = SIMPLE_UPLOAD
    max_parts = 1
    parts_in_flight = 1
    streamed = True

    def __init__(self, fs: Any, path: str) -> None:
        self.fs = fs
        self.path = path
        self.where = f"gs://{path}"

    @asynccontextmanager
    async def first(self, step: int) -> AsyncIterator[driver.FirstRange]:
        await self.fs._set_session()
        async with _ranged_get(self.fs, self.path, 0, step - 1, None) as resp:
            size = _total_size(resp)
            whole = size <= step or resp.status != 206  # all of it in this one response
            generation = resp.headers.get("x-goog-generation")
            yield driver.FirstRange(size, _chunks(resp), whole, _md5(resp), generation)

    @asynccontextmanager
    async def read(
        self, start: int, end: int, version: str | None
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        async with _ranged_get(self.fs, self.path, start, end, version) as part:
            yield _chunks(part)

    def _names(self) -> tuple[str, str, str]:
        bucket, key, _ = self.fs.split_path(self.path)
        content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        return bucket, key, content_type

    async def whole(self, data: bytes) -> Any:
        from gcsfs.core import simple_upload

        bucket, key, content_type = self._names()
        return await simple_upload(self.fs, bucket, key, data, content_type=content_type)

    async def begin(self, size: int) -> _Session:
        from gcsfs.core import initiate_upload

        bucket, key, content_type = self._names()
        location = await initiate_upload(self.fs, bucket, key, content_type)
        return _Session(self.fs, location, content_type, size)


class _Session:
    """A resumable upload session: the whole file in one streamed PUT, so nothing
    but the current read is in memory and no chunk round trips."""

    def __init__(self, fs: Any, location: str, content_type: str, size: int) -> None:
        self.fs, self.location = fs, location
        self.headers = {
            "Content-Type": content_type,
            "Content-Length": str(size),
            "Content-Range": f"bytes 0-{size - 1}/{size}",
        }

    async def part(self, number: int, offset: int, body: Any) -> None:
        await self.fs._call("PUT", self.location, headers=self.headers, data=body)

    async def complete(self, parts: list[Any]) -> None:
        """The PUT of the whole file made the object."""

    async def abort(self) -> None:
        try:
            await self.fs._call("DELETE", self.location)
        except Exception as exc:
            # GCS answers a cancelled session with 499; 404: it is gone already.
            if http_status(exc) not in (404, 499):
                raise


def reader(fs: Any, path: str) -> driver.Reader:
    """``bucket/key`` of gcsfs's filesystem, to download."""
    return _Object(fs, path)


def writer(fs: Any, path: str) -> driver.Writer:
    """``bucket/key`` of gcsfs's filesystem, to upload."""
    return _Object(fs, path)
