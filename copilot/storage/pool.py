"""The transfer pool: every transfer of one store's call, at most ``concurrency``
at a time, as one task group on the client's event loop.

A producer feeds workers through a short queue, expanding trees as it goes (a
download tree a listing page at a time, an upload tree file by file within its
:class:`_Window`); the first failure cancels every other task at once and is
what is raised, unless it is a refusal of the container's data, which stops the
feeding and lets what is in flight land (the caller then deletes it).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from copilot.constants import TMP_SUFFIX
from copilot.errors import USER, CopilotError, StorageError
from copilot.paths import Openers
from copilot.storage import chunked
from copilot.storage.callback import Pulse, TransferCallback
from copilot.storage.client import RemoteEntry
from copilot.storage.errors import storage_error
from copilot.storage.files import LocalSource
from copilot.storage.retry import RetryPolicy
from copilot.storage.sizes import DEFAULT_LIMITS, TransferLimits
from copilot.storage.transfer import (
    Attempt,
    Transfer,
    finish_download,
    labelled,
    leaf_of,
    open_for_upload,
    sent_whole,
    temp_name,
    transfer_error,
    upload_leaves,
    verify,
)
from copilot.storage.uris import display_uri

if TYPE_CHECKING:
    from copilot.progress import Progress
    from copilot.storage.client import Client

log = logging.getLogger("copilot")


@dataclass
class PoolContext:
    """What the pool takes from its store: the bounds and the policy of one call."""

    concurrency: int
    retry: RetryPolicy
    #: Shared by every call of a store: one bound on upload buffers for all of them.
    budget: chunked.ByteBudget
    progress: Progress | None
    pulse: Pulse
    limits: TransferLimits = DEFAULT_LIMITS


async def run_pool(
    ctx: PoolContext,
    client: Client,
    group: list[Transfer],
    direction: str,
    digests: dict[str, str] | None,
    stats: dict[str, int],
) -> int:
    """Every transfer of ``group``, at most ``concurrency`` at a time.

    A producer feeds the workers through a short queue, expanding tree
    transfers (a listing page, or a directory, at a time) as they go: what is
    held at once is a page and the queue, however many files a tree has.
    """
    import asyncio

    from copilot.storage import chunked

    failure: list[BaseException] = []
    copied = 0
    budget = ctx.budget
    made: set[str] = set()
    # Every worker runs on this one loop's thread, one open at a time: they can
    # share the directories an opener keeps open.
    openers = Openers()
    trees = any(t.tree for t in group)
    workers = ctx.concurrency if trees else max(1, min(ctx.concurrency, len(group)))
    queue: asyncio.Queue[_Queued | None] = asyncio.Queue(maxsize=2 * workers)

    async def attempt(t: Transfer, source: LocalSource | None) -> tuple[int, str | None]:
        unsized = id(t) if t.size is None else None
        cb = TransferCallback(ctx.progress, ctx.pulse, unsized=unsized)
        if source is not None:  # an upload, from the file opened for it
            # A fresh digest per attempt: a retried upload reads the file again.
            digest = hashlib.sha256() if digests is not None else None
            sent = await client.put_file(
                source, client.path(t.dst), budget, cb, ctx.retry, digest, limits=ctx.limits
            )
            got = sent_whole(t, source, sent)
            if cb is not None:
                cb.finish(got)
            return got, (digest.hexdigest() if digest is not None else None)
        tmp = temp_name(t, direction, made)
        assert tmp is not None
        with Attempt(tmp):  # a download lands under a temp name
            for again in range(ctx.retry.attempts):
                check = hashlib.sha256() if t.sha256 or t.hashed else None
                try:
                    written = await client.get_file(
                        client.path(t.src),
                        tmp,
                        cb,
                        ctx.retry,
                        sha256=check,
                        size=t.size,
                        limits=ctx.limits,
                    )
                    break
                except chunked.ObjectChanged as exc:
                    # Replaced while it was read: never a mix of two versions; the
                    # new one is fetched whole, from its first range.
                    if again + 1 == ctx.retry.attempts:
                        raise StorageError(
                            f"{display_uri(t.src)} changed while it was downloaded, "
                            f"{ctx.retry.attempts} times in a row ({exc})",
                            retryable=False,
                        ) from None
                    log.info("%s changed while it was downloaded; fetching it again", t.src)
            verify(t, check)
            got = finish_download(t, tmp, t.dst, cb, written)
            return got, (check.hexdigest() if t.hashed and check is not None else None)

    async def opened(t: Transfer) -> LocalSource:
        # Under the retry policy: too many open files is a moment's shortage.
        return open_for_upload(t, openers)

    refused = False

    async def produce() -> None:
        t: Transfer | None = None
        try:
            for t in group:
                if t.tree and direction == "get":
                    os.makedirs(t.dst, exist_ok=True)
                    hashed = t if t.sink is not None else None
                    async for leaf in _leaves(ctx, client, t):
                        await queue.put(_Queued(leaf, hashed))
                elif t.tree:
                    window = _Window(ctx.limits.tree_window)
                    for index, leaf in upload_leaves(t, ctx.progress):
                        await window.admit(index)
                        await queue.put(_Queued(leaf, t, index, window))
                else:
                    await queue.put(_Queued(t))
            for _ in range(workers):
                await queue.put(None)
        except asyncio.CancelledError:
            if refused:
                return  # stopped by a refusal: the workers drain what was queued
            raise
        except Exception as exc:
            if not isinstance(exc, CopilotError) and t is not None:
                exc = labelled(storage_error(exc, t.src, "list"), t.label)
            failure.append(exc)
            raise _Stopped from None

    def refuse() -> None:
        """The container's data was refused (a file swapped for a link): nothing
        more is sent, but what is in flight lands, so the clean-up that follows
        finds every object (a cancelled request may still land after it)."""
        nonlocal refused
        refused = True
        producer.cancel()  # its pending put is cancelled with it
        while not queue.empty():
            queue.get_nowait()  # what it queued is not sent
        for _ in range(workers):
            queue.put_nowait(None)

    async def worker() -> None:
        nonlocal copied
        while (item := await queue.get()) is not None:
            t = item.transfer
            if refused:
                continue  # drained
            try:
                source = (
                    await ctx.retry.acall(functools.partial(opened, t), t.label)
                    if direction == "put"
                    else None
                )
                try:
                    # Not `copied += await ...`: that reads `copied` before the
                    # await and would lose what other workers add meanwhile.
                    done, hexdigest = await ctx.retry.acall(
                        functools.partial(attempt, t, source), t.label
                    )
                finally:
                    if source is not None:
                        os.close(source.fd)
            except Exception as exc:
                err = transfer_error(t, direction, exc)
                failure.append(err)
                if err.origin == USER:
                    if not refused:
                        refuse()
                    continue
                raise _Stopped from None
            copied += done
            stats["files"] += 1
            if hexdigest is not None:
                if item.tree is not None and item.tree.sink is not None:
                    rel = t.dst[len(item.tree.dst.rstrip("/")) + 1 :]
                    item.tree.sink(item.index, rel, done, hexdigest)
                elif digests is not None:
                    digests[t.dst] = hexdigest
            if item.window is not None:
                await item.window.finish(item.index)

    # One task group: the first failure cancels every other transfer at once
    # (their back-off included) and is what is raised; nothing is left running.
    # A refusal of the container's data stops the feeding instead (above).
    with openers:
        producer = asyncio.ensure_future(produce())  # a refusal stops it (``refuse``)
        try:
            await chunked.all_or_none([producer, *(worker() for _ in range(workers))])
        except _Stopped:
            raise failure[0] from None
    if failure:
        raise failure[0]
    return copied


@dataclass
class _Queued:
    """A transfer on its way to a worker, with the upload tree it belongs to."""

    transfer: Transfer
    tree: Transfer | None = None
    index: int = 0
    window: _Window | None = None


class _Stopped(Exception):
    """A task of the transfer group failed; the cause is the group's first failure."""


class _Window:
    """Keeps an upload tree's files within ``size`` of its first unfinished one (what a
    Dir digest holds of finished lines waiting for it: a line each)."""

    def __init__(self, size: int) -> None:
        from copilot.storage.chunked import Gate

        self.size = size
        self.lowest = 0
        self.finished: set[int] = set()
        self.gate = Gate()

    async def admit(self, index: int) -> None:
        await self.gate.wait_until(lambda: index - self.lowest < self.size)

    async def finish(self, index: int) -> None:
        self.finished.add(index)
        while self.lowest in self.finished:
            self.finished.remove(self.lowest)
            self.lowest += 1
        await self.gate.changed()


async def pages(
    client: Client, uri: str, retry: RetryPolicy, pulse: Pulse, label: str = ""
) -> AsyncIterator[list[RemoteEntry]]:
    """Everything under ``uri``, a listing page at a time (names being written,
    ``….copilot-part``, left out).

    A listing that fails transiently resumes after the last object it gave,
    under the retry policy, its attempts counted afresh after every page that
    arrives: nothing is listed twice, and a long listing is not held to one
    operation's attempts over all its pages.
    """
    path, where = client.path(uri), f"list {display_uri(uri)}"
    after: str | None = None
    attempt = 0
    failing_since = 0.0
    while True:
        try:
            async for page in client.listing(path, uri, after):
                if page:
                    after = page[-1].relpath
                pulse.beat()
                yield [e for e in page if not e.relpath.endswith(TMP_SUFFIX)]
                attempt, failing_since = 0, 0.0
            return
        except Exception as exc:
            if isinstance(exc, CopilotError):
                raise
            failing_since = failing_since or time.monotonic()
            pause = retry.pause_after(attempt, exc, where, failing_since)
            if pause is None:
                raise labelled(storage_error(exc, uri, "list"), label) from exc
        await asyncio.sleep(pause)
        attempt += 1


async def _leaves(ctx: PoolContext, client: Client, tree: Transfer) -> AsyncIterator[Transfer]:
    """Every object under a tree transfer's prefix, a listing page at a time."""
    async for page in pages(client, tree.src, ctx.retry, ctx.pulse, tree.label):
        for entry in page:
            leaf = leaf_of(tree, entry, ctx.progress)
            if leaf is not None:
                yield leaf
