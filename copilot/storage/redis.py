"""``redis://``: Flyte 2's redis store (flytestdlib ``RedisStore``, flyte #7555).

An object is a redis string value keyed by the path portion of
``redis://<addr>/<key>``, the layout the flyte-sdk redis plugin reads and
writes.  The address comes from the configuration (``storage.redis.addr``, or
the scheme's ``storage.schemes.redis.redis``), else from the URI's host, as
flytestdlib does.  A value is read in ranges (``GETRANGE``) and written in
pieces (``APPEND`` to a temporary key, then one ``RENAME``), so a blob moves in
bounded memory and a reader never sees half of one; redis caps a string at
512 MiB, and a bigger file is refused, named, before anything is sent.

This is the one place redis-py's exceptions become copilot's: connection
failures and timeouts are retried, a refused password is permanent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from copilot.constants import CLEANUP_SECONDS, TMP_SUFFIX
from copilot.errors import NON_RECOVERABLE, StorageError
from copilot.storage import chunked
from copilot.storage.client import RemoteEntry
from copilot.storage.sizes import DEFAULT_LIMITS, TransferLimits

if TYPE_CHECKING:
    from copilot.storage.callback import TransferCallback
    from copilot.storage.chunked import ByteBudget
    from copilot.storage.config import StorageConfig
    from copilot.storage.files import LocalSource
    from copilot.storage.retry import RetryPolicy

#: Redis's cap on one string value (``proto-max-bulk-len``'s default).
MAX_VALUE_BYTES = 512 << 20
#: Bytes per ``GETRANGE`` / ``APPEND``: what a transfer holds at once.
PIECE = 4 << 20
#: Keys asked for per ``SCAN`` step.
SCAN_COUNT = 1000


def settings(config: StorageConfig) -> dict[str, Any]:
    """``addr``, ``username``, ``password``, ``db`` from the redis section."""
    raw = config.redis or {}
    return {
        "addr": str(raw.get("addr") or ""),
        "username": str(raw.get("username") or ""),
        "password": str(raw.get("password") or ""),
        "db": int(raw.get("db") or 0),
    }


def make_client(protocol: str, config: StorageConfig, concurrency: int) -> RedisClient:
    try:
        import redis.asyncio  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"No module named {exc.name!r}") from None
    return RedisClient(settings(config), concurrency)


@contextlib.contextmanager
def _converted() -> Iterator[None]:
    """redis-py's exceptions as the ones copilot's retry and messages know."""
    import redis.exceptions as rx

    try:
        yield
    except rx.AuthenticationError as exc:
        raise PermissionError(f"redis refused the credentials: {exc}") from None
    except rx.ResponseError as exc:
        if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc) or "NOPERM" in str(exc):
            raise PermissionError(f"redis refused the credentials: {exc}") from None
        raise StorageError(f"redis: {exc}", kind=NON_RECOVERABLE) from None
    except (rx.ConnectionError, rx.TimeoutError) as exc:
        raise ConnectionError(f"redis: {exc}") from None


class RedisClient:
    """A redis server as a client: one connection pool per address."""

    engine = "redis"

    def __init__(self, options: dict[str, Any], concurrency: int) -> None:
        from copilot.storage.loop import event_loop

        self.loop = event_loop()
        self.options = options
        self.concurrency = concurrency
        self._pools: dict[str, Any] = {}

    # -- keys and connections ----------------------------------------------------

    def path(self, uri: str) -> str:
        """``addr/key``: the address the object lives at and its key."""
        parts = urlsplit(uri)
        addr = self.options["addr"] or parts.netloc
        return f"{addr}/{parts.path.lstrip('/')}"

    def _redis(self, path: str) -> tuple[Any, str]:
        addr, _, key = path.partition("/")
        conn = self._pools.get(addr)
        if conn is None:
            import redis.asyncio
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            host, _, port = addr.rpartition(":") if ":" in addr else (addr, "", "6379")
            conn = redis.asyncio.Redis(
                host=host or "127.0.0.1",
                port=int(port or 6379),
                db=self.options["db"],
                username=self.options["username"] or None,
                password=self.options["password"] or None,
                max_connections=max(2, self.concurrency),
                socket_connect_timeout=10,
                socket_timeout=60,
                # One retry loop: copilot's (redis-py retries 3 times by default).
                retry=Retry(NoBackoff(), 0),
            )
            self._pools[addr] = conn
        return conn, key

    def _uri(self, path: str) -> str:
        return f"redis://{path}"

    # -- small objects -----------------------------------------------------------

    async def read(self, path: str, start: int | None = None, end: int | None = None) -> bytes:
        r, key = self._redis(path)
        with _converted():
            if start is None and end is None:
                data = await r.get(key)
                if data is None:
                    raise FileNotFoundError(self._uri(path))
                return bytes(data)
            pipe = r.pipeline(transaction=True)
            pipe.exists(key)
            pipe.getrange(key, start or 0, (end - 1) if end is not None else -1)
            found, data = await pipe.execute()
        if not found:
            raise FileNotFoundError(self._uri(path))
        # An empty range: GETRANGE would have read to the end.
        return bytes(data) if end is None or end > (start or 0) else b""

    async def write(self, path: str, data: bytes) -> None:
        if len(data) > MAX_VALUE_BYTES:
            raise StorageError(_too_large(self._uri(path), len(data)), kind=NON_RECOVERABLE)
        r, key = self._redis(path)
        with _converted():
            await r.set(key, data)

    async def delete(self, path: str) -> None:
        r, key = self._redis(path)
        with _converted():
            if not await r.delete(key):
                raise FileNotFoundError(self._uri(path))

    async def exists(self, path: str) -> bool:
        r, key = self._redis(path)
        with _converted():
            if await r.exists(key):
                return True
            async for _ in r.scan_iter(match=_glob(key) + "/*", count=SCAN_COUNT):
                return True
        return False

    async def is_file(self, path: str) -> bool:
        r, key = self._redis(path)
        with _converted():
            return bool(await r.exists(key))

    async def listing(
        self, path: str, uri: str, after: str | None = None
    ) -> AsyncIterator[list[RemoteEntry]]:
        """Keys under ``key/``, in order (a SCAN sees them unordered: they are
        gathered, sorted, then handed out a page at a time)."""
        r, key = self._redis(path)
        base = uri.rstrip("/")
        with _converted():
            if await r.exists(key):
                size = await r.strlen(key)
                yield [RemoteEntry(os.path.basename(key), base, size)]
                return
            found = sorted(
                {
                    k.decode() if isinstance(k, bytes) else k
                    async for k in r.scan_iter(match=_glob(key) + "/*", count=SCAN_COUNT)
                }
            )
        rels = [k[len(key) + 1 :] for k in found]
        if after is not None:
            rels = [rel for rel in rels if rel > after]
        for i in range(0, len(rels), SCAN_COUNT):
            page = rels[i : i + SCAN_COUNT]
            with _converted():
                pipe = r.pipeline(transaction=False)
                for rel in page:
                    pipe.strlen(f"{key}/{rel}")
                sizes = await pipe.execute()
            yield [RemoteEntry(rel, f"{base}/{rel}", n) for rel, n in zip(page, sizes, strict=True)]

    # -- transfers ---------------------------------------------------------------

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
        r, key = self._redis(path)
        with _converted():
            if size is None:
                pipe = r.pipeline(transaction=True)
                pipe.exists(key)
                pipe.strlen(key)
                found, size = await pipe.execute()
                if not found:
                    raise FileNotFoundError(self._uri(path))
        uri, end = self._uri(path), size

        async def pieces() -> AsyncIterator[bytes]:
            got = 0
            while got < end:
                with _converted():
                    piece = await r.getrange(key, got, min(got + PIECE, end) - 1)
                if not piece:
                    raise ConnectionError(f"redis: {uri} shrank to {got} bytes while being read")
                got += len(piece)
                yield piece

        # One value, read in pieces in order, through the writer every engine uses.
        fd = os.open(lpath, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            return await chunked.write_at(pieces(), fd, 0, callback, sha256)
        finally:
            os.close(fd)

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
        size = source.size
        if size > MAX_VALUE_BYTES:
            raise StorageError(_too_large(self._uri(path), size, source.name), kind=NON_RECOVERABLE)
        r, key = self._redis(path)
        # Built under a temporary key, published with one RENAME: never half a value.
        partial = f"{key}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}"
        sent = 0
        try:
            with _converted():
                await r.set(partial, b"")
                # The shared reader: file order into ``digest``, progress counted.
                async for piece in chunked.read_file(source, size, PIECE, digest, callback):
                    await r.append(partial, piece)
                    sent += len(piece)
                await r.rename(partial, key)
        except asyncio.CancelledError:
            # No clean-up on a connection a cancelled command may have left mid-reply
            # (it can wait for ever): the partial value's name ends .copilot-part,
            # which no listing or reader takes for data.
            raise
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(r.delete(partial), CLEANUP_SECONDS)
            raise
        return sent

    def close(self) -> None:
        pools, self._pools = self._pools, {}
        for conn in pools.values():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(conn.aclose(), self.loop).result(5)


def _glob(key: str) -> str:
    """``key`` with SCAN's pattern characters escaped."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in key)


def _too_large(uri: str, size: int, lpath: str = "") -> str:
    what = f"{lpath} is" if lpath else "the value is"
    return (
        f"write {uri}: {what} {size} bytes; redis holds at most {MAX_VALUE_BYTES} bytes "
        "(512 MiB) in one value"
    )
