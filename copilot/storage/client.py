"""What :class:`~copilot.storage.store.Store` asks of a store, whatever engine moves the bytes.

A client serves one protocol through one engine: obstore (the Rust
``object_store``, :mod:`copilot.storage.obstore_engine`) or fsspec
(:mod:`copilot.storage.fsspec_engine`).  Every call is a coroutine run on the
client's ``loop``, so the store can cancel it; paths are what
:meth:`Client.path` made of a URI.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from copilot.storage.sizes import DEFAULT_LIMITS, TransferLimits

if TYPE_CHECKING:
    import asyncio

    from copilot.storage.callback import TransferCallback
    from copilot.storage.chunked import ByteBudget
    from copilot.storage.files import LocalSource
    from copilot.storage.retry import RetryPolicy


@dataclass(frozen=True)
class RemoteEntry:
    """One object found under a prefix."""

    relpath: str
    uri: str
    size: int | None
    is_dir: bool = False


class Client(Protocol):
    """One protocol's store, reached through one engine."""

    #: The loop every coroutine below runs on.
    loop: asyncio.AbstractEventLoop
    #: Which engine this is ("obstore", "fsspec"), for messages and tests.
    engine: str

    def path(self, uri: str) -> str:
        """The path this client's calls take for ``uri``."""

    async def read(self, path: str, start: int | None = None, end: int | None = None) -> bytes:
        """Bytes ``start`` (0) up to ``end`` (exclusive; the object's end) of an object."""

    async def write(self, path: str, data: bytes) -> None:
        """Write a whole object in one request."""

    async def delete(self, path: str) -> None:
        """Remove one object (FileNotFoundError when there is none)."""

    async def exists(self, path: str) -> bool: ...

    async def is_file(self, path: str) -> bool: ...

    def listing(
        self, path: str, uri: str, after: str | None = None
    ) -> AsyncIterator[list[RemoteEntry]]:
        """Every object under ``path`` (``uri`` names it), a page at a time, relative
        paths from it, in key order, from the one after ``after`` (a relative path:
        where a listing that broke off resumes; a page may be empty); a path that is
        an object itself gives that one object."""

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
        """Download to ``lpath`` (every byte fed to ``sha256`` in order); the bytes
        written.  ``size``, when a listing gave it, may spare a request."""

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
        """Upload an open local file (its bytes fed to ``digest`` as read, from its
        descriptor only); the bytes sent."""

    def close(self) -> None:
        """Let go of connections (the client is not used again)."""
