"""The transfer scheduler under schedules Hypothesis plays: a simulated store.

A :class:`SimClient` stands in for an engine behind :class:`Store` (the real
scheduler, retry loop, byte budget, tree windows, listing resume and
cancellation all run as in production).  Each file has a fate drawn by
Hypothesis — a delay, some transient failures, a permanent one — and the run
may be cancelled after any number of requests.  Whatever the schedule:

- the call returns (a hang fails the test);
- the error raised is the first failure that was final (permanent, or
  transient past the attempts), or the cancellation, and the other transfers
  stop at once (no more than one request per worker starts after it);
- no request is left running once the call has returned;
- the byte budget never goes over its cap and every byte taken is handed back;
- no download is left under a temporary name, and a file under its final name
  is whole;
- a Dir's files are each reported once, and all of them when the call succeeds.

The simulated store pages its listings three objects at a time, and a listing
page may fail too, so resumed listings are played as well.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from copilot.cancel import Cancelled, CancelToken
from copilot.errors import CopilotError, Retryable
from copilot.storage import Store, Transfer, chunked
from copilot.storage.client import RemoteEntry
from copilot.storage.loop import event_loop
from copilot.storage.retry import RetryPolicy
from copilot.storage.sizes import TransferLimits

ATTEMPTS = 3
BUDGET = 3000
PAGE = 3


class Blip(Retryable, Exception):
    """A transient failure (a 503, a dropped connection)."""


class Refused(Exception):
    """A permanent failure (an unknown error is never retried)."""


@dataclass
class Fate:
    size: int
    delay: float
    transient: int  # failures before it works (>= ATTEMPTS: it never does)
    permanent: bool


@dataclass
class SimClient:
    """An in-memory object store whose requests meet their :class:`Fate`; the bytes
    then move through ``inner`` (a real engine over an in-memory store) when given."""

    objects: dict[str, bytes]
    fates: dict[str, Fate]
    token: CancelToken
    cancel_after: int | None
    list_failures: int = 0
    inner: Any = None
    engine: str = "sim"
    loop: asyncio.AbstractEventLoop = field(default_factory=event_loop)
    running: int = 0
    requests: int = 0
    peak_budget: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    #: Final failures (the ones no retry follows), in the order they were raised.
    finals: list[str] = field(default_factory=list)
    cancelled_at: int | None = None
    #: Requests started once a final failure was raised: the task group cancels the
    #: rest at once, so at most one per worker (and the producer's listing) slips in.
    after_final: int = 0

    def path(self, uri: str) -> str:
        return uri.split("://", 1)[1]

    def close(self) -> None:
        pass

    def _request(self) -> None:
        self.requests += 1
        if self.finals:
            self.after_final += 1
        due = self.cancel_after is not None and self.requests > self.cancel_after
        if due and self.cancelled_at is None:
            self.cancelled_at = len(self.finals)
            self.token.cancel("simulated")

    async def _meet(self, key: str) -> None:
        """The request for ``key``: its delay, then its failures, in order."""
        self._request()
        fate = self.fates[key]
        await asyncio.sleep(fate.delay)
        if fate.permanent:
            self.finals.append(key)
            raise Refused(f"refused {key}")
        seen = self.failed.get(key, 0)
        if seen < fate.transient:
            self.failed[key] = seen + 1
            if seen + 1 == ATTEMPTS:
                self.finals.append(key)
            raise Blip(f"blip {key}")

    async def listing(
        self, path: str, uri: str, after: str | None = None
    ) -> AsyncIterator[list[RemoteEntry]]:
        prefix = path.rstrip("/") + "/"
        names = sorted(k[len(prefix) :] for k in self.objects if k.startswith(prefix))
        if after is not None:
            names = [n for n in names if n > after]
        for start in range(0, len(names), PAGE):
            self._request()
            await asyncio.sleep(0)
            if self.list_failures and start:
                self.list_failures -= 1
                raise Blip("listing broke off")
            page = names[start : start + PAGE]
            yield [
                RemoteEntry(n, f"{uri.rstrip('/')}/{n}", len(self.objects[prefix + n]))
                for n in page
            ]

    async def get_file(
        self,
        path: str,
        lpath: str,
        callback: Any,
        retry: RetryPolicy,
        sha256: Any = None,
        size: int | None = None,
        limits: Any = None,
    ) -> int:
        self.running += 1
        try:
            await self._meet(path)
            if self.inner is not None:
                inner_path = self.inner.path(f"{self.inner.protocol}://{path}")
                got = await self.inner.get_file(
                    inner_path, lpath, callback, retry, sha256, size, limits=limits
                )
                return int(got)
            data = self.objects[path]
            half = len(data) // 2
            with open(lpath, "wb") as out:
                out.write(data[:half])
                await asyncio.sleep(0)  # a cancellation may land mid-file
                out.write(data[half:])
            if sha256 is not None:
                sha256.update(data)
            if callback is not None:
                callback.relative_update(len(data))
            return len(data)
        finally:
            self.running -= 1

    async def put_file(
        self,
        source: Any,
        path: str,
        budget: chunked.ByteBudget,
        callback: Any,
        retry: RetryPolicy,
        digest: Any = None,
        limits: Any = None,
    ) -> int:
        self.running += 1
        try:
            if self.inner is not None:
                await self._meet(path)
                inner_path = self.inner.path(f"{self.inner.protocol}://{path}")
                sent = await self.inner.put_file(
                    source, inner_path, budget, callback, retry, digest, limits=limits
                )
                self.objects[path] = os.pread(source.fd, source.size, 0)
                return int(sent)
            await budget.acquire(source.size)
            try:
                self.peak_budget = max(self.peak_budget, budget.used)
                data = os.pread(source.fd, source.size, 0)
                await self._meet(path)
                if digest is not None:
                    digest.update(data)
                self.objects[path] = data
                return len(data)
            finally:
                await budget.release(source.size)
        finally:
            self.running -= 1


fates = st.builds(
    Fate,
    size=st.integers(0, 1000),
    delay=st.sampled_from([0.0, 0.0, 0.001, 0.003, 0.02]),
    transient=st.sampled_from([0, 0, 0, 1, 2, ATTEMPTS]),
    permanent=st.sampled_from([False] * 9 + [True]),
)

schedules = st.fixed_dictionaries(
    {
        "direction": st.sampled_from(["get", "put"]),
        "trees": st.lists(st.lists(fates, max_size=7), max_size=3),
        "files": st.lists(fates, max_size=3),
        "cancel_after": st.none() | st.integers(0, 25),
        "concurrency": st.integers(1, 4),
        "window": st.integers(1, 3),
        "list_failures": st.integers(0, 2),
    }
)


class PeakBudget(chunked.ByteBudget):
    """The store's byte budget, remembering the most it ever held."""

    peak = 0

    async def acquire(self, n: int) -> None:
        await super().acquire(n)
        PeakBudget.peak = max(PeakBudget.peak, self.used)


def _engine(name: str) -> Any:
    """A real engine over an in-memory store: fsspec's ``memory://``, or obstore's
    client with its bucket served by obstore's ``MemoryStore``."""
    if name == "fsspec":
        import fsspec

        from copilot.storage.fsspec_engine import FsspecClient

        return FsspecClient(fsspec.filesystem("memory", skip_instance_cache=True), "memory")
    if name == "obstore":
        from obstore.store import MemoryStore

        from copilot.storage.obstore_engine import ObstoreClient

        client = ObstoreClient("s3", "s3", {})
        memory = MemoryStore()
        client._store = lambda bucket, *args, **kwargs: memory  # type: ignore[method-assign]
        return client
    return None


def _seed(inner: Any, key: str, data: bytes) -> None:
    """Put an object in the inner engine's store before the run."""
    import concurrent.futures

    path = inner.path(f"{inner.protocol}://{key}")
    future = asyncio.run_coroutine_threadsafe(inner.write(path, data), inner.loop)
    concurrent.futures.wait([future])
    future.result()


def _play(schedule: dict[str, Any], root: Path, engine: str = "sim") -> None:
    root.mkdir()
    objects: dict[str, bytes] = {}
    plan: dict[str, Fate] = {}
    token = CancelToken()
    PeakBudget.peak = 0
    client = SimClient(
        objects,
        plan,
        token,
        schedule["cancel_after"],
        schedule["list_failures"],
        inner=_engine(engine),
    )
    local = root / "local"
    local.mkdir()
    transfers: list[Transfer] = []
    reported: dict[int, list[Any]] = {}  # per tree: index (upload) or name (download)
    expected: dict[str, bytes] = {}  # final local path (get) or key (put) -> bytes

    def content(name: str, size: int) -> bytes:
        return hashlib.sha256(name.encode()).digest() * (size // 32 + 1)

    for t, tree in enumerate(schedule["trees"]):
        names = [f"t{t}/f{i}" for i in range(len(tree))]
        reported[t] = []
        if schedule["direction"] == "get":
            for name, fate in zip(names, tree, strict=True):
                key = f"b/{name}"
                objects[key] = content(name, fate.size)[: fate.size]
                plan[key] = fate
                expected[str(local / name)] = objects[key]

            def sink(index: int, rel: str, size: int, sha: str, t: int = t) -> None:
                reported[t].append(rel)  # a download's files land in any order

            transfers.append(
                Transfer(f"sim://b/t{t}", str(local / f"t{t}"), f"tree{t}", tree=True, sink=sink)
            )
        else:
            leaves = []
            for i, (name, fate) in enumerate(zip(names, tree, strict=True)):
                data = content(name, fate.size)[: fate.size]
                (local / name).parent.mkdir(parents=True, exist_ok=True)
                (local / name).write_bytes(data)
                plan[f"b/{name}"] = fate
                expected[f"b/{name}"] = data
                leaves.append((f"f{i}", str(local / name), fate.size))

            def upload_sink(index: int, rel: str, size: int, sha: str, t: int = t) -> None:
                reported[t].append(index)

            transfers.append(
                Transfer(
                    str(local / f"t{t}"),
                    f"sim://b/t{t}",
                    f"tree{t}",
                    tree=True,
                    leaves=lambda leaves=leaves: iter(leaves),
                    sink=upload_sink,
                    inside=str(local),
                )
            )
    for i, fate in enumerate(schedule["files"]):
        name = f"single{i}"
        data = content(name, fate.size)[: fate.size]
        plan[f"b/{name}"] = fate
        if schedule["direction"] == "get":
            objects[f"b/{name}"] = data
            expected[str(local / name)] = data
            transfers.append(Transfer(f"sim://b/{name}", str(local / name), name, fate.size))
        else:
            (local / name).write_bytes(data)
            expected[f"b/{name}"] = data
            transfers.append(Transfer(str(local / name), f"sim://b/{name}", name, fate.size))

    if client.inner is not None and schedule["direction"] == "get":
        for key, data in objects.items():
            _seed(client.inner, key, data)
    store = Store(
        concurrency=schedule["concurrency"],
        retry=RetryPolicy(attempts=ATTEMPTS, base=0.0001, cap=0.001, cancel=token),
        cancel=token,
    )
    store._clients["sim"] = client  # type: ignore[assignment]
    outcome: list[BaseException | int] = []

    def call() -> None:
        try:
            if schedule["direction"] == "get":
                outcome.append(store.download(transfers))
            else:
                outcome.append(store.upload(transfers, digests={}))
        except BaseException as exc:  # noqa: BLE001 - judged below
            outcome.append(exc)

    runner = threading.Thread(target=call, daemon=True)
    runner.start()
    runner.join(60)
    assert not runner.is_alive(), f"the call hung: {schedule}"
    (result,) = outcome

    # Nothing left running; the budget whole and never over its cap.
    assert client.running == 0
    budget = store._shared.get("upload_budget")
    if budget is not None:
        assert budget.used == 0 and not budget._waiting
    biggest = max((f.size for f in plan.values()), default=0)
    assert max(client.peak_budget, PeakBudget.peak) <= max(BUDGET, biggest)

    # The outcome: success, the first final failure, or the cancellation.
    cancelled_first = client.cancelled_at is not None and client.cancelled_at == 0
    if isinstance(result, Cancelled):
        assert client.cancelled_at is not None, "cancelled with no cancellation"
    elif isinstance(result, BaseException):
        assert isinstance(result, CopilotError), repr(result)
        assert client.finals, f"failed with no final failure: {result}"
        first = client.finals[0].split("/", 1)[1]
        assert first in str(result), (client.finals, str(result))
        assert not cancelled_first or client.finals, result
        assert client.after_final <= schedule["concurrency"] + 1, client.after_final
    else:
        assert not client.finals and client.cancelled_at is None
        for where, data in expected.items():
            got = Path(where).read_bytes() if schedule["direction"] == "get" else objects[where]
            assert got == data, where
        for t, tree in enumerate(schedule["trees"]):
            every = [f"f{i}" for i in range(len(tree))]
            if schedule["direction"] == "put":
                every = list(range(len(tree)))
            assert sorted(reported[t]) == sorted(every)
    for t in reported:
        assert len(reported[t]) == len(set(reported[t])), "a file reported twice"

    # Downloads: no temporary name left; what has its final name is whole.
    if schedule["direction"] == "get":
        for path in local.rglob("*"):
            assert not path.name.endswith(".copilot-part"), path
            if (
                path.is_file()
                and str(path) in expected
                and not str(path).startswith(str(local / "t"))
            ):
                assert path.read_bytes() == expected[str(path)], path


def _simulation(examples: int) -> Any:
    """The property test, run for ``examples`` schedules (``COPILOT_SIMULATION_EXAMPLES``
    overrides) on the simulated store alone and through each engine."""

    @pytest.mark.parametrize("engine", ["sim", "fsspec", "obstore"])
    @settings(
        max_examples=int(os.environ.get("COPILOT_SIMULATION_EXAMPLES", examples)),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(schedule=schedules)
    def test(
        engine: str,
        schedule: dict[str, Any],
        tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(
            Store,
            "default_limits",
            TransferLimits(upload_budget=BUDGET, tree_window=schedule["window"]),
        )
        monkeypatch.setattr(chunked, "ByteBudget", PeakBudget)
        _play(schedule, tmp_path_factory.mktemp("sim") / "run", engine)

    return test


test_every_schedule_ends_cleanly = _simulation(40)
test_every_schedule_ends_cleanly_at_length = pytest.mark.slow(_simulation(600))
