"""Every store copilot can reach, one table entry each (like fsspec's registry).

An entry is data: which library serves the store and how to install it, the
module of copilot's that knows it (its configuration as each engine's options,
the hooks and bounded-memory transfers of the fsspec engine; imported only when
a URI needs it), the kind of obstore store that serves it natively, and the
service's own error codes that say whether a retry can help.  Adding a store is
adding an entry and its module, not new branches; making a client from an
entry is :mod:`copilot.storage.engines`'.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backend:
    """One kind of store."""

    protocol: str
    #: The library that serves it on the fsspec engine (for messages).
    library: str
    #: What to install when the library is missing ("" when copilot depends on it).
    install: str
    #: copilot's module for it: ``fsspec_options(config, concurrency)`` and, when
    #: present, ``prepare(fs)``, ``reader(fs, path)`` / ``writer(fs, path)`` for
    #: the fsspec engine's bounded-memory transfers (:mod:`~copilot.storage.driver`),
    #: ``obstore_options(config, environ)``, ``unsupported(config, environ)`` and
    #: ``CA_ENV`` for obstore.  "" for a plain fsspec protocol.
    module: str = ""
    #: The kind of obstore store that serves it ("" when obstore does not): the
    #: default engine for it, unless ``storage.engine`` says fsspec.
    native: str = ""
    #: The fsspec engine moves its bytes with the module's ``reader`` / ``writer``
    #: through copilot's driver (bounded memory) rather than the filesystem's.
    bounded: bool = False
    #: Inputs only: a store that cannot be written or listed.
    read_only: bool = False
    #: Answers a ranged GET (an object store): a small document is read in one
    #: request for at most the limit plus a byte, with no size look-up first.
    ranged_reads: bool = False
    #: The service's own error codes that are worth retrying, and that never are
    #: (HTTP status and connection failures are classified for every backend).
    transient_codes: frozenset[str] = frozenset()
    permanent_codes: frozenset[str] = frozenset()


# S3's error codes (botocore puts them in ``response["Error"]["Code"]``; obstore
# leaves the error document in its message).
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


BACKENDS: dict[str, Backend] = {
    b.protocol: b
    for b in (
        Backend(
            "s3",
            "s3fs",
            "flyte-copilot[s3]",
            "copilot.storage.s3",
            native="s3",
            bounded=True,
            ranged_reads=True,
            transient_codes=_S3_TRANSIENT,
            permanent_codes=_S3_PERMANENT,
        ),
        Backend(
            "gs",
            "gcsfs",
            "flyte-copilot[gcs]",
            "copilot.storage.gcs",
            bounded=True,
            ranged_reads=True,
            transient_codes=_GCS_TRANSIENT,
            permanent_codes=_GCS_PERMANENT,
        ),
        Backend(
            "abfs",
            "adlfs",
            "flyte-copilot[azure]",
            "copilot.storage.azure",
            native="azure",
            bounded=True,
            ranged_reads=True,
            transient_codes=_AZURE_TRANSIENT,
            permanent_codes=_AZURE_PERMANENT,
        ),
        Backend("redis", "redis", "flyte-copilot[redis]", "copilot.storage.redis"),
        Backend("file", "copilot.storage.local", ""),
        Backend("memory", "fsspec", ""),
        Backend("http", "fsspec", "", "copilot.storage.http", read_only=True),
        Backend("https", "fsspec", "", "copilot.storage.http", read_only=True),
    )
}


def backend_for(protocol: str) -> Backend:
    """The table entry for ``protocol``; an unknown one still goes through fsspec."""
    return BACKENDS.get(protocol) or Backend(protocol, "fsspec", "")


#: Every backend's codes together: an exception does not say which store raised it.
TRANSIENT_CODES = frozenset().union(*(b.transient_codes for b in BACKENDS.values()))
PERMANENT_CODES = frozenset().union(*(b.permanent_codes for b in BACKENDS.values()))
