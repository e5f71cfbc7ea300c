"""Transfers: large objects stream in bounded memory, and concurrency stays within its bound."""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
import uuid
from pathlib import Path

import pytest
from conftest import S3
from faultproxy import FaultProxy
from stores import Remote

from copilot.cancel import CancelToken
from copilot.storage import Store, Transfer, chunked
from copilot.storage import store as store_module
from copilot.storage.sizes import TransferLimits


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@pytest.mark.slow
def test_a_large_file_goes_up_and_comes_back_byte_identical(remote: Remote, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with open(big, "wb") as fh:
        for _ in range(150):
            fh.write(os.urandom(1 << 20))
    store = remote.store(4)
    # 150 MiB: S3 multipart parts, Azure staged blocks, one streamed GCS session;
    # then a download in 64 MiB ranges.
    sent = store.upload([Transfer(str(big), remote.uri("x/big.bin"), "big", big.stat().st_size)])
    assert sent == 150 << 20
    if remote.protocol == "s3":
        head = remote.client.head_object(Bucket=remote.bucket, Key="x/big.bin")
        assert "-" in head["ETag"]  # a multipart ETag: it really went up in parts
    if remote.protocol == "abfs":
        from azure.storage.blob import BlobClient

        blob = BlobClient.from_connection_string(
            remote.server.connection_string, remote.bucket, "x/big.bin"
        )
        committed, _ = blob.get_block_list()
        assert len(committed) > 1  # staged blocks, not one request
    got = tmp_path / "got.bin"
    assert store.download([Transfer(remote.uri("x/big.bin"), str(got), "big")]) == 150 << 20
    assert _sha(got) == _sha(big)
    assert not list(tmp_path.glob("*.copilot-part"))


def test_a_ranged_download_never_fetches_the_whole_object_first(
    remote: Remote, tmp_path: Path, monkeypatch
) -> None:
    """Every GET of a big object asks for a range; the first range is kept, not dropped."""

    monkeypatch.setattr(Store, "default_limits", TransferLimits(range_size=1 << 20))
    data = os.urandom((3 << 20) + 5)
    remote.put("r/bigobj", data)
    remote.put("r/emptyobj", b"")
    remote.put("r/smallobj", b"tiny")
    with FaultProxy(remote.upstream) as proxy:
        store = remote.store(4, endpoint=proxy.url)
        got = tmp_path / "big"
        assert store.download([Transfer(remote.uri("r/bigobj"), str(got), "big")]) == len(data)
        assert got.read_bytes() == data
        ranges = [str(r) for m, p, r in proxy.seen if m == "GET" and "bigobj" in p]
        assert "None" not in ranges, ranges
        spans = sorted(tuple(int(x) for x in r[len("bytes=") :].split("-")) for r in ranges)
        # The first range as asked, then the rest in a few longer ranges, end to end.
        assert spans[0] == (0, (1 << 20) - 1) and 2 <= len(spans) <= 4, ranges
        assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(spans)), ranges
        assert spans[-1][1] == len(data) - 1, ranges
        # Small and empty objects still arrive whole (the empty one needs a plain GET).
        store.download(
            [
                Transfer(remote.uri("r/emptyobj"), str(tmp_path / "empty"), "empty"),
                Transfer(remote.uri("r/smallobj"), str(tmp_path / "small"), "small"),
            ]
        )
        small_gets = [p for m, p, _ in proxy.seen if m == "GET" and "smallobj" in p]
    assert (tmp_path / "empty").read_bytes() == b"" and (tmp_path / "small").read_bytes() == b"tiny"
    assert len(small_gets) == 1


def test_a_first_range_that_breaks_off_is_finished_alone(
    remote: Remote, tmp_path: Path, monkeypatch
) -> None:
    """The first response of a ranged download is cut off halfway: what it did not
    bring is fetched as a range of its own, the rest of the object is not
    fetched again, and the file is the object."""
    from copilot.storage import obstore_engine

    monkeypatch.setattr(Store, "default_limits", TransferLimits(range_size=1 << 20))
    # obstore hands the body over in chunks of this size: small, so the first
    # body's cut lands after some of it was written.
    monkeypatch.setattr(obstore_engine, "STREAM_CHUNK", 64 << 10)
    data = os.urandom((3 << 20) + 5)
    remote.put("cut/bigobj", data)
    with FaultProxy(remote.upstream, mode="truncate", first=1, only_path="bigobj") as proxy:
        store = remote.store(4, endpoint=proxy.url)
        got = tmp_path / "big"
        assert store.download([Transfer(remote.uri("cut/bigobj"), str(got), "big")]) == len(data)
        ranges = [str(r) for m, p, r in proxy.seen if m == "GET" and "bigobj" in p]
    assert got.read_bytes() == data
    assert proxy.faults == {"truncate": 1}
    starts = [int(r[len("bytes=") :].split("-")[0]) for r in ranges]
    # The ranges after the first were each fetched once: nothing started over.
    later = [a for a in starts if a >= 1 << 20]
    assert later and len(later) == len(set(later)), ranges
    if remote.protocol == "abfs" and remote.engine == "fsspec":
        # azure-core re-requests a chunk that broke off itself (at most CHUNK_SIZE).
        assert starts.count(0) == 2, ranges
    else:
        # One request from byte 0 (the cut one); the first range's rest starts past it.
        assert starts.count(0) == 1, ranges
        assert any(0 < a < (1 << 20) for a in starts), ranges


def test_the_upload_budget_is_one_bound_for_every_call(s3: S3, tmp_path: Path, monkeypatch) -> None:
    """Two upload calls at once (the eager uploader and the exit upload) share the budget."""
    monkeypatch.setattr(
        Store, "default_limits", TransferLimits(upload_budget=3 << 20, part_size=5 << 20)
    )
    budgets: set[int] = set()
    peak = [0]
    original = chunked.ByteBudget.acquire

    async def tracking(self, n):
        await original(self, n)
        budgets.add(id(self))
        peak[0] = max(peak[0], self.used)

    monkeypatch.setattr(chunked.ByteBudget, "acquire", tracking)
    store = s3.store(8)
    batches = []
    for b in range(2):
        batch = []
        for i in range(6):
            p = tmp_path / f"b{b}f{i}"
            p.write_bytes(os.urandom(1 << 20))
            batch.append(Transfer(str(p), s3.uri(f"u/b{b}f{i}"), p.name, 1 << 20))
        batches.append(batch)
    threads = [
        threading.Thread(target=store.scoped(store.cancel).upload, args=(b,)) for b in batches
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(budgets) == 1, "each call made its own budget"
    assert 0 < peak[0] <= 3 << 20
    assert len(s3.keys("u/")) == 12


def test_the_s3fs_and_fsspec_api_copilot_uses_is_there() -> None:
    """The S3 fast path calls these (s3fs's client per bucket, fsspec's async API: its
    methods named with a leading underscore); a release that changes them must fail
    here, loudly."""
    import inspect

    import fsspec.asyn
    import s3fs

    for name in ("set_session", "get_s3"):
        assert inspect.iscoroutinefunction(getattr(s3fs.S3FileSystem, name)), name
    for name in (
        "_cat_file", "_pipe_file", "_exists", "_isfile", "_ls", "_size", "_rm_file",
        "_get_file", "_put_file",
    ):  # fmt: skip
        assert inspect.iscoroutinefunction(getattr(s3fs.S3FileSystem, name)), name
    assert issubclass(s3fs.S3FileSystem, fsspec.asyn.AsyncFileSystem)
    fs = s3fs.S3FileSystem(anon=True, skip_instance_cache=True)
    assert fs.async_impl and fs.loop is not None
    assert "_strip_protocol" in dir(fs)


def test_the_private_attributes_copilot_sets_or_reads_are_there() -> None:
    """s3fs's own retry count (cut to one try) and client cache (closed), gcsfs's
    request helper, session and timeout (its ranged media GETs and resumable
    sessions), adlfs's Azure client (bounded downloads, staged blocks): a release
    that renames one must fail here, not quietly retry six times under copilot's
    loop or break mid-transfer."""
    import inspect

    import adlfs
    import gcsfs.core
    import s3fs
    from azure.storage.blob.aio import BlobServiceClient

    fs = s3fs.S3FileSystem(anon=True, skip_instance_cache=True)
    assert isinstance(fs.retries, int)
    # What copilot closes (s3.close): the client cache a session keeps.
    assert "self._s3creator = " in inspect.getsource(s3fs.S3FileSystem.set_session)
    # And the HTTP filesystem's session (FsspecClient.close ends it).
    from fsspec.implementations.http import HTTPFileSystem

    assert "self._session = " in inspect.getsource(HTTPFileSystem.set_session)
    gcs = gcsfs.core.GCSFileSystem(
        token="anon", endpoint_url="http://127.0.0.1:9", skip_instance_cache=True
    )
    assert inspect.iscoroutinefunction(type(gcs)._call)
    assert isinstance(inspect.getattr_static(gcs, "session"), property)
    assert hasattr(gcs, "requests_timeout")
    azure = adlfs.AzureBlobFileSystem(
        connection_string="DefaultEndpointsProtocol=http;AccountName=a;AccountKey=YWJj;"
        "BlobEndpoint=http://127.0.0.1:9/a;",
        skip_instance_cache=True,
    )
    assert isinstance(azure.service_client, BlobServiceClient)


def test_the_private_gcsfs_and_azure_api_copilot_uses_is_there() -> None:
    """The GCS and Azure fast paths and retry bounds rely on these; fail loudly if they move."""
    import inspect

    import gcsfs
    import gcsfs.core
    from azure.storage.blob.aio import BlobServiceClient

    from copilot.storage.gcs import RETRYING, SINCE_2026_6

    for name in RETRYING:
        method = getattr(gcsfs.core.GCSFileSystem, name, None)
        if method is None and name in SINCE_2026_6:
            continue  # an older gcsfs: nothing to unwrap
        assert method is not None, name
        assert inspect.iscoroutinefunction(method.__wrapped__), name
    for name in ("initiate_upload", "simple_upload"):
        assert inspect.iscoroutinefunction(getattr(gcsfs.core, name)), name
    for name in ("_set_session", "_get_headers", "_get_params", "url", "split_path"):
        assert callable(getattr(gcsfs.core.GCSFileSystem, name)), name
    client = BlobServiceClient.from_connection_string(
        "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=YWJj;BlobEndpoint=http://127.0.0.1:9/a;"
    )
    policy = client._config.retry_policy
    assert policy in client._pipeline._impl_policies
    for name in ("total_retries", "connect_retries", "read_retries", "status_retries"):
        assert isinstance(getattr(policy, name), int), name
    assert client._config.max_single_get_size and client._config.max_chunk_get_size


@pytest.mark.parametrize("engine", ["obstore", "fsspec"])
def test_upload_memory_budget_is_respected(
    s3: S3, tmp_path: Path, monkeypatch, engine: str
) -> None:
    """All uploads together never hold more than the byte budget in buffers: small
    files whole, and multipart uploads their parts (obstore holds (parts in
    flight + 1) whole parts per upload; fsspec's bounded path a window per part)."""
    from copilot.storage import obstore_engine

    budget = 12 << 20 if engine == "obstore" else 6 << 20
    monkeypatch.setattr(
        Store, "default_limits", TransferLimits(upload_budget=budget, part_size=5 << 20)
    )
    monkeypatch.setattr(obstore_engine, "PARTS_IN_FLIGHT", 1)  # 10 MiB per upload
    peak = [0]
    original = chunked.ByteBudget.acquire

    async def tracking(self, n):
        await original(self, n)
        peak[0] = max(peak[0], self.used)

    monkeypatch.setattr(chunked.ByteBudget, "acquire", tracking)
    files = []
    for i in range(12):
        p = tmp_path / f"f{i}"
        p.write_bytes(os.urandom(1 << 20))
        files.append(Transfer(str(p), s3.uri(f"m/f{i}"), f"f{i}", 1 << 20))
    # and two multipart uploads, whose parts share the same budget
    bigs = []
    for i in range(2):
        big = tmp_path / f"big{i}"
        big.write_bytes(os.urandom(16 << 20))
        files.append(Transfer(str(big), s3.uri(f"m/big{i}"), "big", 16 << 20))
        bigs.append(big)
    s3.store(8, engine=engine).upload(files)
    assert 0 < peak[0] <= budget
    expected = [f"m/f{i}" for i in range(12)] + ["m/big0", "m/big1"]
    assert sorted(s3.keys("m/")) == sorted(expected)
    for i, big in enumerate(bigs):
        assert s3.get(f"m/big{i}") == big.read_bytes()


def test_s3_part_bodies_are_never_copied_whole_on_their_way_out(
    s3: S3, tmp_path: Path, monkeypatch
) -> None:
    """aiohttp copies a whole in-memory body on its way out (a BytesIO's
    getbuffer(), or the 3.11 transport's buffer for bytes): a 16 MiB copy per part
    in flight.  Part bodies go to aiohttp as slices of the bytes read, never whole."""
    from aiohttp import payload

    monkeypatch.setattr(Store, "default_limits", TransferLimits(part_size=5 << 20))
    whole: list[int] = []
    for cls in (payload.BytesIOPayload, payload.BytesPayload):
        original = cls.__init__

        def spying(self, value, *args, _original=original, **kwargs):
            size = value.getbuffer().nbytes if hasattr(value, "getbuffer") else len(value)
            if size > chunked.SEND_SLICE:
                whole.append(size)
            _original(self, value, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", spying)
    big = tmp_path / "big"
    big.write_bytes(os.urandom((12 << 20) + 5))
    # One file in parts (read from the file as they go), one small enough for a
    # single PUT (its bytes go out in slices).
    single = tmp_path / "single"
    single.write_bytes(os.urandom((3 << 20) + 7))
    s3.store(4).upload(
        [
            Transfer(str(big), s3.uri("sliced/big"), "big"),
            Transfer(str(single), s3.uri("sliced/single"), "single"),
        ]
    )
    assert s3.get("sliced/big") == big.read_bytes()
    assert s3.get("sliced/single") == single.read_bytes()
    assert whole == [], f"bodies handed over whole: {whole}"


def test_parts_in_flight_are_not_bounded_by_their_size(
    remote: Remote, tmp_path: Path, monkeypatch
) -> None:
    """A part (an S3 part, an Azure block) is read from its file as it is sent, so
    it costs the budget a slice's worth, not its size: three 5 MiB parts go up at
    once under a 6 MiB budget (with whole parts in memory, one at a time would fit).
    GCS sends a large file as one resumable session, part after part."""

    if remote.protocol == "gs":
        pytest.skip("GCS uploads one resumable session, in order")
    if remote.engine != "fsspec":
        pytest.skip("obstore holds parts whole: test_upload_memory_budget_is_respected")
    monkeypatch.setattr(
        Store, "default_limits", TransferLimits(upload_budget=6 << 20, part_size=5 << 20)
    )
    peak = {"used": 0, "parts": 0}
    live = [0]
    original = chunked.ByteBudget.acquire
    release = chunked.ByteBudget.release

    async def acquiring(self, n):
        await original(self, n)
        live[0] += 1
        peak["used"] = max(peak["used"], self.used)
        peak["parts"] = max(peak["parts"], live[0])

    async def releasing(self, n):
        live[0] -= 1
        await release(self, n)

    monkeypatch.setattr(chunked.ByteBudget, "acquire", acquiring)
    monkeypatch.setattr(chunked.ByteBudget, "release", releasing)
    big = tmp_path / "big"
    big.write_bytes(os.urandom((40 << 20) + 11))
    digests: dict[str, str] = {}
    remote.store(4).upload([Transfer(str(big), remote.uri("win/big"), "big")], digests)
    assert remote.get("win/big") == big.read_bytes()
    assert digests[remote.uri("win/big")] == _sha(big)  # hashed in order, beside the sending
    assert peak["parts"] >= 3, peak  # whole 5 MiB parts: one, and the 11-byte tail
    assert peak["used"] <= 6 << 20, peak


@pytest.mark.parametrize("engine", ["obstore", "fsspec"])
def test_a_part_that_fails_is_sent_again_whole_from_its_file(
    s3: S3, tmp_path: Path, monkeypatch, engine: str
) -> None:
    """A part that fails is sent again alone, all its bytes read afresh: by copilot's
    loop on the fsspec engine (a fresh window from the file), by obstore's own on
    the native one; one loop either way, so the object is the file."""

    monkeypatch.setattr(Store, "default_limits", TransferLimits(part_size=5 << 20))
    big = tmp_path / "big"
    big.write_bytes(os.urandom((11 << 20) + 3))
    # Part 2 fails three times, then goes through on the fourth try.
    from copilot.storage.retry import RetryPolicy

    quick = RetryPolicy(base=0.01, cap=0.05)  # the back-off is not what is tested
    with FaultProxy(s3.upstream, mode="500", first=3, only_path="partNumber=2") as proxy:
        store = s3.store(4, endpoint=proxy.url, engine=engine, retry=quick)
        store.upload([Transfer(str(big), s3.uri("again/big"), "big")])
        sent = [p for m, p, _ in proxy.seen if m == "PUT" and "partNumber=2" in p]
    assert len(sent) == 4, sent
    assert s3.get("again/big") == big.read_bytes()


def test_a_file_window_reads_its_span_and_restarts_from_the_top(tmp_path: Path) -> None:
    """What botocore (read/seek/tell/len) and aiohttp (async iteration) see of a part."""
    import asyncio

    data = os.urandom(chunked.SEND_SLICE * 2 + 100)
    path = tmp_path / "f"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        start, length = 50, chunked.SEND_SLICE * 2 + 20
        window = chunked.FileWindow(fd, start, length, str(path))
        assert len(window) == length
        assert window.read(10) == data[start : start + 10] and window.tell() == 10
        assert window.read() == data[start + 10 : start + length]
        assert window.read(5) == b""
        assert window.seek(0, 2) == length and window.seek(0) == 0

        async def sent() -> list[bytes]:
            return [bytes(piece) async for piece in window]

        first, second = asyncio.run(sent()), asyncio.run(sent())
        assert first == second and b"".join(first) == data[start : start + length]
        assert max(len(p) for p in first) == chunked.SEND_SLICE
        os.truncate(path, start + 100)  # the file shrinks under an upload
        with pytest.raises(OSError, match="shrank while it was uploaded"):
            window.seek(0)
            window.read()
    finally:
        os.close(fd)


def test_a_sliced_body_can_be_sent_again_from_the_top() -> None:
    """botocore resends a request after rewinding its body with seek(0)."""
    import asyncio
    import io
    from types import SimpleNamespace

    from copilot.storage import s3 as s3_module

    data = os.urandom(chunked.SEND_SLICE * 2 + 3)
    request = SimpleNamespace(body=io.BytesIO(data))
    s3_module._sliced_body(request)

    async def read_all() -> bytes:
        return b"".join([bytes(piece) async for piece in request.body])

    first = asyncio.run(read_all())
    request.body.seek(0)
    assert first == data and asyncio.run(read_all()) == data
    streamed = SimpleNamespace(body=object())  # TLS: botocore's own streaming wrapper
    s3_module._sliced_body(streamed)
    assert type(streamed.body) is object


def test_transfers_never_exceed_the_concurrency_bound(remote: Remote, tmp_path: Path) -> None:
    """Requests in flight, counted where they arrive (each held a little so they
    overlap): never more than the store's concurrency."""
    for i in range(12):
        remote.put(f"many/{i}", b"x" * 1000)
    with FaultProxy(remote.upstream, delay=0.05) as proxy:
        proxy.count_path = "many"
        store = remote.store(3, endpoint=proxy.url)
        transfers = [
            Transfer(remote.uri(f"many/{i}"), str(tmp_path / str(i)), str(i)) for i in range(12)
        ]
        assert store.download(transfers) == 12 * 1000
    assert 1 < proxy.peak <= 3, proxy.peak


def test_local_transfers_copy_one_at_a_time_in_the_calling_thread(
    tmp_path: Path, monkeypatch
) -> None:
    """Local copies are kernel work: no pool, no thread, whatever the concurrency."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(30):
        (src / str(i)).write_bytes(b"y" * 100)
    store = Store(concurrency=4)
    threads: set[int] = set()
    from copilot.storage import local_copy

    original = local_copy._copy_plain

    def recording(a: str, b: str) -> int:
        threads.add(threading.get_ident())
        return original(a, b)

    monkeypatch.setattr(local_copy, "_copy_plain", recording)
    before = set(threading.enumerate())
    transfers = [
        Transfer(str(src / str(i)), str(tmp_path / "dst" / str(i)), str(i)) for i in range(30)
    ]
    assert store.download(transfers) == 3000
    assert threads == {threading.get_ident()}
    # No thread was started (one an earlier test left may have ended meanwhile).
    assert not set(threading.enumerate()) - before
    assert sorted(p.name for p in (tmp_path / "dst").iterdir()) == sorted(map(str, range(30)))


def test_memory_store_round_trip_through_the_thread_pool(tmp_path: Path) -> None:
    """A sync, non-local backend (memory://) goes through the bounded thread pool."""
    store = Store(concurrency=3)
    files = []
    for i in range(10):
        p = tmp_path / f"f{i}"
        p.write_bytes(os.urandom(1000 + i))
        files.append(Transfer(str(p), f"memory://copilot-test/{i}", str(i), 1000 + i))
    assert store.upload(files) == sum(1000 + i for i in range(10))
    back = [
        Transfer(f"memory://copilot-test/{i}", str(tmp_path / "back" / str(i)), str(i))
        for i in range(10)
    ]
    assert store.download(back) == sum(1000 + i for i in range(10))
    for i in range(10):
        assert (tmp_path / "back" / str(i)).read_bytes() == (tmp_path / f"f{i}").read_bytes()
    assert not list((tmp_path / "back").glob("*.copilot-part"))


def test_documents_are_read_whole_under_the_limit_and_refused_over_it(remote: Remote) -> None:
    """A ranged read of the limit plus a byte: an empty object (no byte 0, a 416)
    and one exactly at the limit come through; one byte more is refused for good."""
    import dataclasses

    from copilot.errors import NON_RECOVERABLE, StorageError

    store = remote.store(4)
    store.config = dataclasses.replace(store.config, max_download_mb=1)
    for n in (0, 1, 1 << 20):
        assert store.read_bytes(remote.put(f"docs/{n}.pb", b"x" * n)) == b"x" * n
    with pytest.raises(StorageError, match="more than 1048576 bytes is over") as info:
        store.read_bytes(remote.put("docs/over.pb", b"x" * ((1 << 20) + 1)))
    assert info.value.kind == NON_RECOVERABLE


def test_a_range_that_keeps_failing_is_tried_retries_times_never_retries_squared(
    remote: Remote, tmp_path: Path, monkeypatch
) -> None:
    """One loop per operation: the ranges after the first fail for good (500); each is
    tried --retries times by its own loop, and the file's loop does not start the
    whole download again on top (that would be attempts x attempts requests)."""
    from copilot.errors import CopilotError

    monkeypatch.setattr(Store, "default_limits", TransferLimits(range_size=1 << 20))
    data = os.urandom((3 << 20) + 5)
    remote.put("sq/bigobj", data)
    with FaultProxy(remote.upstream, mode="500", rate=1.0, after=1, only_path="bigobj") as proxy:
        store = remote.store(4, endpoint=proxy.url).scoped(CancelToken(), attempts=3)
        with pytest.raises(CopilotError):
            store.download([Transfer(remote.uri("sq/bigobj"), str(tmp_path / "big"), "big")])
        gets = [r for m, p, r in proxy.seen if m == "GET" and "bigobj" in p]
    # The first range, then at most three tries of each of the (at most three)
    # ranges in flight when the first of them gave up.  Under s3fs a request may
    # reach the server twice (aiohttp sends it again on a connection the error
    # response left behind): still one retry loop, not attempts x attempts.
    resends = 2 if (remote.protocol, remote.engine) == ("s3", "fsspec") else 1
    assert 2 <= len(gets) <= 1 + 3 * 3 * resends, gets
    assert not list(tmp_path.glob("big*")), "a partial file was left"


def _progress_both_ways(store, uri, tmp_path: Path) -> None:
    from copilot.progress import Progress

    sizes = [0, 1, 70_000, 3 << 20]
    for i, size in enumerate(sizes):
        (tmp_path / f"f{i}").write_bytes(os.urandom(size))
    up = Progress("up", enabled=False)
    store.progress = up
    store.upload([Transfer(str(tmp_path / f"f{i}"), uri(f"p/f{i}"), f"f{i}") for i in range(4)])
    assert (up.bytes, up.files) == (sum(sizes), 4)
    down = Progress("down", enabled=False)
    store.progress = down
    got = tmp_path / "got"
    got.mkdir()
    store.download([Transfer(uri(f"p/f{i}"), str(got / f"f{i}"), f"f{i}") for i in range(4)])
    assert (down.bytes, down.files) == (sum(sizes), 4)


def test_progress_counts_every_byte_and_file_both_ways(remote: Remote, tmp_path: Path) -> None:
    """Each engine reports through copilot's callback: the progress line's totals
    are exact, on the native engine and on fsspec's (whose own transfers call the
    adapter)."""
    _progress_both_ways(remote.store(4), remote.uri, tmp_path)


def test_progress_counts_fsspecs_own_transfers_too(tmp_path: Path) -> None:
    """memory:// is fsspec's get_file/put_file with copilot's callback adapter."""
    from copilot.config import StorageConfig
    from copilot.storage import Store

    base = f"memory://progress-{uuid.uuid4().hex[:8]}"
    store = Store(StorageConfig(kind="local"), concurrency=4)
    _progress_both_ways(store, lambda key: f"{base}/{key}", tmp_path)
    # The adapter itself: fsspec's transfer reports each byte as it goes (the
    # totals above would also hold if only the end of a file were counted).
    import fsspec

    from copilot.progress import Progress
    from copilot.storage.callback import TransferCallback
    from copilot.storage.fsspec_engine import fsspec_callback

    counted = Progress("get", enabled=False)
    fsspec.filesystem("memory").get_file(
        f"{base}/p/f3", str(tmp_path / "again"), callback=fsspec_callback(TransferCallback(counted))
    )
    assert (counted.bytes, counted.files) == (3 << 20, 0)


# -- one task group: the first failure stops the rest -------------------------------


def _gated_memory_store(monkeypatch, fail: set[str], concurrency: int = 4):
    """A memory:// store whose uploads of ``fail`` fail for good at once, while every
    other upload waits on an event nobody sets: only cancellation ends them."""
    import asyncio

    from copilot.errors import NON_RECOVERABLE, StorageError
    from copilot.storage import Store

    store = Store(concurrency=concurrency)
    client = store.client("memory")
    started: list[str] = []
    cancelled: list[str] = []

    async def put_file(source, path, budget, callback, retry, digest=None, limits=None):  # type: ignore[no-untyped-def]
        name = path.rsplit("/", 1)[-1]
        started.append(name)
        if name in fail:
            raise StorageError(f"upload {name}: access denied", kind=NON_RECOVERABLE)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(name)
            raise
        return source.size

    monkeypatch.setattr(client, "put_file", put_file)
    return store, started, cancelled


def test_the_first_failure_cancels_every_other_transfer(tmp_path, monkeypatch) -> None:
    """Three uploads hang, one fails: the call raises that failure and the three are
    cancelled, instead of the call waiting for them (a gather would hang here)."""
    from copilot.errors import CopilotError
    from copilot.storage import Transfer

    store, started, cancelled = _gated_memory_store(monkeypatch, {"f3"})
    files = []
    for i in range(4):
        (tmp_path / f"f{i}").write_bytes(b"x")
        files.append(Transfer(str(tmp_path / f"f{i}"), f"memory://group/f{i}", f"f{i}", 1))
    with pytest.raises(CopilotError, match="^f3: upload f3: access denied"):
        store.upload(files)
    assert sorted(started) == ["f0", "f1", "f2", "f3"]
    assert sorted(cancelled) == ["f0", "f1", "f2"]


def test_a_failure_in_one_dir_does_not_deadlock_the_producer_waiting_on_another(
    tmp_path, monkeypatch
) -> None:
    """Dirs b (2 files) then a (3), a tree window of 2.  The producer queues b's files, then a0
    and a1, which hang, and waits on a's window to queue a2; meanwhile b0 fails.
    The failure must stop the producer waiting on *a*'s window (and the hanging
    uploads) at once, not leave the call waiting for the step's timeout."""
    from copilot.errors import CopilotError
    from copilot.storage import Transfer

    monkeypatch.setattr(Store, "default_limits", TransferLimits(tree_window=2))
    store, started, cancelled = _gated_memory_store(monkeypatch, {"b0"}, concurrency=8)
    trees = []
    for tree, count in (("b", 2), ("a", 3)):
        leaves = []
        for i in range(count):
            path = tmp_path / tree / f"{tree}{i}"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(b"x")
            leaves.append((f"{tree}{i}", str(path), 1))
        trees.append(
            Transfer(
                str(tmp_path / tree),
                f"memory://deadlock/{tree}",
                f"output {tree!r}",
                tree=True,
                leaves=lambda leaves=leaves: iter(leaves),
            )
        )
    with pytest.raises(CopilotError, match="^output 'b': upload b0: access denied"):
        store.upload(trees)
    assert "a2" not in started  # the producer was stopped at a's window
    assert {"a0", "a1", "b1"} <= set(cancelled)


def test_an_object_replaced_during_a_ranged_download_is_never_torn(
    remote: Remote, tmp_path: Path, monkeypatch
) -> None:
    """The object is replaced after its first range arrived: the later ranges are
    pinned to the first response's version (ETag, generation), so they are refused
    and the download starts over on the new version; it never mixes the two."""
    from copilot.storage import driver

    step = 256 << 10
    monkeypatch.setattr(Store, "default_limits", TransferLimits(range_size=step))
    old, new = os.urandom(4 * step), os.urandom(4 * step)
    uri = remote.put("torn/x.bin", old)
    real = driver.download
    replaced: list[bool] = []

    async def replacing(*args, **kwargs):  # type: ignore[no-untyped-def]
        if not replaced:  # the first attempt: its first range is in; now swap the object
            replaced.append(True)
            import asyncio

            await asyncio.to_thread(remote.put, "torn/x.bin", new)
        return await real(*args, **kwargs)

    monkeypatch.setattr(driver, "download", replacing)
    target = tmp_path / "x.bin"
    remote.store().download([Transfer(uri, str(target), "x")])
    # The ranges after the first were refused (pinned to the old version), and the
    # object was fetched again whole: the new version, never a mix.
    assert target.read_bytes() == new
    assert replaced


def test_an_object_that_keeps_changing_is_an_error_saying_so(
    s3: S3, tmp_path: Path, monkeypatch
) -> None:
    from copilot.errors import CopilotError
    from copilot.storage import driver

    monkeypatch.setattr(Store, "default_limits", TransferLimits(range_size=256 << 10))
    uri = s3.put("busy/x.bin", os.urandom(1 << 20))
    real = driver.download

    async def replacing(*args, **kwargs):  # type: ignore[no-untyped-def]
        import asyncio

        await asyncio.to_thread(s3.put, "busy/x.bin", os.urandom(1 << 20))
        return await real(*args, **kwargs)

    monkeypatch.setattr(driver, "download", replacing)
    target = tmp_path / "x.bin"
    with pytest.raises(CopilotError, match=r"^x: .*busy/x.bin changed while it was downloaded, "):
        s3.store().download([Transfer(uri, str(target), "x")])
    assert not target.exists() and not list(tmp_path.iterdir())


def test_too_many_open_files_is_a_moments_shortage_not_a_permanent_failure(
    tmp_path: Path, monkeypatch
) -> None:
    """EMFILE while opening a file to upload is retried under the policy; past it,
    the failure is copilot's own (SYSTEM) and RECOVERABLE, not the container's."""
    import errno

    import copilot.storage.transfer as transfer
    from copilot.errors import RECOVERABLE, SYSTEM, CopilotError
    from copilot.storage import Store
    from copilot.storage.retry import RetryPolicy, is_transient

    assert is_transient(OSError(errno.EMFILE, "Too many open files"))
    real = transfer.open_source
    refusals = {"left": 2}

    def short_of_files(*args, **kwargs):  # type: ignore[no-untyped-def]
        if refusals["left"]:
            refusals["left"] -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        return real(*args, **kwargs)

    monkeypatch.setattr(transfer, "open_source", short_of_files)
    (tmp_path / "f").write_bytes(b"data")
    store = Store(retry=RetryPolicy(attempts=5, base=0.001))
    store.upload([Transfer(str(tmp_path / "f"), "memory://emfile/f", "f", 4)])
    assert refusals["left"] == 0 and store.read_bytes("memory://emfile/f") == b"data"
    refusals["left"] = 99
    with pytest.raises(CopilotError) as info:
        Store(retry=RetryPolicy(attempts=2, base=0.001)).upload(
            [Transfer(str(tmp_path / "f"), "memory://emfile/g", "f", 4)]
        )
    assert (info.value.origin, info.value.kind) == (SYSTEM, RECOVERABLE)
    assert "Too many open files" in info.value.message


#: What a store's multipart requests (parts, the session, blocks) hold in their URL.
_UPLOAD_REQUESTS = {"s3": "uploadId", "gs": "upload_id", "abfs": "comp=block"}


def test_a_store_gone_mid_upload_reports_the_first_cause_not_the_clean_up(
    remote_everyday_s3: Remote, tmp_path: Path, monkeypatch, caplog
) -> None:
    """The store stops answering once a multipart upload has begun, so the abort
    after the failed part fails too: the error is the upload's, never the abort's
    (``Error performing DELETE …?uploadId=…``), and the failed clean-up is a
    warning.  (Azure has no abort: its uncommitted blocks are discarded.)"""
    remote = remote_everyday_s3
    import logging

    from copilot.errors import RECOVERABLE, StorageError

    caplog.set_level(logging.WARNING, "copilot")
    monkeypatch.setattr(Store, "default_limits", TransferLimits(part_size=1 << 20))
    (tmp_path / "big").write_bytes(os.urandom(6 << 20))
    only = _UPLOAD_REQUESTS[remote.protocol]
    after = 0 if remote.protocol == "gs" else 1  # GCS: one PUT to the session
    with FaultProxy(remote.upstream, mode="drop", rate=1.0, only_path=only, after=after) as proxy:
        store = remote.store(4, endpoint=proxy.url).scoped(CancelToken(), attempts=2)
        with pytest.raises(StorageError) as info:
            store.upload([Transfer(str(tmp_path / "big"), remote.uri("gone/big"), "big")])
        aborts = [p for m, p, _ in proxy.seen if m == "DELETE"]
    message = str(info.value)
    assert "DELETE" not in message and "abort" not in message.split(":")[-1], message
    assert "upload to" in message and info.value.kind == RECOVERABLE, message
    if remote.protocol != "abfs":
        assert aborts, "the upload was not aborted"
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("failed too" in w for w in warned), warned
    assert not remote.exists("gone/big")


def _connections_to(port: int) -> int:
    """This process's established TCP connections to ``port`` on loopback."""
    mine = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            mine.add(target[8:-1])
    found = 0
    with open("/proc/self/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            remote_port, state, inode = int(fields[2].split(":")[1], 16), fields[3], fields[9]
            found += remote_port == port and state == "01" and inode in mine
    return found


def test_closing_a_store_closes_its_connections(remote: Remote, tmp_path: Path) -> None:
    """``Store.close()`` (a library caller's ``with Store()``) lets go of every
    connection its clients opened, on each engine: none is left to the server."""
    import time

    (tmp_path / "f").write_bytes(b"x" * 1000)
    with FaultProxy(remote.upstream) as proxy:
        port = int(proxy.url.rsplit(":", 1)[1])
        store = remote.store(4, endpoint=proxy.url)
        store.upload([Transfer(str(tmp_path / "f"), remote.uri("conn/f"), "f")])
        store.download([Transfer(remote.uri("conn/f"), str(tmp_path / "g"), "g")])
        assert _connections_to(port) > 0  # the pool keeps them open between calls
        store.close()
        for _ in range(100):  # the peer sees the close a moment later, never never
            if not _connections_to(port):
                break
            time.sleep(0.05)
        assert _connections_to(port) == 0


@pytest.mark.parametrize(
    "size",
    [1000, pytest.param(11 << 20, marks=pytest.mark.slow)],
    ids=["one-request", "multipart"],
)
def test_a_store_that_is_down_for_a_while_is_waited_out_not_given_up_on(
    s3: S3, tmp_path: Path, monkeypatch, size: int
) -> None:
    """The store answers 503 to its first eight requests (a restart, a throttle):
    more failures than ``attempts``, which ends the upload at once without
    ``patience``; with it, the upload waits the store out and lands whole (a
    small file in copilot's loop; a multipart one in obstore's, same policy)."""
    from copilot.errors import CopilotError
    from copilot.storage.retry import RetryPolicy

    monkeypatch.setattr(Store, "default_limits", TransferLimits(part_size=5 << 20))
    data = os.urandom(size)
    (tmp_path / "f").write_bytes(data)
    fast = RetryPolicy(attempts=2, base=0.01, cap=0.05)
    for patience, lands in ((0.0, False), (60.0, True)):
        key = f"down/{patience}"
        with FaultProxy(s3.upstream, mode="503", first=8, only_path="/down/") as proxy:
            store = s3.store(4, endpoint=proxy.url)
            store.retry = fast
            store = store.scoped(CancelToken(), patience=patience)
            try:
                store.upload([Transfer(str(tmp_path / "f"), s3.uri(key), "f")])
            except CopilotError:
                assert not lands, "gave up with patience left"
            else:
                assert lands, "retried past its attempts without patience"
                assert proxy.faults and s3.get(key) == data


def test_a_transfer_that_stops_moving_is_stopped_by_the_watchdog(
    remote_everyday_s3: Remote, tmp_path: Path, monkeypatch
) -> None:
    """The store takes the request and never answers (well within every read
    timeout): the watchdog stops the call once nothing has moved for
    ``stall_seconds``, and it fails saying so; nothing partial is left."""
    remote = remote_everyday_s3
    from copilot.errors import RECOVERABLE, StorageError

    uri = remote.put("stall/f", b"x" * 1000)
    with FaultProxy(
        remote.upstream, mode="stall", rate=1.0, stall_seconds=60, only_path="stall"
    ) as proxy:
        monkeypatch.setattr(store_module, "WATCH_SECONDS", 0.1)
        store = remote.store(4, endpoint=proxy.url)
        store.stall_seconds = 1
        with pytest.raises(StorageError, match=r"no transfer progress for 1s") as info:
            store.download([Transfer(uri, str(tmp_path / "f"), "f")])
        assert proxy.faulted.is_set()
    assert info.value.kind == RECOVERABLE
    assert not list(tmp_path.iterdir())


def test_a_cancelled_call_answers_even_when_its_transfers_never_stop(monkeypatch) -> None:
    """An engine call that ignores cancellation (here: it blocks its loop's thread,
    as a native call that never returns would): cancelling the token (SIGTERM,
    the deadline) still answers the caller, after ``unwind_seconds``."""
    import asyncio

    from copilot.cancel import Cancelled
    from copilot.storage.loop import event_loop

    class Stuck:
        loop = asyncio.new_event_loop()

    threading.Thread(target=Stuck.loop.run_forever, daemon=True).start()
    release = threading.Event()

    async def never_stops() -> None:
        release.wait(60)  # blocks the loop's thread: no cancellation gets in

    monkeypatch.setattr(store_module, "WATCH_SECONDS", 0.1)
    token = CancelToken()
    store = Store(cancel=token)
    store.unwind_seconds = 0.5
    threading.Timer(0.2, token.cancel, args=("SIGTERM",)).start()
    try:
        with pytest.raises(Cancelled, match="SIGTERM"):
            store._await(Stuck(), never_stops())  # type: ignore[arg-type]
    finally:
        release.set()
        Stuck.loop.call_soon_threadsafe(Stuck.loop.stop)
    assert event_loop().is_running()  # the shared loop was never involved


@pytest.mark.parametrize("engine", ["obstore", pytest.param("fsspec", marks=pytest.mark.slow)])
def test_a_cancelled_multipart_upload_is_aborted_not_left_on_the_store(
    s3: S3, tmp_path: Path, monkeypatch, engine: str
) -> None:
    """SIGTERM (here: the token) in the middle of a multipart upload: the upload is
    aborted, so no parts are left on the service for a lifecycle rule to find.
    (Dropping obstore's future, what a plain cancel does, leaves them.)"""
    from copilot.cancel import Cancelled

    monkeypatch.setattr(Store, "default_limits", TransferLimits(part_size=5 << 20))
    (tmp_path / "big").write_bytes(os.urandom(40 << 20))
    with FaultProxy(s3.upstream, delay=0.3) as proxy:
        token = CancelToken()
        store = s3.store(4, endpoint=proxy.url, engine=engine).scoped(token)
        outcome: list[BaseException | None] = []

        def upload() -> None:
            try:
                store.upload([Transfer(str(tmp_path / "big"), s3.uri("cut/big"), "big")])
                outcome.append(None)
            except BaseException as exc:  # noqa: BLE001 - judged below
                outcome.append(exc)

        runner = threading.Thread(target=upload)
        runner.start()
        for _ in range(600):
            if any("partNumber=" in p for _, p, _ in proxy.seen):
                break
            threading.Event().wait(0.05)
        token.cancel("SIGTERM")
        runner.join(60)
        assert not runner.is_alive()
    assert isinstance(outcome[0], Cancelled), outcome
    left = s3.client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads", [])
    assert left == [], "a cancelled multipart upload left its parts"
    assert not s3.exists("cut/big")


def test_a_cancelled_download_through_a_synchronous_filesystem_leaves_no_temp_file(
    tmp_path: Path,
) -> None:
    """A synchronous fsspec filesystem's call runs in a thread, which a cancellation
    cannot stop: the download waits for it before cleaning up, so the thread's
    late write is not left behind as ``….copilot-part`` (found by the simulation)."""
    from fsspec.implementations.memory import MemoryFileSystem

    from copilot.cancel import Cancelled
    from copilot.storage.fsspec_engine import FsspecClient

    started, release, wrote = threading.Event(), threading.Event(), threading.Event()

    class Slow(MemoryFileSystem):
        def get_file(self, rpath, lpath, **kwargs):  # type: ignore[no-untyped-def]
            started.set()
            release.wait(30)  # still writing when the cancellation comes
            try:
                return super().get_file(rpath, lpath, **kwargs)
            finally:
                wrote.set()

    fs = Slow(skip_instance_cache=True)
    fs.pipe_file("/b/f", b"late bytes")
    token = CancelToken()
    store = Store(cancel=token)
    store._clients["memory"] = FsspecClient(fs, "memory")  # type: ignore[assignment]
    outcome: list[BaseException | None] = []

    def download() -> None:
        try:
            store.download([Transfer("memory://b/f", str(tmp_path / "f"), "f")])
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - judged below
            outcome.append(exc)

    runner = threading.Thread(target=download)
    runner.start()
    assert started.wait(30)
    token.cancel("SIGTERM")
    threading.Timer(0.3, release.set).start()  # the thread writes after the cancel
    runner.join(60)
    assert isinstance(outcome[0], Cancelled), outcome
    assert wrote.wait(30)  # the thread is done: what it left is there to see
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_changed_size_after_it_was_checked_is_refused(tmp_path: Path) -> None:
    """The outputs were read (and the file's size taken), then the container's
    process rewrote the file: its upload is refused as the container's doing,
    naming both sizes, and nothing is sent."""
    from copilot.errors import USER, DataError

    src = tmp_path / "out" / "f"
    src.parent.mkdir()
    src.write_bytes(b"x" * 7)
    dst = tmp_path / "store"
    with pytest.raises(
        DataError, match=r"changed size after it was checked \(3 then 7 bytes\); refused"
    ) as info:
        Store().upload([Transfer(str(src), f"file://{dst}/f", "o", size=3, inside=str(src.parent))])
    assert info.value.origin == USER
    assert not dst.exists() or not list(dst.iterdir())


def test_a_file_that_grows_while_it_is_uploaded_is_refused_as_the_containers_doing(
    tmp_path: Path,
) -> None:
    """Bytes appended after the file was opened for its upload: the object would not
    be the file, so the upload is refused (USER: the container's processes wrote
    after it was declared done), naming both sizes."""
    from copilot.errors import USER, DataError
    from copilot.storage.files import LocalSource
    from copilot.storage.transfer import sent_whole

    path = tmp_path / "f"
    path.write_bytes(b"x" * 5)
    fd = os.open(path, os.O_RDONLY)
    try:
        source = LocalSource(fd, 5, str(path))
        with path.open("ab") as more:
            more.write(b"y" * 4)
        with pytest.raises(
            DataError, match=r"changed size while it was uploaded \(5 then 9 bytes\); refused"
        ) as info:
            sent_whole(Transfer(str(path), "s3://b/f", "o"), source, 5)
        assert info.value.origin == USER
    finally:
        os.close(fd)
