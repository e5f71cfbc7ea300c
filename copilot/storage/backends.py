"""Every store copilot can reach, one table entry each (like fsspec's registry).

An entry says which fsspec protocol serves the store, where the code lives
(imported only when a URI needs it), how to install it when it is missing, how
copilot's configuration becomes the filesystem's keyword arguments, and which
transfer path it takes.  Adding a store is adding an entry, not new branches.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from copilot.config import StorageConfig
from copilot.errors import NON_RECOVERABLE, StorageError, UsageError

log = logging.getLogger("copilot")


@dataclass(frozen=True)
class Backend:
    """One kind of store."""

    protocol: str
    #: The module that implements it (for messages; fsspec imports it lazily).
    module: str
    #: What to install when the module is missing ("" when copilot depends on it).
    install: str
    #: copilot's configuration (and the transfer concurrency) as fsspec keyword arguments.
    options: Callable[[StorageConfig, int], dict[str, Any]]
    #: The module with copilot's bounded-memory ``get_file`` / ``put_file`` for this
    #: store (see :mod:`copilot.storage.chunked`); "" uses fsspec's own.
    transfers: str = ""
    #: Adjusts a new filesystem: copilot's retry layer must be the only one that
    #: loops, so each backend's own is cut down to (at most) one extra try.
    prepare: Callable[[Any], None] | None = None
    #: Inputs only: a store that cannot be written or listed.
    read_only: bool = False
    #: Answers a ranged GET (an object store): a small document is read in one
    #: request for at most the limit plus a byte, with no size look-up first.
    ranged_reads: bool = False
    #: The service's own error codes that are worth retrying, and that never are
    #: (HTTP status and connection failures are classified for every backend).
    transient_codes: frozenset[str] = frozenset()
    permanent_codes: frozenset[str] = frozenset()
    #: Builds the filesystem from the options, where copilot has its own
    #: (fsspec.filesystem(protocol) otherwise).
    make: Callable[..., Any] | None = None
    #: The kind of obstore store that serves it ("" when obstore does not):
    #: the default engine for it, unless ``storage.engine`` says fsspec.
    native: str = ""


def _s3(config: StorageConfig, concurrency: int) -> dict[str, Any]:
    opts = config.s3_options()
    opts.setdefault("use_listings_cache", False)
    # One connection per transfer in flight (botocore's pool holds 10 by default).
    cfg = opts.setdefault("config_kwargs", {})
    cfg.setdefault("max_pool_connections", max(10, concurrency * 2))
    # botocore retries one request a little (a dropped connection mid-part);
    # copilot.storage.retry retries whole operations and is the only loop.
    cfg.setdefault("retries", {"max_attempts": 2, "mode": "standard"})
    return opts


# S3's error codes (botocore puts them in ``response["Error"]["Code"]``).
_S3_TRANSIENT = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
        "RequestLimitExceeded",
        "TooManyRequests",
    }
)
_S3_PERMANENT = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "NoSuchBucket",
        "NoSuchKey",
        "InvalidBucketName",
        "AllAccessDisabled",
        "ExpiredToken",
        "InvalidToken",
    }
)


# Azure Blob's error codes (azure-core puts them in ``error_code``).
_AZURE_TRANSIENT = frozenset({"ServerBusy", "OperationTimedOut", "InternalError"})
_AZURE_PERMANENT = frozenset(
    {
        "AuthenticationFailed",
        "AuthorizationFailure",
        "AuthorizationPermissionMismatch",
        "InvalidAuthenticationInfo",
        "ContainerNotFound",
        "BlobNotFound",
        "ResourceNotFound",
        "AccountIsDisabled",
    }
)
# GCS's JSON API reasons (gcsfs keeps the HTTP status too, which decides most cases).
_GCS_TRANSIENT = frozenset({"rateLimitExceeded", "backendError", "internalError"})
_GCS_PERMANENT = frozenset({"forbidden", "notFound", "authError", "required"})


def _gcs(config: StorageConfig, concurrency: int) -> dict[str, Any]:
    _no_ca_bundle("gcsfs (gs://)")(config, concurrency)
    # gcsfs 2026.x looks up every bucket's type (zonal / hierarchical) through a
    # gRPC control API first: without credentials that warns on every call, and
    # against an emulator or a private endpoint it stalls a minute per call.
    # copilot reads and writes plain objects, so it is off unless a user turns
    # it on in the environment.
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    return config.gcs_options()


def _one_try(fs: Any) -> None:
    # s3fs's own loop around botocore's retries: botocore's two attempts are enough.
    fs.retries = 1


def _gcs_prepare(fs: Any) -> None:
    """gcsfs wraps its request methods in a loop of 6 tries with pauses of up to
    32 s, fixed when the class is defined: this instance uses the unwrapped ones."""
    import types

    for name in _GCS_RETRYING:
        inner = getattr(getattr(type(fs), name, None), "__wrapped__", None)
        if inner is not None:
            setattr(fs, name, types.MethodType(inner, fs))


#: gcsfs methods decorated with its retry loop.
_GCS_RETRYING = ("_request", "_get_file_request", "_get_file_concurrent")


def _azure_prepare(fs: Any) -> None:
    from copilot.storage import azure

    azure.prepare(fs)


def _none(config: StorageConfig, concurrency: int) -> dict[str, Any]:
    return {}


def _http(config: StorageConfig, concurrency: int) -> dict[str, Any]:
    """fsspec's HTTP filesystem passes its keyword arguments to every aiohttp request:
    a private CA goes in as an SSL context that trusts it besides the system's."""
    if not config.ca_bundle:
        return {}
    import ssl

    context = ssl.create_default_context()
    context.load_verify_locations(cadata=config.ca_certificates())
    return {"ssl": context}


def _no_ca_bundle(name: str) -> Callable[[StorageConfig, int], dict[str, Any]]:
    """For a library that takes no CA bundle: refuse one rather than ignore it."""

    def check(config: StorageConfig, concurrency: int) -> dict[str, Any]:
        if config.ca_bundle:
            raise UsageError(
                f"storage.ca-bundle: {name} takes no CA bundle; set SSL_CERT_FILE to a PEM "
                "file holding the system's CAs and yours"
            )
        return {}

    return check


def _local(**options: Any) -> Any:
    from copilot.storage.local import LocalFileSystem

    return LocalFileSystem()


BACKENDS: dict[str, Backend] = {
    b.protocol: b
    for b in (
        Backend(
            "s3",
            "s3fs",
            "",
            _s3,
            transfers="copilot.storage.s3",
            ranged_reads=True,
            native="s3",
            prepare=_one_try,
            transient_codes=_S3_TRANSIENT,
            permanent_codes=_S3_PERMANENT,
        ),
        Backend(
            "gs",
            "gcsfs",
            "copilot[gcs]",
            _gcs,
            transfers="copilot.storage.gcs",
            ranged_reads=True,
            prepare=_gcs_prepare,
            transient_codes=_GCS_TRANSIENT,
            permanent_codes=_GCS_PERMANENT,
        ),
        Backend(
            "abfs",
            "adlfs",
            "copilot[azure]",
            lambda c, n: {
                **_no_ca_bundle("adlfs (abfs:// on the fsspec engine)")(c, n),
                **c.azure_options(),
            },
            transfers="copilot.storage.azure",
            ranged_reads=True,
            native="azure",
            prepare=_azure_prepare,
            transient_codes=_AZURE_TRANSIENT,
            permanent_codes=_AZURE_PERMANENT,
        ),
        Backend("file", "copilot.storage.local", "", _none, make=_local),
        Backend("memory", "fsspec", "", _none),
        Backend("http", "fsspec", "", _http, read_only=True),
        Backend("https", "fsspec", "", _http, read_only=True),
    )
}


def backend_for(protocol: str) -> Backend:
    """The table entry for ``protocol``; an unknown one still goes through fsspec."""
    return BACKENDS.get(protocol) or Backend(protocol, "fsspec", "", _none)


def engine_for(protocol: str, config: StorageConfig) -> str:
    """``obstore`` for a store it serves unless the configuration asks for fsspec
    (or needs what only fsspec does: V2 signatures), else ``fsspec``."""
    backend = backend_for(protocol)
    if not backend.native or config.engine == "fsspec":
        return "fsspec"
    if config.engine == "auto":
        from copilot.storage import obstore_engine

        why = obstore_engine.unsupported(backend.native, config)
        if why:
            log.info("%s://: the fsspec engine serves this configuration (%s)", protocol, why)
            return "fsspec"
    return "obstore"


def make_client(protocol: str, config: StorageConfig, concurrency: int) -> Any:
    """A client for ``protocol`` on the engine :func:`engine_for` picks, its code
    imported now (a backend is loaded only when a URI needs it)."""
    backend = backend_for(protocol)
    if backend.make is not None:
        raise ValueError(f"{protocol}:// is copilot's own local store, not a client")
    try:
        if engine_for(protocol, config) == "obstore":
            from copilot.storage import obstore_engine

            options = obstore_engine.KINDS[backend.native](config)
            concurrency_hint = (
                config.azure_settings().upload_concurrency if backend.native == "azure" else None
            )
            return obstore_engine.ObstoreClient(
                protocol, backend.native, options, upload_concurrency=concurrency_hint
            )
        import fsspec

        from copilot.storage.fsspec_engine import FsspecClient

        options = backend.options(config, concurrency)
        fs = fsspec.filesystem(protocol, skip_instance_cache=True, **options)
    except (ImportError, ValueError) as exc:
        hint = f" (install {backend.install})" if backend.install else ""
        text = str(exc).strip().splitlines()
        raise StorageError(
            f"storage {protocol}://: backend not available{hint}: "
            f"{text[0] if text else type(exc).__name__}",
            kind=NON_RECOVERABLE,
        ) from None
    if backend.prepare is not None:
        backend.prepare(fs)
    return FsspecClient(fs, protocol, backend.transfers)


#: Every backend's codes together: an exception does not say which store raised it.
TRANSIENT_CODES = frozenset().union(*(b.transient_codes for b in BACKENDS.values()))
PERMANENT_CODES = frozenset().union(*(b.permanent_codes for b in BACKENDS.values()))
