"""S3: copilot's keys as obstore's and s3fs's options, and s3fs transfers in bounded
memory (the plan is in :mod:`copilot.storage.driver`).

s3fs's own ``_get_file`` / ``_put_file`` hold whole parts in memory (up to ten
50 MiB parts at once, and a whole file under 100 MiB for a single PUT), so a
large object or many medium ones can use gigabytes.  Requests here go to the
aiobotocore client s3fs keeps for the bucket (``get_s3``: its session, credentials
and region), with public API only; copilot's retry loop is the only one.
"""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from copilot.config_values import parse_bool, text_value
from copilot.errors import NON_RECOVERABLE, StorageError, UsageError
from copilot.redaction import masked_repr
from copilot.storage import chunked, driver
from copilot.storage.config import StorageConfig
from copilot.storage.errors import unsatisfiable_range
from copilot.storage.sizes import PART_SIZE, RANGE_SIZE

# -- configuration: copilot's keys as each engine's options ---------------------

#: A private CA for S3 may also come from botocore's variable.
CA_ENV = "AWS_CA_BUNDLE"


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


@dataclass(frozen=True)
class S3Settings:
    """S3's configuration as both engines read it (empty: the environment decides)."""

    endpoint: str = ""
    region: str = ""
    access_key_id: str = ""
    secret_key: str = ""
    token: str = ""
    disable_ssl: bool = False
    virtual_hosted: bool = False
    v2_signing: bool = False

    def __repr__(self) -> str:
        return masked_repr(self, ("secret_key", "token", "access_key_id"))


def settings(config: StorageConfig) -> S3Settings:
    """The S3 keys (stow's, or Flyte 1's ``connection`` form), checked once for
    every engine; empty values are left to the environment."""
    stow = config.stow_for("s3")
    conn = config.connection

    def pick(stow_key: str, conn_key: str) -> str:
        return text_value(stow.get(stow_key) or conn.get(conn_key)).strip()

    endpoint = pick("endpoint", "endpoint")
    auth = pick("auth_type", "auth-type").lower()
    key = pick("access_key_id", "access-key")
    secret = pick("secret_key", "secret-key")
    secret_path = text_value(stow.get("secret_key_path")).strip()
    token = text_value(stow.get("token")).strip()
    disable_ssl = parse_bool(
        stow.get("disable_ssl", conn.get("disable-ssl", False)), "storage disable_ssl"
    )
    if secret_path and not secret:
        secret = config.secret_file(secret_path)
    if auth not in ("", "accesskey", "iam"):
        raise UsageError(f"storage auth_type: expected accesskey or iam, found {auth!r}")
    if auth == "iam":
        key = secret = token = ""
    elif key or secret:
        if not (key and secret):
            raise UsageError(
                "storage: access_key_id and secret_key must be given together "
                f"(found only {'access_key_id' if key else 'secret_key'})"
            )
    else:
        token = ""
    if endpoint and "://" not in endpoint:
        endpoint = ("http://" if disable_ssl else "https://") + endpoint
    return S3Settings(
        endpoint=endpoint,
        region=pick("region", "region"),
        access_key_id=key,
        secret_key=secret,
        token=token,
        disable_ssl=disable_ssl,
        # stow (and so Flyte) forces path-style addressing unless told not to.
        virtual_hosted=parse_bool(
            stow.get("disable_force_path_style", False), "storage disable_force_path_style"
        ),
        v2_signing=parse_bool(stow.get("v2_signing", False), "storage v2_signing"),
    )


def unsupported(config: StorageConfig, environ: Mapping[str, str] | None = None) -> str:
    """Why obstore cannot serve S3 as configured ("" when it can): botocore's V2
    signatures, or a profile that needs botocore."""
    s3 = settings(config)
    if s3.v2_signing:
        return "storage v2_signing: obstore signs with SigV4 only"
    if not s3.access_key_id:
        return _aws_profile(os.environ if environ is None else environ)[2]
    return ""


def obstore_options(
    config: StorageConfig, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``S3Store`` keyword arguments from copilot's configuration (the engine adds
    its HTTP client's timeouts and any CA bundle).

    What is not configured is left to obstore, which reads the standard
    ``AWS_*`` variables itself (keys, session token, region, endpoint, IRSA web
    identity, ECS/EKS container credentials, instance metadata); static keys and
    the region of a shared credentials/config profile (``AWS_PROFILE``) are read
    here, as botocore would.  botocore's ``AWS_EC2_METADATA_DISABLED`` is
    honoured: the instance metadata address is never asked.
    """
    env = os.environ if environ is None else environ
    s3 = settings(config)
    why = unsupported(config, env)
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
    if endpoint.startswith("http://"):
        opts["client_options"] = {"allow_http": True}
    if _true(env.get("AWS_EC2_METADATA_DISABLED")):
        # object_store does not read botocore's switch: point its instance
        # metadata look-up at a closed loopback port instead.
        opts["metadata_endpoint"] = "http://127.0.0.1:9"
    return opts


def fsspec_options(config: StorageConfig, concurrency: int) -> dict[str, Any]:
    """s3fs keyword arguments; empty but for the pool and retries means "let
    botocore find everything"."""
    s3 = settings(config)
    opts: dict[str, Any] = {}
    client: dict[str, Any] = {}
    cfg: dict[str, Any] = {}
    if s3.access_key_id:
        opts["key"] = s3.access_key_id
        opts["secret"] = s3.secret_key
        if s3.token:
            opts["token"] = s3.token
    if s3.endpoint:
        client["endpoint_url"] = s3.endpoint
        style = "virtual" if s3.virtual_hosted else "path"
        cfg.setdefault("s3", {})["addressing_style"] = style
    if s3.region:
        client["region_name"] = s3.region
    if s3.disable_ssl and "://" not in (s3.endpoint or ""):
        # An endpoint's own scheme wins (botocore before 1.35 let use_ssl turn an
        # https:// endpoint into http://).
        opts["use_ssl"] = False
    if s3.v2_signing:
        cfg["signature_version"] = "s3"
    if config.ca_bundle:
        client["verify"] = config.ca_bundle
    if client:
        opts["client_kwargs"] = client
    if cfg:
        opts["config_kwargs"] = cfg
    opts.setdefault("use_listings_cache", False)
    # One connection per transfer in flight (botocore's pool holds 10 by default).
    config_kwargs = opts.setdefault("config_kwargs", {})
    config_kwargs.setdefault("max_pool_connections", max(10, concurrency * 2))
    # copilot.storage.retry is the only loop (a range or a part retried alone):
    # botocore's own would multiply it.
    config_kwargs.setdefault("retries", {"max_attempts": 1, "mode": "standard"})
    return opts


def prepare(fs: Any) -> None:
    """s3fs's own loop around botocore's: one try, copilot's loop is the only one."""
    fs.retries = 1


# -- transfers on the fsspec engine ---------------------------------------------

MAX_PARTS = 10_000
#: Ranges of one object downloaded at once (the rest of the object is split into
#: as few ranges as keep them busy, see driver.range_bounds): the fastest count
#: measured (docs/BENCHMARKS.md, "Tuning measurements").
RANGES_IN_FLIGHT = 4


class _Slices:
    """A request body aiohttp sends ``chunked.SEND_SLICE`` bytes at a time, uncopied.

    botocore wraps a bytes ``Body`` in a ``BytesIO`` that shares it, and aiohttp
    copies that whole (its ``getbuffer()`` un-shares it); handed the bytes
    themselves, Python 3.11's transport copies what the socket did not take,
    twice.  Either way: one more copy per body in flight (docs/BENCHMARKS.md,
    "Tuning measurements").  A small file
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


async def _client(fs: Any, bucket: str) -> Any:
    """The aiobotocore client that serves ``bucket`` (s3fs's, for its credentials and
    the bucket's region), set to send part bodies uncopied."""
    await fs.set_session()
    client = await fs.get_s3(bucket)
    if not getattr(client, "_copilot_bytes_body", False):
        client.meta.events.register("before-send.s3", _sliced_body)
        client._copilot_bytes_body = True
    return client


def _split(path: str) -> tuple[str, str]:
    bucket, _, key = path.partition("/")
    return bucket, key


async def _chunks(body: Any) -> AsyncIterator[bytes]:
    try:
        while chunk := await body.read(chunked.READ_CHUNK):
            yield chunk
    finally:
        body.close()


def _md5_etag(resp: dict) -> str | None:
    """The object's MD5, when its ETag is one (single-part, not SSE-KMS or SSE-C)."""
    etag = str(resp.get("ETag") or "").strip('"')
    if resp.get("ServerSideEncryption") == "aws:kms" or resp.get("SSECustomerAlgorithm"):
        return None
    if len(etag) == 32 and all(c in "0123456789abcdef" for c in etag.lower()):
        return etag.lower()
    return None


class _Object:
    """One object of s3fs's filesystem, read and written through the aiobotocore
    client s3fs keeps for its bucket (a :class:`~copilot.storage.driver.Reader`
    and :class:`~copilot.storage.driver.Writer`)."""

    range_size = RANGE_SIZE
    ranges_in_flight = RANGES_IN_FLIGHT
    longest: int | None = None
    part_size = PART_SIZE
    max_parts = MAX_PARTS
    parts_in_flight = chunked.PARTS_IN_FLIGHT
    streamed = False

    def __init__(self, fs: Any, path: str) -> None:
        self.fs = fs
        self.bucket, self.key = _split(path)
        self.where = f"s3://{path}"
        self._client: Any = None

    async def client(self) -> Any:
        if self._client is None:
            self._client = await _client(self.fs, self.bucket)
        return self._client

    @asynccontextmanager
    async def first(self, step: int) -> AsyncIterator[driver.FirstRange]:
        """Asking for a range up front means a big object is never streamed whole
        only to be dropped.  An empty object has no byte 0, so S3 answers 416;
        that one is fetched plainly."""
        client = await self.client()
        try:
            resp = await client.get_object(
                Bucket=self.bucket, Key=self.key, Range=f"bytes=0-{step - 1}"
            )
        except Exception as exc:
            if not unsatisfiable_range(exc):
                raise
            resp = await client.get_object(Bucket=self.bucket, Key=self.key)
        content_range = str(resp.get("ContentRange") or "")
        total = content_range.rsplit("/", 1)[-1]
        if "/" in content_range and total.isdigit():
            size = int(total)
        else:
            size = int(resp.get("ContentLength") or 0)
        # A whole object in one response: its MD5 ETag (when it is one) still applies.
        body = resp["Body"]
        try:
            yield driver.FirstRange(
                size, _chunks(body), size <= step, _md5_etag(resp), resp.get("ETag") or None
            )
        finally:
            body.close()

    @asynccontextmanager
    async def read(
        self, start: int, end: int, version: str | None
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        pinned = {"IfMatch": version} if version else {}
        client = await self.client()
        part = await client.get_object(
            Bucket=self.bucket, Key=self.key, Range=f"bytes={start}-{end}", **pinned
        )
        try:
            yield _chunks(part["Body"])
        finally:
            part["Body"].close()

    async def whole(self, data: bytes) -> Any:
        client = await self.client()
        return await client.put_object(Bucket=self.bucket, Key=self.key, Body=data)

    async def begin(self, size: int) -> _Multipart:
        client = await self.client()
        mpu = await client.create_multipart_upload(Bucket=self.bucket, Key=self.key)
        return _Multipart(client, self.bucket, self.key, mpu["UploadId"])


class _Multipart:
    """An S3 multipart upload, begun."""

    def __init__(self, client: Any, bucket: str, key: str, upload_id: str) -> None:
        self.client, self.upload_id = client, upload_id
        self.names = {"Bucket": bucket, "Key": key, "UploadId": upload_id}

    async def part(self, number: int, offset: int, body: Any) -> dict[str, Any]:
        resp = await self.client.upload_part(**self.names, PartNumber=number, Body=body)
        return {"PartNumber": number, "ETag": resp["ETag"]}

    async def complete(self, parts: list[Any]) -> None:
        await self.client.complete_multipart_upload(**self.names, MultipartUpload={"Parts": parts})

    async def abort(self) -> None:
        await self.client.abort_multipart_upload(**self.names)


def reader(fs: Any, path: str) -> driver.Reader:
    """``bucket/key`` of s3fs's filesystem, to download."""
    return _Object(fs, path)


def writer(fs: Any, path: str) -> driver.Writer:
    """``bucket/key`` of s3fs's filesystem, to upload."""
    return _Object(fs, path)


async def close(fs: Any) -> None:
    """End the filesystem's clients: its own and the per-region ones s3fs made for
    buckets elsewhere (all kept by ``_s3creator``, a canary test watches it)."""
    creator = getattr(fs, "_s3creator", None)
    if creator is not None:
        await creator.__aexit__(None, None, None)
        fs._s3, fs._s3creator = None, None


def fsspec_class() -> type:
    """s3fs's filesystem, named rather than looked up by protocol: fsspec's
    registry is process-wide, and the Flyte SDK (imported for ``PATH.py:TASK``)
    registers obstore's fsspec class for ``s3`` in it."""
    import s3fs

    return s3fs.S3FileSystem
