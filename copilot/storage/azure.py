"""Azure Blob: copilot's keys as obstore's and adlfs's options, and adlfs transfers in
bounded memory (the plan is in :mod:`copilot.storage.driver`).

adlfs's ``_put_file`` hands the file to the SDK's ``upload_blob``, which reads
up to 64 MiB in one piece and then several 4 MiB blocks per concurrent
worker (docs/BENCHMARKS.md, "Tuning measurements", has its memory).  Here a small file is one
``upload_blob`` of its bytes, a large one ``BLOCK_SIZE`` blocks staged side by
side (each read from the file as it is sent, :class:`chunked.FileWindow`, under
the store's byte budget) and committed as one block list.  A
download is a ranged ``download_blob`` per ``RANGE_SIZE`` (3 MiB: one request) range, each
streamed chunk by chunk to its offset (the client is set up to read the
first chunk of a response small, see :func:`prepare`).
"""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from copilot.config_values import text_value
from copilot.errors import UsageError
from copilot.redaction import masked_repr
from copilot.storage import chunked, driver
from copilot.storage.config import StorageConfig

# -- configuration: copilot's keys as each engine's options ---------------------

#: No variable of Azure's names a CA bundle.
CA_ENV = ""


@dataclass(frozen=True)
class AzureSettings:
    """Azure Blob's configuration as the native engine reads it (empty: the environment)."""

    account: str = ""
    key: str = ""
    #: The blob service's URL (Azurite's ``http://127.0.0.1:10000/devstoreaccount1``).
    endpoint: str = ""
    sas_token: str = ""
    upload_concurrency: int | None = None

    def __repr__(self) -> str:
        return masked_repr(self, ("key", "sas_token"))


def _account_of(endpoint: str) -> str:
    """The storage account a blob endpoint names: its first host label
    (``acct.blob.core.windows.net``), or its first path segment where the host is
    an address (Azurite's ``http://127.0.0.1:10000/devstoreaccount1``)."""
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    host = parts.hostname or ""
    if ".blob." in host:
        return host.split(".", 1)[0]
    return parts.path.strip("/").split("/", 1)[0]


def parse_connection_string(text: str) -> dict[str, str]:
    """An Azure connection string's ``Key=Value;`` pairs, keys in lower case (a value
    may hold ``=``, as an account key's padding does)."""
    pairs: dict[str, str] = {}
    for item in text.split(";"):
        key, sep, value = item.strip().partition("=")
        if sep and key:
            pairs[key.strip().lower()] = value.strip()
    return pairs


def settings(config: StorageConfig, environ: Mapping[str, str] | None = None) -> AzureSettings:
    """The azure keys for the native engine, a connection string read into its
    parts; with none configured, ``AZURE_STORAGE_CONNECTION_STRING`` (which adlfs
    reads itself) is read the same way."""
    stow = config.stow_for("azure")
    conn = text_value(stow.get("connection_string")).strip()
    explicit = any(stow.get(k) for k in ("account", "key", "endpoint", "base_url"))
    if not conn and not explicit:
        conn = (os.environ if environ is None else environ).get(
            "AZURE_STORAGE_CONNECTION_STRING", ""
        )
    parts = parse_connection_string(conn) if conn else {}
    account = parts.get("accountname") or text_value(stow.get("account")).strip()
    endpoint = (
        parts.get("blobendpoint")
        or text_value(stow.get("endpoint") or stow.get("base_url")).strip()
    )
    suffix = parts.get("endpointsuffix") or text_value(stow.get("domain_suffix")).strip()
    if not endpoint and suffix and account:
        scheme = parts.get("defaultendpointsprotocol") or "https"
        endpoint = f"{scheme}://{account}.blob.{suffix}"
    if endpoint and not account:
        account = _account_of(endpoint)
    concurrency = None
    if stow.get("upload_concurrency"):
        try:
            concurrency = int(text_value(stow["upload_concurrency"]))
        except ValueError:
            raise UsageError(
                "storage stow.config upload_concurrency: expected an integer, "
                f"found {stow['upload_concurrency']!r}"
            ) from None
    return AzureSettings(
        account=account,
        key=parts.get("accountkey") or text_value(stow.get("key")).strip(),
        endpoint=endpoint,
        sas_token=parts.get("sharedaccesssignature", "").lstrip("?"),
        upload_concurrency=concurrency,
    )


def obstore_options(
    config: StorageConfig, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``AzureStore`` keyword arguments from copilot's configuration (the engine adds
    its HTTP client's timeouts and any CA bundle).

    What is not configured is left to obstore, which reads
    ``AZURE_STORAGE_ACCOUNT_NAME`` / ``_KEY``, SAS tokens, workload identity
    (``AZURE_FEDERATED_TOKEN_FILE``, ``AZURE_CLIENT_ID``, ``AZURE_TENANT_ID``),
    client secrets and managed identity; a connection string (the configured one,
    or ``AZURE_STORAGE_CONNECTION_STRING``) is read into its parts here.
    """
    az = settings(config, environ)
    opts: dict[str, Any] = {}
    if az.account:
        opts["account_name"] = az.account
    if az.key:
        opts["account_key"] = az.key
    if az.sas_token:
        opts["sas_token"] = az.sas_token
    if az.endpoint:
        opts["endpoint"] = az.endpoint.rstrip("/")
        if az.endpoint.startswith("http://"):
            opts["client_options"] = {"allow_http": True}
    return opts


def upload_concurrency(config: StorageConfig) -> int | None:
    """``upload_concurrency``: blocks in flight per upload, on either engine."""
    return settings(config).upload_concurrency


def fsspec_options(config: StorageConfig, concurrency: int) -> dict[str, Any]:
    """adlfs keyword arguments from the azure stow keys (the environment otherwise:
    ``AZURE_STORAGE_CONNECTION_STRING``, ``AZURE_STORAGE_ACCOUNT_NAME``/``_KEY``,
    workload identity)."""
    if config.ca_bundle:
        raise UsageError(
            "storage.ca-bundle: adlfs (abfs:// on the fsspec engine) takes no CA bundle; "
            "set SSL_CERT_FILE to a PEM file holding the system's CAs and yours"
        )
    stow = config.stow_for("azure")
    opts: dict[str, Any] = {}
    account = text_value(stow.get("account")).strip()
    key = text_value(stow.get("key")).strip()
    endpoint = text_value(stow.get("endpoint") or stow.get("base_url")).strip()
    suffix = text_value(stow.get("domain_suffix")).strip()
    if stow.get("connection_string"):
        opts["connection_string"] = text_value(stow["connection_string"])
    elif key or endpoint or suffix:
        # As a connection string: adlfs lets AZURE_STORAGE_CONNECTION_STRING
        # beat an account key given as such, and a non-default endpoint
        # (Azurite, a sovereign cloud, a private link) has no other form.
        scheme = endpoint.split("://", 1)[0] if "://" in endpoint else "https"
        parts = [f"DefaultEndpointsProtocol={scheme}"]
        if account:
            parts.append(f"AccountName={account}")
        if key:
            parts.append(f"AccountKey={key}")
        if endpoint:
            parts.append(f"BlobEndpoint={endpoint}")
        else:
            parts.append(f"EndpointSuffix={suffix or 'core.windows.net'}")
        opts["connection_string"] = ";".join(parts) + ";"
    elif account:
        opts["account_name"] = account  # credentials from the environment (identity)
    if stow.get("upload_concurrency"):
        try:
            opts["max_concurrency"] = int(text_value(stow["upload_concurrency"]))
        except ValueError:
            raise UsageError(
                "storage stow.config upload_concurrency: expected an integer, "
                f"found {stow['upload_concurrency']!r}"
            ) from None
    return opts


MAX_BLOCKS = 50_000
PARTS = chunked.PARTS_IN_FLIGHT
#: Range size for a download: the SDK reads a longer range in requests of
#: ``CHUNK_SIZE`` one after another, and a failure in any of them fails the
#: whole range, so a range is one request (retried alone, under 30 % faults too).
RANGE_SIZE = 3 << 20
#: Ranges of one blob in flight, and the size of the SDK's requests within a
#: range (``max_chunk_get_size``).  The SDK holds each such chunk in memory about
#: three times over (pieces, joined, appended), so these two set the peak
#: (measured: docs/BENCHMARKS.md, "Tuning measurements").
RANGES_IN_FLIGHT = 3
CHUNK_SIZE = 3 << 20
#: Block size for a staged upload: Azure's own default, as fast as bigger blocks
#: through the SDK (docs/BENCHMARKS.md, "Tuning measurements").
BLOCK_SIZE = 4 << 20


def prepare(fs: Any) -> None:
    """Make adlfs's client copilot's: one try per request, small response buffers.

    azure-storage-blob retries each request three times with 15 s, 18 s and
    24 s pauses: under copilot's own retries that hid a dead endpoint for
    minutes and made ``--timeout`` and SIGTERM late.  And it reads the first
    32 MiB of every download into memory before returning.
    """
    config = fs.service_client._config
    policy = config.retry_policy
    for name in ("total_retries", "connect_retries", "read_retries", "status_retries"):
        setattr(policy, name, 0)
    config.max_single_get_size = CHUNK_SIZE
    config.max_chunk_get_size = CHUNK_SIZE


async def _chunks(stream: Any) -> AsyncIterator[bytes]:
    async for chunk in stream.chunks():
        yield chunk


def _blob_size(stream: Any) -> int:
    """The whole blob's size (``properties.size`` is only the range's, for a ranged GET)."""
    content_range = str(stream.properties.content_range or "")
    total = content_range.rsplit("/", 1)[-1]
    return int(total) if "/" in content_range and total.isdigit() else int(stream.properties.size)


class _Blob:
    """One blob of adlfs's filesystem, through the SDK's blob client (a
    :class:`~copilot.storage.driver.Reader` and :class:`~copilot.storage.driver.Writer`)."""

    range_size = RANGE_SIZE
    ranges_in_flight = RANGES_IN_FLIGHT
    longest: int | None = CHUNK_SIZE
    part_size = BLOCK_SIZE
    max_parts = MAX_BLOCKS
    streamed = False

    def __init__(self, fs: Any, path: str) -> None:
        container, blob, self.version_id = fs.split_path(path)
        self.client = fs.service_client.get_blob_client(container, blob)
        self.where = f"abfs://{path}"
        # upload_concurrency (adlfs's max_concurrency) can lower the blocks in flight.
        self.parts_in_flight = min(getattr(fs, "max_concurrency", None) or PARTS, PARTS)

    @asynccontextmanager
    async def first(self, step: int) -> AsyncIterator[driver.FirstRange]:
        """An empty blob has no byte 0 (416): it is fetched plainly."""
        from azure.core.exceptions import HttpResponseError

        try:
            stream = await self.client.download_blob(
                offset=0, length=step, version_id=self.version_id, max_concurrency=1
            )
        except HttpResponseError as exc:
            if exc.status_code != 416:
                raise
            stream = await self.client.download_blob(version_id=self.version_id, max_concurrency=1)
        size = _blob_size(stream)
        yield driver.FirstRange(size, _chunks(stream), size <= step, version=stream.properties.etag)

    @asynccontextmanager
    async def read(
        self, start: int, end: int, version: str | None
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        from azure.core import MatchConditions

        pinned: dict[str, Any] = {}
        if version:
            pinned = {"etag": version, "match_condition": MatchConditions.IfNotModified}
        part = await self.client.download_blob(
            offset=start,
            length=end - start + 1,
            version_id=self.version_id,
            max_concurrency=1,
            **pinned,
        )
        yield _chunks(part)

    async def whole(self, data: bytes) -> Any:
        return await self.client.upload_blob(
            data, length=len(data), overwrite=True, max_concurrency=1
        )

    async def begin(self, size: int) -> _Blocks:
        return _Blocks(self.client)


class _Blocks:
    """A block blob's blocks, staged side by side and committed as one list."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def part(self, number: int, offset: int, body: Any) -> str:
        block_id = base64.b64encode(f"copilot-{number:08d}".encode()).decode()
        await self.client.stage_block(block_id, body, length=len(body))
        return block_id

    async def complete(self, parts: list[Any]) -> None:
        from azure.storage.blob import BlobBlock

        await self.client.commit_block_list([BlobBlock(block_id=i) for i in parts])

    async def abort(self) -> None:
        """Nothing to do: the service discards a blob's uncommitted blocks (after
        seven days, or at its next commit)."""


def reader(fs: Any, path: str) -> driver.Reader:
    """``container/blob`` of adlfs's filesystem, to download."""
    return _Blob(fs, path)


def writer(fs: Any, path: str) -> driver.Writer:
    """``container/blob`` of adlfs's filesystem, to upload."""
    return _Blob(fs, path)


async def close(fs: Any) -> None:
    """End the filesystem's Azure client and its connections."""
    from adlfs.utils import close_service_client

    await close_service_client(fs)


def fsspec_class() -> type:
    """adlfs's filesystem, named rather than looked up by protocol: fsspec's
    registry is process-wide, and the Flyte SDK (imported for ``PATH.py:TASK``)
    registers obstore's fsspec class for ``abfs`` in it."""
    import adlfs

    return adlfs.AzureBlobFileSystem
