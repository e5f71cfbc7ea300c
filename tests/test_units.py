"""Fast unit tests: text formats, duration parsing, flag and config handling."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from copilot._argv import split_global_flags
from copilot.cli import main_group
from copilot.config import FlagOverrides, StorageConfig, parse_pairs, resolve_settings
from copilot.durations import format_duration_ns, parse_go_duration
from copilot.errors import DataError, UsageError
from copilot.literals.text import format_float, format_timestamp
from copilot.paths import safe_name
from copilot.storage import display_uri, join_uri, protocol_of


@pytest.mark.parametrize(
    "value,text",
    [
        (1.0, "1"),
        (0.1, "0.1"),
        (1e21, "1000000000000000000000"),
        (1e-7, "0.0000001"),
        (-2.5, "-2.5"),
        (123456789.125, "123456789.125"),
        (5e-324, "0." + "0" * 323 + "5"),
        (float("nan"), "NaN"),
        (float("inf"), "+Inf"),
        (float("-inf"), "-Inf"),
    ],
)
def test_format_float(value: float, text: str) -> None:
    assert format_float(value) == text


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_format_float_round_trips_without_exponent(value: float) -> None:
    text = format_float(value)
    assert "e" not in text.lower()
    assert float(text) == value


@pytest.mark.parametrize(
    "ns,text",
    [
        (0, "0s"),
        (1, "1ns"),
        (100, "100ns"),
        (1500, "1.5µs"),
        (300_000_000, "300ms"),
        (1_500_000_000, "1.5s"),
        (3723 * 10**9, "1h2m3s"),
        (7200 * 10**9, "2h0m0s"),
        (60 * 10**9, "1m0s"),
        (-3600 * 10**9, "-1h0m0s"),
        (90061 * 10**9 + 500_000_000, "25h1m1.5s"),
    ],
)
def test_format_duration(ns: int, text: str) -> None:
    assert format_duration_ns(ns) == text


@given(st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1))
def test_go_duration_round_trip(ns: int) -> None:
    assert parse_go_duration(format_duration_ns(ns)) == ns


@pytest.mark.parametrize(
    "text,ns",
    [
        ("1h0m0s", 3600 * 10**9),
        ("90s", 90 * 10**9),
        ("1h30m", 5400 * 10**9),
        ("0", 0),
        ("-1.5h", -5400 * 10**9),
        ("300ms", 300_000_000),
        ("2us", 2000),
        ("2μs", 2000),
    ],
)
def test_parse_go_duration(text: str, ns: int) -> None:
    assert parse_go_duration(text) == ns


@pytest.mark.parametrize("text", ["", "1", "h", "1x", "1.2.3s", "--1s"])
def test_parse_go_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_go_duration(text)


@pytest.mark.parametrize(
    "seconds,nanos,text",
    [
        (0, 0, "1970-01-01T00:00:00Z"),
        (1704164645, 500_000_000, "2024-01-02T03:04:05.5Z"),
        (1704164645, 1, "2024-01-02T03:04:05.000000001Z"),
        (-62135596800, 0, "0001-01-01T00:00:00Z"),
    ],
)
def test_format_timestamp(seconds: int, nanos: int, text: str) -> None:
    assert format_timestamp(seconds, nanos) == text


def test_parse_pairs_keeps_commas_inside_values() -> None:
    assert parse_pairs("a=1,b=x,y,c=", "f") == {"a": "1", "b": "x,y", "c": ""}
    with pytest.raises(UsageError):
        parse_pairs("novalue", "f")


def test_split_global_flags_everywhere() -> None:
    overrides, rest = split_global_flags(
        [
            "--storage.type=stow",
            "--config",
            "/etc/flyte/copilot/*.yaml",
            "--storage.stow.config",
            "endpoint=http://x:9000",
            "--kubeconfig",
            "/k",
            "download",
            "-f",
            "--storage.not-a-flag-but-a-value",
            "--storage.stow.config=region=r1",
            "--storage.enable-multicontainer",
            "--logger.level",
            "5",
            "-s",
        ],
        main_group,
    )
    assert overrides.storage == {
        "type": "stow",
        "stow": {"config": {"endpoint": "http://x:9000", "region": "r1"}},
        "enable-multicontainer": True,
    }
    assert overrides.logger == {"level": 5}
    # Root flags move before the subcommand; a subcommand's option value is left alone.
    assert rest == [
        "--config",
        "/etc/flyte/copilot/*.yaml",
        "-s",
        "download",
        "-f",
        "--storage.not-a-flag-but-a-value",
    ]


def test_unknown_storage_flag_without_value_is_an_error() -> None:
    with pytest.raises(UsageError, match="unknown flag --storage.nope"):
        split_global_flags(["--storage.nope", "download"], main_group)


def test_s3_options_from_stow_config(tmp_path) -> None:
    secret = tmp_path / "s"
    secret.write_text("from-file\n")
    cfg = StorageConfig(
        kind="s3",
        stow_config={
            "auth_type": "accesskey",
            "access_key_id": "AK",
            "secret_key_path": str(secret),
            "endpoint": "minio:9000",
            "disable_ssl": "true",
            "region": "eu-west-1",
        },
    )
    from copilot.storage import s3

    opts = s3.fsspec_options(cfg, 32)
    assert opts["key"] == "AK" and opts["secret"] == "from-file"
    assert opts["client_kwargs"] == {
        "endpoint_url": "http://minio:9000",
        "region_name": "eu-west-1",
    }
    assert opts["config_kwargs"]["s3"]["addressing_style"] == "path"
    # disable_ssl made the endpoint http://; use_ssl is left out so the endpoint's
    # scheme is the only word (botocore < 1.35 let use_ssl=False rewrite https://).
    assert "use_ssl" not in opts
    no_endpoint = StorageConfig(kind="s3", stow_config={"disable_ssl": "true", "region": "x"})
    assert s3.fsspec_options(no_endpoint, 32)["use_ssl"] is False
    # The same keys on the native engine (the README's table, both columns).
    native = s3.obstore_options(cfg, {})
    assert native["access_key_id"] == "AK" and native["secret_access_key"] == "from-file"
    assert native["endpoint"] == "http://minio:9000" and native["region"] == "eu-west-1"
    assert native["virtual_hosted_style_request"] is False
    assert native["client_options"] == {"allow_http": True}
    assert "from-file" not in repr(cfg.redacted()) and "AK" not in repr(cfg.redacted())


def test_iam_auth_passes_no_keys() -> None:
    from copilot.storage import s3

    cfg = StorageConfig(kind="s3", stow_config={"auth_type": "iam", "region": "us-east-1"})
    opts = s3.fsspec_options(cfg, 32)
    assert "key" not in opts and "secret" not in opts
    assert "access_key_id" not in s3.obstore_options(cfg, {})


def test_flags_override_config_files(tmp_path) -> None:
    (tmp_path / "a.yaml").write_text("storage:\n  container: from-file\n  type: s3\n")
    overrides = FlagOverrides()
    overrides.set("storage", "container", "str", "from-flag")
    settings = resolve_settings([str(tmp_path / "*.yaml")], overrides)
    assert settings.storage.container == "from-flag"
    assert settings.storage.type == "s3"


def test_bad_yaml_is_a_usage_error(tmp_path) -> None:
    (tmp_path / "bad.yaml").write_text("storage: [unclosed\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        resolve_settings([str(tmp_path / "bad.yaml")], FlagOverrides())


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\\b", "a\x00b", "x" * 300])
def test_safe_name_rejects(name: str) -> None:
    with pytest.raises(Exception, match="cannot be used as a file name"):
        safe_name(name, "map key", "input 'm'")


def test_uri_helpers() -> None:
    assert protocol_of("/var/x") == "file"
    assert protocol_of("S3://b/k") == "s3"
    assert join_uri("s3://b/p/", "error.pb") == "s3://b/p/error.pb"
    assert display_uri("https://u:pw@h/x?X-Amz-Signature=abc") == "https://h/x"


# -- type names: what type_name writes, parse_type reads back ----------------------------


def _types() -> st.SearchStrategy:
    from flyteidl2.core import types_pb2

    simple = st.sampled_from(
        [
            types_pb2.INTEGER,
            types_pb2.FLOAT,
            types_pb2.STRING,
            types_pb2.BOOLEAN,
            types_pb2.DATETIME,
            types_pb2.DURATION,
            types_pb2.BINARY,
            types_pb2.STRUCT,
        ]
    ).map(lambda s: types_pb2.LiteralType(simple=s))
    fmt = st.sampled_from(["", "csv", "parquet", "fastq.gz"])
    blob = st.builds(
        lambda f, multi: types_pb2.LiteralType(
            blob=types_pb2.BlobType(
                format=f,
                dimensionality=types_pb2.BlobType.MULTIPART if multi else types_pb2.BlobType.SINGLE,
            )
        ),
        fmt,
        st.booleans(),
    )
    enum = st.lists(st.text(min_size=0, max_size=8), min_size=1, max_size=4, unique=True).map(
        lambda vs: types_pb2.LiteralType(enum_type=types_pb2.EnumType(values=vs))
    )
    dataset = fmt.map(
        lambda f: types_pb2.LiteralType(
            structured_dataset_type=types_pb2.StructuredDatasetType(format=f)
        )
    )
    leaves = st.one_of(simple, blob, enum, dataset)

    def extend(inner: st.SearchStrategy) -> st.SearchStrategy:
        none = types_pb2.LiteralType(simple=types_pb2.NONE)
        return st.one_of(
            inner.map(lambda t: types_pb2.LiteralType(collection_type=t)),
            inner.map(lambda t: types_pb2.LiteralType(map_value_type=t)),
            inner.map(
                lambda t: types_pb2.LiteralType(union_type=types_pb2.UnionType(variants=[t, none]))
            ),
            st.lists(inner, min_size=2, max_size=3).map(
                lambda ts: types_pb2.LiteralType(union_type=types_pb2.UnionType(variants=ts))
            ),
        )

    return st.recursive(leaves, extend, max_leaves=6)


@given(_types())
def test_parse_type_reads_back_what_type_name_writes(lt) -> None:
    from copilot.interface import parse_type
    from copilot.literals.types import type_name

    assert parse_type(type_name(lt)) == lt


@pytest.mark.parametrize(
    "text", ["list[enum[a, b]]", 'dict[str, enum["a, b", "c]"]]', "Optional[enum[x y, 'it''s']]"]
)
def test_nested_enums_parse(text: str) -> None:
    from copilot.interface import parse_type

    lt = parse_type(text)
    assert lt.WhichOneof("type") in ("collection_type", "map_value_type", "union_type")


def test_configuration_never_prints_a_credential() -> None:
    from copilot.config import Settings

    cfg = StorageConfig.s3(access_key_id="AKIAEXAMPLE", secret_key="s3cr3t", token="tok3n")
    for text in (repr(cfg), str(cfg), repr(Settings(storage=cfg)), f"{cfg}"):
        assert "AKIAEXAMPLE" not in text and "s3cr3t" not in text and "tok3n" not in text
        assert "***" in text


def test_typed_s3_options_for_library_callers() -> None:
    cfg = StorageConfig.s3(
        region="eu-west-1", endpoint="minio:9000", access_key_id="k", secret_key="s", use_ssl=False
    )
    from copilot.storage import s3

    opts = s3.fsspec_options(cfg, 32)
    assert opts["key"] == "k" and opts["secret"] == "s" and "use_ssl" not in opts
    assert opts["client_kwargs"] == {
        "endpoint_url": "http://minio:9000",
        "region_name": "eu-west-1",
    }
    assert opts["config_kwargs"]["s3"]["addressing_style"] == "path"
    virtual = StorageConfig.s3(path_style=False, endpoint="https://x")
    assert s3.fsspec_options(virtual, 32)["config_kwargs"]["s3"] == {"addressing_style": "virtual"}
    assert s3.obstore_options(virtual, {})["virtual_hosted_style_request"] is True
    # Nothing configured: everything from the environment.
    bare = s3.fsspec_options(StorageConfig.s3(), 32)
    assert not {"key", "secret", "client_kwargs"} & set(bare)
    assert s3.obstore_options(StorageConfig.s3(), {}) == {
        "region": "us-east-1",
        "virtual_hosted_style_request": False,
    }


def test_every_backend_is_one_table_entry() -> None:
    from copilot.storage.backends import BACKENDS, backend_for

    assert {"s3", "gs", "abfs", "file", "http", "https", "memory"} <= set(BACKENDS)
    for protocol, module in (("s3", "s3"), ("gs", "gcs"), ("abfs", "azure")):
        assert backend_for(protocol).module == f"copilot.storage.{module}"
        assert backend_for(protocol).bounded
    assert (backend_for("s3").native, backend_for("abfs").native, backend_for("gs").native) == (
        "s3",
        "azure",
        "",
    )
    assert not backend_for("file").module and not backend_for("memory").module
    assert backend_for("gs").install == "flyte-copilot[gcs]"
    assert backend_for("abfs").install == "flyte-copilot[azure]"
    assert backend_for("http").read_only
    assert protocol_of("abfss://c@a.dfs.core.windows.net/x") == "abfs"


# -- what is worth retrying -----------------------------------------------------------


class _BotoLike(Exception):
    def __init__(self, status: int, code: str) -> None:
        super().__init__(code)
        self.response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}


class _Status(Exception):
    def __init__(self, attr: str, status: int) -> None:
        super().__init__(f"HTTP {status}")
        setattr(self, attr, status)


class ServerDisconnectedError(Exception):  # named like aiohttp's, as the classifier sees it
    pass


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (_BotoLike(503, "SlowDown"), True),
        (_BotoLike(500, "InternalError"), True),
        (_BotoLike(400, "RequestTimeout"), True),
        (_BotoLike(403, "AccessDenied"), False),
        (_BotoLike(404, "NoSuchKey"), False),
        (_BotoLike(404, "NoSuchBucket"), False),
        (_BotoLike(403, "InvalidAccessKeyId"), False),
        (_Status("status", 502), True),
        (_Status("status_code", 503), True),  # azure-core
        (_Status("code", 429), True),  # gcsfs
        (_Status("code", 401), False),
        (_Status("status_code", 404), False),
        (ServerDisconnectedError(), True),
        (ConnectionResetError(), True),
        (TimeoutError(), True),
        (FileNotFoundError(), False),
        (PermissionError(), False),
        (ValueError("a bug"), False),
    ],
)
def test_retry_classification(exc: BaseException, transient: bool) -> None:
    from copilot.storage.retry import is_transient

    assert is_transient(exc) is transient


def test_a_short_read_and_a_retryable_error_are_retried() -> None:
    from copilot.errors import StorageError
    from copilot.storage.chunked import ShortRead
    from copilot.storage.retry import is_transient

    assert is_transient(ShortRead("expected 10 bytes, received 3"))
    assert is_transient(StorageError("ended short", retryable=True))
    assert not is_transient(StorageError("not found"))


def test_retries_stop_at_the_attempts_and_never_after_the_deadline() -> None:
    from copilot.cancel import CancelToken
    from copilot.storage.retry import RetryPolicy

    calls = []

    def flaky() -> None:
        calls.append(1)
        raise ConnectionResetError("dropped")

    policy = RetryPolicy(attempts=3, base=0.001, cap=0.001)
    with pytest.raises(ConnectionResetError):
        policy.call(flaky, "x")
    assert len(calls) == 3
    # With the deadline nearer than the back-off, no retry is started.
    token = CancelToken()
    token.cancel_after(1.0)  # long enough for the first call on a loaded machine
    calls.clear()
    late = RetryPolicy(attempts=10, base=5, cap=5, cancel=token)
    late.delay = lambda attempt: 5.0  # type: ignore[method-assign]  # no lucky short jitter
    with pytest.raises(ConnectionResetError):
        late.call(flaky, "x")
    assert len(calls) == 1


class _AzureLike(Exception):
    """Shaped like azure-core's HttpResponseError: status_code and error_code."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(code)
        self.status_code = status
        self.error_code = code


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (_AzureLike(503, "ServerBusy"), True),
        (_AzureLike(500, "OperationTimedOut"), True),
        (_AzureLike(403, "AuthenticationFailed"), False),
        (_AzureLike(403, "AuthorizationFailure"), False),
        (_AzureLike(404, "ContainerNotFound"), False),
        # The service's code decides even against a status that alone would retry.
        (_AzureLike(500, "AccountIsDisabled"), False),
    ],
)
def test_azure_error_codes_from_the_backend_table(exc: BaseException, transient: bool) -> None:
    from copilot.storage.retry import is_transient

    assert is_transient(exc) is transient


@pytest.mark.parametrize(
    ("size", "step", "in_flight", "count"),
    [(512 << 20, 64 << 20, 4, 4), (512 << 20, 64 << 20, 8, 8), (100, 64, 4, 2), (65, 64, 8, 2),
     (64, 64, 4, 1), (10 * 64 + 1, 64, 3, 3)],
)  # fmt: skip
def test_range_bounds_cover_the_object_in_as_few_ranges_as_keep_streams_busy(
    size: int, step: int, in_flight: int, count: int
) -> None:
    from copilot.storage.driver import range_bounds

    bounds = range_bounds(size, step, in_flight)
    assert len(bounds) == count <= in_flight
    assert bounds[0] == (0, min(step, size)) and bounds[-1][1] == size
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    assert all(stop - start >= min(step, size - start) for start, stop in bounds)


def _counting_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the size asked of every os.pread made by the output reader's reads."""
    import copilot.storage.files as ff

    asked: list[int] = []
    real_pread = ff.os.pread

    def pread(fd: int, n: int, offset: int) -> bytes:
        asked.append(n)
        return real_pread(fd, n, offset)

    monkeypatch.setattr(ff.os, "pread", pread)
    return asked


def test_a_small_output_file_is_read_in_one_call_of_its_own_size(tmp_path, monkeypatch) -> None:
    from copilot.storage.files import read_at_most

    path = tmp_path / "x"
    path.write_bytes(b"5000")
    asked = _counting_reads(monkeypatch)
    assert read_at_most(str(path), 4, 1 << 20) == b"5000"
    # One read of size + 1, not a 1 MiB buffer and a second read to find the end:
    # 100,000 list elements are 100,000 of these.
    assert asked == [5]
    asked.clear()
    (tmp_path / "empty").write_bytes(b"")
    assert read_at_most(str(tmp_path / "empty"), 0, 10) == b""
    assert asked == [1]


def test_reading_an_output_that_changed_after_its_stat(tmp_path) -> None:
    from copilot.literals.from_files import OutputReader
    from copilot.storage.files import read_at_most

    path = tmp_path / "x"
    path.write_bytes(b"0123456789" * 300)
    # Stat said 4 bytes; the file holds 3000: read on to the end, or to limit + 1.
    assert read_at_most(str(path), 4, 1 << 20) == b"0123456789" * 300
    assert read_at_most(str(path), 4, 100) == (b"0123456789" * 11)[:101]
    # Stat said more than is there: the end comes early and is taken as the end.
    assert read_at_most(str(path), 5000, 1 << 20) == b"0123456789" * 300

    reader = OutputReader(str(tmp_path), "file:///nowhere")
    path.write_bytes(b"1234")
    small = path.stat()
    path.write_bytes(b"1" * 200)  # grew past the limit after the stat
    with pytest.raises(DataError, match=r"^o: .*/x grew past 100 bytes while being read$"):
        reader.read(str(path), small, 100, "an int", "o")


def test_a_small_file_is_sent_as_it_is_at_sending_time(tmp_path) -> None:
    """send_whole reads to the end of the file whatever size it was told (and an
    empty file is empty), and the digest sees exactly what was sent."""
    import asyncio
    import hashlib
    import os

    from copilot.storage.chunked import ByteBudget
    from copilot.storage.driver import send_whole
    from copilot.storage.files import LocalSource

    cases = {"grew": (b"x" * 9000, 10), "shrank": (b"abc", 4096), "empty": (b"", 0)}
    for name, (data, told) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        sent: list[bytes] = []
        digest = hashlib.sha256()

        async def send(body: bytes, sent: list[bytes] = sent) -> None:
            sent.append(body)

        fd = os.open(path, os.O_RDONLY)
        try:
            source = LocalSource(fd, told, str(path))
            got = asyncio.run(send_whole(source, told, ByteBudget(1 << 20), send, None, digest))
        finally:
            os.close(fd)
        assert sent == [data] and got == len(data), name
        assert digest.hexdigest() == hashlib.sha256(data).hexdigest(), name


def test_a_body_read_whole_is_written_whole_even_by_short_writes(tmp_path, monkeypatch) -> None:
    """driver.download writes a first response's body given as bytes (obstore's small
    objects) in full: a short pwrite goes on from where it stopped, the SHA-256
    sees every byte once, and an empty body makes an empty file."""
    import asyncio
    import hashlib
    import os

    from copilot.storage import chunked, driver

    real = os.pwrite
    calls: list[int] = []

    def short(fd: int, data, offset: int) -> int:
        calls.append(offset)
        return real(fd, bytes(data)[:3], offset)  # at most 3 bytes a call

    monkeypatch.setattr(chunked.os, "pwrite", short)

    async def no_ranges(start: int, end: int):  # pragma: no cover - never asked
        raise AssertionError("a whole body needs no ranges")

    for name, body in {"ten": b"0123456789", "empty": b""}.items():
        digest = hashlib.sha256()
        calls.clear()
        first = driver.FirstRange(len(body), body, True)
        path = tmp_path / name
        got = asyncio.run(
            driver.download(str(path), first, no_ranges, None, step=64, sha256=digest)
        )
        assert got == len(body) and path.read_bytes() == body, name
        assert digest.hexdigest() == hashlib.sha256(body).hexdigest(), name
        assert calls == list(range(0, len(body), 3)), name


def test_the_byte_budget_admits_in_arrival_order() -> None:
    """A buffer that fits goes at once while nobody waits; once someone waits,
    every later request queues behind it, however small: a large request (a
    multipart upload's window) is never starved by small files passing it.  A
    lone oversize buffer goes when nothing else is held; a cancelled waiter
    leaves the queue and lets the next one go."""
    import asyncio

    from copilot.storage.chunked import ByteBudget

    async def scenario() -> list[str]:
        budget = ByteBudget(10)
        log: list[str] = []

        async def take(name: str, n: int) -> None:
            await budget.acquire(n)
            log.append(name)

        await take("a6", 6)
        b6 = asyncio.create_task(take("b6", 6))
        c20 = asyncio.create_task(take("c20", 20))
        await asyncio.sleep(0)
        d4 = asyncio.create_task(take("d4", 4))  # would fit beside a, but queues
        gone = asyncio.create_task(take("gone1", 1))
        await asyncio.sleep(0)
        assert log == ["a6"] and budget.used == 6
        gone.cancel()
        await asyncio.sleep(0)
        await budget.release(6)  # a done: b goes; c (oversize) waits for nothing held
        await asyncio.wait_for(b6, 1)
        await asyncio.sleep(0)
        assert not c20.done() and not d4.done() and budget.used == 6
        await budget.release(6)
        await asyncio.wait_for(c20, 1)
        assert not d4.done() and budget.used == 20
        await budget.release(20)
        await asyncio.wait_for(d4, 1)
        assert budget.used == 4
        return log

    assert asyncio.run(scenario()) == ["a6", "b6", "c20", "d4"]


def test_the_tree_window_holds_the_producer_until_the_oldest_file_finishes() -> None:
    import asyncio

    from copilot.storage.pool import _Window
    from copilot.storage.sizes import TREE_WINDOW

    async def scenario() -> None:
        window = _Window(TREE_WINDOW)
        for index in range(TREE_WINDOW):
            await window.admit(index)
        blocked = asyncio.create_task(window.admit(TREE_WINDOW))
        await asyncio.sleep(0)
        assert not blocked.done()
        await window.finish(1)  # not the oldest: still held
        await asyncio.sleep(0)
        assert not blocked.done()
        await window.finish(0)  # 0 and 1 done: the window moves on by two
        await asyncio.wait_for(blocked, 1)
        assert window.lowest == 2

    asyncio.run(scenario())


def test_trees_are_walked_again_only_past_the_kept_limit(tmp_path, monkeypatch) -> None:
    """Trees that add up to TREE_KEPT files upload from the walk that checked them;
    past that a tree is walked again as it uploads (memory stays flat), and either
    way every file goes up with the same Dir digest."""
    import os

    import copilot.literals.from_files as ff
    from copilot.literals.from_files import OutputReader
    from copilot.storage import Store

    monkeypatch.setattr(ff, "TREE_KEPT", 5)
    root = tmp_path / "out"
    for tree, count in (("a", 3), ("b", 3), ("c", 1)):
        for i in range(count):
            (root / tree / "sub").mkdir(parents=True, exist_ok=True)
            (root / tree / "sub" / f"f{i}").write_bytes(b"%d" % i)
    listed: list[str] = []
    real = OutputReader._sorted_entries

    def counting(self, top, rel, label):
        listed.append(os.path.basename(top) + "/" + rel)
        return real(self, top, rel, label)

    monkeypatch.setattr(OutputReader, "_sorted_entries", counting)
    raw = tmp_path / "raw"
    reader = OutputReader(str(root), raw.as_uri())
    uris = {}
    for tree in ("a", "b", "c"):
        uris[tree] = reader.plan(str(root / tree), os.stat(root / tree), tree, tree=True)
    # a (3) fits, b (3) would make 6 > 5: not kept; c (1) fits beside a.
    assert reader.kept_files == 4
    listed.clear()
    with Store() as store:
        store.upload(reader.transfers, {})
    assert sorted(listed) == ["b/", "b/sub"]  # only b is walked again
    for tree, count in (("a", 3), ("b", 3), ("c", 1)):
        dest = raw / uris[tree].rsplit("/", 1)[-1] / "sub"
        assert sorted(p.name for p in dest.iterdir()) == [f"f{i}" for i in range(count)]
        assert reader.dir_digests[uris[tree]].files == count


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=60,
)


@given(_json_values)
def test_inputs_json_in_pieces_is_the_same_text(value) -> None:
    import copilot.inputs as ci

    whole = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    slice_was = ci.JSON_SLICE
    ci.JSON_SLICE = 3  # small enough that every shape is cut somewhere
    try:
        pieces = b"".join(ci.render_values({"v": value}, "JSON")).decode("utf-8")
    finally:
        ci.JSON_SLICE = slice_was
    assert pieces == '{"v":' + whole + "}"


def test_inputs_json_of_a_big_map_is_never_encoded_whole() -> None:
    from copilot.inputs import JSON_SLICE, json_pieces

    big = {"m": {str(i): i for i in range(20_000)}, "xs": list(range(20_000))}
    pieces = list(json_pieces(big))
    # No piece holds more than one slice's elements: ~10 bytes each here.
    assert max(len(p) for p in pieces) < JSON_SLICE * 14
    assert len(pieces) > 20
    assert "".join(pieces) == json.dumps(big, sort_keys=True, separators=(",", ":"))
    # Big values inside big values go element by element, and still read the same.
    nested = {"a": [list(range(100)), {str(i): [i] * 70 for i in range(100)}, 1], "b": {}}
    pieces = list(json_pieces(nested))
    assert max(len(p) for p in pieces) < 400
    assert "".join(pieces) == json.dumps(nested, sort_keys=True, separators=(",", ":"))


@hsettings(max_examples=30)  # PyYAML is slow; the slicing rule is small
@given(st.dictionaries(st.text(min_size=1), _json_values, max_size=4))
def test_inputs_yaml_in_pieces_reads_back_the_same(values) -> None:
    import yaml

    import copilot.inputs as ci

    slice_was = ci.JSON_SLICE
    ci.JSON_SLICE = 3
    try:
        text = b"".join(ci.render_values(values, "YAML")).decode("utf-8")
    finally:
        ci.JSON_SLICE = slice_was
    # What one whole dump reads back as (PyYAML's own quirks, e.g. U+0085, included).
    whole = yaml.safe_dump(values, sort_keys=True, allow_unicode=True)
    assert yaml.safe_load(text) == yaml.safe_load(whole)


def test_inputs_yaml_of_a_big_map_is_dumped_a_slice_at_a_time() -> None:
    import yaml

    from copilot.inputs import JSON_SLICE, yaml_pieces

    big = {"m": {str(i): i for i in range(5_000)}, "xs": list(range(5_000)), "s": "x"}
    pieces = list(yaml_pieces(big))
    assert max(len(p) for p in pieces) < JSON_SLICE * 16
    assert yaml.safe_load("".join(pieces)) == big


def test_a_keys_question_mark_and_hash_are_part_of_its_name() -> None:
    """An object key may hold ? and #: only an http(s) URL has a query and a
    fragment to drop (a key cut at "?" was written to the wrong object)."""
    from copilot.storage.obstore_engine import ObstoreClient
    from copilot.storage.uris import basename_of

    assert basename_of("s3://b/dir/q?r#s.txt") == "q?r#s.txt"
    assert basename_of("abfs://c/x#1") == "x#1"
    assert basename_of("https://host/data/y.csv?X-Amz-Signature=abc#frag") == "y.csv"
    client = ObstoreClient.__new__(ObstoreClient)
    assert client.path("s3://b/dir/q?r#s.txt") == "b/dir/q?r#s.txt"
    assert client.path("abfs://c@acct.dfs.core.windows.net/p?q") == "c/p?q"


def test_an_unknown_engine_is_an_error_naming_the_valid_ones() -> None:
    from copilot.config import FlagOverrides, resolve_settings
    from copilot.errors import UsageError

    overrides = FlagOverrides()
    overrides.set("storage", "engine", "str", "obstor")
    with pytest.raises(
        UsageError,
        match=r"storage.engine: unknown engine 'obstor' \(did you mean obstore\?\); "
        r"valid engines: auto, obstore, fsspec",
    ):
        resolve_settings([], overrides)
    overrides.set("storage", "engine", "str", "FSSPEC")
    assert resolve_settings([], overrides).storage.engine == "fsspec"


@pytest.mark.parametrize(
    "name,declared,expected",
    [
        ("rows.csv", "", "csv"),
        ("rows.PARQUET", "", "parquet"),
        ("rows.tsv", "", ""),
        ("rows.csv", "parquet", "parquet"),  # a declared format is kept
    ],
)
def test_a_data_frame_input_records_the_format_its_suffix_names(
    tmp_path, name: str, declared: str, expected: str
) -> None:
    """As ``flyte run`` does for a plain ``DataFrame``: the SDK then reads a .csv
    with its CSV handler; a remote URI is named by its suffix the same way."""
    from flyteidl2.core import types_pb2

    from copilot.literals.given import GivenValue, literals_from_values

    (tmp_path / name).write_text("a,b\n1,2\n")
    lt = types_pb2.LiteralType(
        structured_dataset_type=types_pb2.StructuredDatasetType(format=declared)
    )
    given = {
        "local": GivenValue(name, lt, str(tmp_path)),
        "remote": GivenValue(f"s3://bucket/frames/{name}", lt, str(tmp_path)),
    }
    literals, transfers = literals_from_values(given, "memory://store/data")
    for key in ("local", "remote"):
        sd = literals.literals[key].scalar.structured_dataset
        assert sd.metadata.structured_dataset_type.format == expected, key
    assert literals.literals["remote"].scalar.structured_dataset.uri.startswith("s3://bucket/")
    assert len(transfers) == 1


# -- paths.Beneath: opening the container's files ---------------------------------


def test_beneath_opens_links_inside_and_refuses_links_out(tmp_path) -> None:
    import os

    from copilot.paths import Beneath

    root = tmp_path / "out"
    (root / "d").mkdir(parents=True)
    (root / "d" / "real.txt").write_text("inside")
    (tmp_path / "secret").write_text("SECRET")
    os.symlink(root / "d" / "real.txt", root / "d" / "alias")
    os.symlink(tmp_path / "secret", root / "d" / "escape")
    with Beneath(os.path.realpath(root)) as beneath:
        fd, st = beneath.open(str(root / "d" / "alias"), "o")
        try:
            assert os.read(fd, 100) == b"inside" and st.st_size == 6
        finally:
            os.close(fd)
        with pytest.raises(DataError, match=r"^o: .*escape is outside the output directory"):
            beneath.open(str(root / "d" / "escape"), "o")


def test_beneath_never_blocks_on_a_fifo(tmp_path) -> None:
    import os

    from copilot.paths import Beneath

    os.mkfifo(tmp_path / "pipe")  # no writer: a blocking open would hang here
    with (
        Beneath(os.path.realpath(tmp_path)) as beneath,
        pytest.raises(DataError, match="is a FIFO, not a regular file; refused"),
    ):
        beneath.open(str(tmp_path / "pipe"), "o")


def test_a_directory_swapped_for_a_link_after_it_was_opened_leads_nowhere_else(
    tmp_path,
) -> None:
    """The directory kept open is the one that was checked: renaming it away and
    putting a link to a secret directory in its place changes nothing read."""
    import os

    from copilot.paths import Beneath, open_source

    root = tmp_path / "out"
    (root / "d").mkdir(parents=True)
    for name in ("a", "b"):
        (root / "d" / name).write_text("plain")
    secret = tmp_path / "etc"
    secret.mkdir()
    (secret / "b").write_text("SECRET")
    real = os.path.realpath(root)
    with Beneath(real) as beneath:
        fd, _ = beneath.open(f"{real}/d/a", "o", real=True)
        os.close(fd)
        os.rename(root / "d", root / "moved")
        os.symlink(secret, root / "d")
        fd, _ = beneath.open(f"{real}/d/b", "o", real=True)
        try:
            assert os.read(fd, 100) == b"plain"
        finally:
            os.close(fd)
    # Opened afresh, the link on the way is refused.
    with pytest.raises(DataError, match="a symlink took the place"):
        open_source(f"{real}/d/b", real, "o")


def test_a_link_swapped_while_it_is_resolved_is_resolved_again_or_refused(
    tmp_path, monkeypatch
) -> None:
    """``os.path.realpath`` lets EINVAL out when a link it saw is a file by the time
    it reads it (a container swapping its outputs; CI caught the race as an
    internal error): the path is resolved again, and refused as the container's
    doing if it keeps changing."""
    import errno
    import os

    from copilot import paths
    from copilot.errors import USER, DataError

    real = os.path.realpath
    failures = [2]

    def racing(path: str, *args: object, **kwargs: object) -> str:
        if failures[0]:
            failures[0] -= 1
            raise OSError(errno.EINVAL, "Invalid argument", path)
        return real(path)

    monkeypatch.setattr(paths.os.path, "realpath", racing)
    assert paths.real_path(str(tmp_path), "d") == real(str(tmp_path))
    failures[0] = 100
    with pytest.raises(
        DataError, match="d: .* kept changing while it was resolved; refused"
    ) as info:
        paths.real_path(str(tmp_path / "f"), "d")
    assert info.value.origin == USER


def test_the_typo_hint_lists_only_a_directory_really_beneath_the_output_dir(tmp_path) -> None:
    """A missing output's hint reads the names beside it, from the output dir down
    with no link followed: a directory link (or one swapped in) lists nothing."""
    from copilot.paths import Beneath

    out, outside = tmp_path / "out", tmp_path / "outside"
    (out / "sub").mkdir(parents=True)
    outside.mkdir()
    (out / "sub" / "reslt").write_text("1")
    (outside / "reslt").write_text("secret")
    (out / "link").symlink_to(outside)
    with Beneath(str(out)) as beneath:
        assert beneath.close_name(str(out / "sub" / "result")) == "reslt"
        assert beneath.close_name(str(out / "link" / "result")) is None
        assert beneath.close_name(str(out / "gone" / "result")) is None
