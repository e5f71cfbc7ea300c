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
(the SHA-256 taken on the way), its memory taken from the store's byte budget.

Retries: copilot's loop (:mod:`copilot.storage.retry`) is the only one around
every request but the parts of a multipart upload.  obstore has no
part-by-part API, so there its own per-request retry runs instead, configured
from the same policy (attempts, back-off), and copilot does not retry the
upload again on top (the failure is marked as retried).
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import obstore
from obstore.store import AzureStore, S3Store

from copilot.config import StorageConfig, parse_bool
from copilot.errors import NON_RECOVERABLE, StorageError
from copilot.storage import chunked
from copilot.storage.client import RemoteEntry
from copilot.storage.errors import mark_retried, unsatisfiable_range
from copilot.storage.loop import event_loop

if TYPE_CHECKING:
    from obstore.store import RetryConfig

    from copilot.storage.callback import TransferCallback
    from copilot.storage.chunked import ByteBudget
    from copilot.storage.retry import RetryPolicy

#: Objects listed per page: what a listing holds in memory at a time.
LIST_PAGE = 1000
#: Ranges of one object downloaded at once (the rest of the object is split into
#: as few ranges as keep them busy, see chunked.range_bounds).
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


def _true(value: str | None) -> bool:
    try:
        return parse_bool(value or "", "env")
    except Exception:
        return False


#: What obstore reads from the environment itself; with any of these set, a shared
#: credentials file is not consulted (botocore's order).
_AWS_ENV_CREDENTIALS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)
#: A shared-config profile that gets its credentials in one of these ways needs
#: botocore (assumed roles, SSO, a credential process): the fsspec engine.
_BOTOCORE_ONLY = ("role_arn", "credential_process", "sso_session", "sso_start_url")


def _aws_profile(env: Mapping[str, str]) -> tuple[dict[str, str], str, str]:
    """Static keys and region from the shared credentials and config files
    (``~/.aws/credentials``, ``~/.aws/config``, ``AWS_PROFILE``), which botocore
    reads and object_store does not; and, when the profile needs botocore, why.
    Nothing is read when the environment has credentials of its own."""
    if any(env.get(name) for name in _AWS_ENV_CREDENTIALS):
        return {}, "", ""
    import configparser

    home = os.path.expanduser("~")
    named = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or ""
    profile = named or "default"
    found: dict[str, str] = {}
    region = ""
    for var, default, section in (
        ("AWS_SHARED_CREDENTIALS_FILE", os.path.join(home, ".aws", "credentials"), profile),
        ("AWS_CONFIG_FILE", os.path.join(home, ".aws", "config"),
         profile if profile == "default" else f"profile {profile}"),
    ):  # fmt: skip
        path = env.get(var) or default
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError) as exc:
            raise StorageError(
                f"{var} {path}: cannot read it ({exc})", kind=NON_RECOVERABLE
            ) from None
        if not parser.has_section(section):
            continue
        values = dict(parser.items(section))
        for key in _BOTOCORE_ONLY:
            if key in values:
                return {}, "", f"AWS profile {profile!r} uses {key} (botocore only)"
        for key in ("aws_access_key_id", "aws_secret_access_key", "aws_session_token"):
            if values.get(key) and key not in found:
                found[key] = values[key].strip()
        region = region or values.get("region", "").strip()
        found.setdefault("_seen", "yes")
    if named and not found:
        raise StorageError(
            f"AWS_PROFILE {named!r}: no such profile in the shared credentials or config file",
            kind=NON_RECOVERABLE,
        )
    found.pop("_seen", None)
    keys: dict[str, str] = {}
    if found.get("aws_access_key_id") and found.get("aws_secret_access_key"):
        keys = {
            "access_key_id": found["aws_access_key_id"],
            "secret_access_key": found["aws_secret_access_key"],
        }
        if found.get("aws_session_token"):
            keys["session_token"] = found["aws_session_token"]
    return keys, region, ""


def unsupported(kind: str, config: StorageConfig, environ: Mapping[str, str] | None = None) -> str:
    """Why this engine cannot serve ``kind`` as configured ("" when it can)."""
    if kind != "s3":
        return ""
    s3 = config.s3_settings()
    if s3.v2_signing:
        return "storage v2_signing: obstore signs with SigV4 only"
    if not s3.access_key_id:
        return _aws_profile(os.environ if environ is None else environ)[2]
    return ""


def s3_options(config: StorageConfig, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``S3Store`` keyword arguments from copilot's configuration.

    What is not configured is left to obstore, which reads the standard
    ``AWS_*`` variables itself (keys, session token, region, endpoint, IRSA web
    identity, ECS/EKS container credentials, instance metadata); static keys and
    the region of a shared credentials/config profile (``AWS_PROFILE``) are read
    here, as botocore would.  botocore's ``AWS_EC2_METADATA_DISABLED`` is
    honoured: the instance metadata address is never asked.
    """
    env = os.environ if environ is None else environ
    s3 = config.s3_settings()
    why = unsupported("s3", config, env)
    if why:
        raise StorageError(f"{why}; use --storage.engine fsspec", kind=NON_RECOVERABLE)
    opts: dict[str, Any] = {}
    profile_region = ""
    if s3.access_key_id:
        opts["access_key_id"] = s3.access_key_id
        opts["secret_access_key"] = s3.secret_key
        if s3.token:
            opts["session_token"] = s3.token
    else:
        keys, profile_region, _ = _aws_profile(env)
        opts.update(keys)
    if s3.region:
        opts["region"] = s3.region
    elif not (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")):
        opts["region"] = profile_region or "us-east-1"  # botocore's default too
    endpoint = s3.endpoint or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or ""
    if s3.endpoint:
        opts["endpoint"] = s3.endpoint
    opts["virtual_hosted_style_request"] = s3.virtual_hosted
    client = _client_options(config, env, "AWS_CA_BUNDLE")
    if endpoint.startswith("http://"):
        client["allow_http"] = True
    opts["client_options"] = client
    if _true(env.get("AWS_EC2_METADATA_DISABLED")):
        # object_store does not read botocore's switch: point its instance
        # metadata look-up at a closed loopback port instead.
        opts["metadata_endpoint"] = "http://127.0.0.1:9"
    return opts


def azure_options(
    config: StorageConfig, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``AzureStore`` keyword arguments from copilot's configuration.

    What is not configured is left to obstore, which reads
    ``AZURE_STORAGE_ACCOUNT_NAME`` / ``_KEY``, SAS tokens, workload identity
    (``AZURE_FEDERATED_TOKEN_FILE``, ``AZURE_CLIENT_ID``, ``AZURE_TENANT_ID``),
    client secrets and managed identity; a connection string (the configured one,
    or ``AZURE_STORAGE_CONNECTION_STRING``) is read into its parts here.
    """
    az = config.azure_settings(environ)
    opts: dict[str, Any] = {}
    if az.account:
        opts["account_name"] = az.account
    if az.key:
        opts["account_key"] = az.key
    if az.sas_token:
        opts["sas_token"] = az.sas_token
    client = _client_options(config, os.environ if environ is None else environ)
    if az.endpoint:
        opts["endpoint"] = az.endpoint.rstrip("/")
        if az.endpoint.startswith("http://"):
            client["allow_http"] = True
    opts["client_options"] = client
    return opts


def _client_options(
    config: StorageConfig, env: Mapping[str, str], ca_env_var: str = ""
) -> dict[str, Any]:
    """The HTTP client's settings; a private CA is trusted besides the system's."""
    client = dict(CLIENT_OPTIONS)
    pem = config.ca_certificates(env, ca_env_var)
    if pem:
        client["root_certificate"] = pem
    return client


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
        upload_concurrency: int | None = None,
    ) -> None:
        self.protocol = protocol
        self.kind = kind
        self.options = options
        self.parts_in_flight = max(1, min(upload_concurrency or PARTS_IN_FLIGHT, 8))
        self.loop = event_loop()
        self._stores: dict[tuple[str, int], Any] = {}
        self._lock = threading.Lock()

    # -- addressing ------------------------------------------------------------

    def path(self, uri: str) -> str:
        """``bucket/key`` for ``s3://bucket/key``; ``container/blob`` for
        ``abfs://container/blob`` and ``abfs://container@account.host/blob``."""
        parts = urlsplit(uri)
        bucket = parts.netloc.split("@", 1)[0]
        return f"{bucket}/{parts.path.lstrip('/')}"

    @staticmethod
    def _split(path: str) -> tuple[str, str]:
        bucket, _, key = path.partition("/")
        return bucket, key

    def _store(self, bucket: str, retries: int = 0, policy: RetryPolicy | None = None) -> Any:
        if not bucket:
            raise StorageError(f"{self.protocol}:// URI without a bucket", retryable=False)
        with self._lock:
            store = self._stores.get((bucket, retries))
            if store is None:
                retry: RetryConfig = {"max_retries": retries}
                if policy is not None and retries:
                    retry["backoff"] = {
                        "init_backoff": timedelta(seconds=policy.base),
                        "max_backoff": timedelta(seconds=policy.cap),
                        "base": 2,
                    }
                opts = dict(self.options)
                if self.kind == "s3":
                    if opts.get("virtual_hosted_style_request") and opts.get("endpoint"):
                        # object_store takes the bucket's own host as the endpoint.
                        scheme, _, host = opts["endpoint"].partition("://")
                        opts["endpoint"] = f"{scheme}://{bucket}.{host}"
                    store = S3Store(bucket, retry_config=retry, **opts)
                else:
                    store = AzureStore(bucket, retry_config=retry, **opts)
                self._stores[(bucket, retries)] = store
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
    ) -> int:
        bucket, key = self._split(path)
        store = self._store(bucket)
        step = chunked.RANGE_SIZE
        if size is not None and size <= step:
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
        first = chunked.FirstRange(size, _chunks(resp), whole)

        @asynccontextmanager
        async def open_range(start: int, end: int) -> AsyncIterator[AsyncIterator[bytes]]:
            options: Any = {"range": (start, end + 1)}
            if etag:
                options["if_match"] = etag  # the same object the first range came from
            yield _chunks(await obstore.get_async(store, key, options=options))

        return await chunked.download(
            lpath,
            first,
            open_range,
            callback,
            step=step,
            retry=retry,
            in_flight=RANGES_IN_FLIGHT,
            sha256=sha256,
        )

    async def put_file(
        self,
        lpath: str,
        path: str,
        budget: ByteBudget,
        callback: TransferCallback | None,
        retry: RetryPolicy,
        digest: Any = None,
    ) -> int:
        bucket, key = self._split(path)
        size = os.path.getsize(lpath)
        part = chunked.part_size(size, MAX_PARTS[self.kind], PART_SIZE)
        if size <= part:
            store = self._store(bucket)

            async def put(data: bytes) -> Any:
                return await obstore.put_async(store, key, data, use_multipart=False)

            return await chunked.send_whole(lpath, size, budget, put, callback, digest)
        store = self._store(bucket, retries=max(0, retry.attempts - 1), policy=retry)
        cost = part * (self.parts_in_flight + 1)
        await budget.acquire(cost)
        try:
            await obstore.put_async(
                store,
                key,
                _file_chunks(lpath, size, digest, callback),
                chunk_size=part,
                max_concurrency=self.parts_in_flight,
            )
        except Exception as exc:
            raise mark_retried(exc) from None
        finally:
            await budget.release(cost)
        return size

    def close(self) -> None:
        with self._lock:
            self._stores.clear()


async def _chunks(resp: Any) -> AsyncIterator[bytes]:
    async for chunk in resp.stream(min_chunk_size=STREAM_CHUNK):
        yield chunk


async def _file_chunks(
    lpath: str, size: int, digest: Any, callback: TransferCallback | None
) -> AsyncIterator[bytes]:
    """``size`` bytes of ``lpath``, ``chunked.READ_CHUNK`` at a time, each fed to
    ``digest`` (in file order) and counted as it is handed over."""
    fd = os.open(lpath, os.O_RDONLY)
    try:
        offset = 0
        while offset < size:
            data = os.pread(fd, min(chunked.READ_CHUNK, size - offset), offset)
            if not data:
                raise OSError(f"{lpath} shrank while it was uploaded")
            if digest is not None:
                digest.update(data)
            offset += len(data)
            if callback is not None:
                callback.relative_update(len(data))
            yield data
    finally:
        os.close(fd)


#: What builds a client for each kind of store this engine serves.
KINDS: dict[str, Callable[[StorageConfig], dict[str, Any]]] = {
    "s3": s3_options,
    "azure": azure_options,
}
