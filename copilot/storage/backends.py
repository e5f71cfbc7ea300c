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

import importlib
from dataclasses import dataclass
from types import ModuleType


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
    #: The stow kind that configures it in Flyte's ``storage`` section (``stow.kind``,
    #: a ``storage.schemes`` entry's ``kind``), and its other spellings.
    kind: str = ""
    kind_aliases: tuple[str, ...] = ()
    #: The keys its configuration takes (``stow.config`` for a stow kind, its own
    #: section for redis): anything else is a typo, and an error.  The module reads them.
    config_keys: tuple[str, ...] = ()
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
            kind="s3",
            kind_aliases=("minio",),
            config_keys=(
                "auth_type",
                "access_key_id",
                "secret_key",
                "secret_key_path",
                "token",
                "region",
                "endpoint",
                "disable_ssl",
                "disable_force_path_style",
                "v2_signing",
            ),
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
            kind="google",
            kind_aliases=("gcs", "gs"),
            config_keys=("json", "project_id", "scopes", "endpoint", "credentials_path"),
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
            kind="azure",
            kind_aliases=("abfs",),
            config_keys=(
                "account",
                "key",
                "domain_suffix",
                "base_url",
                "upload_concurrency",
                "endpoint",
                "connection_string",
            ),
            bounded=True,
            ranged_reads=True,
            transient_codes=_AZURE_TRANSIENT,
            permanent_codes=_AZURE_PERMANENT,
        ),
        Backend(
            "redis",
            "redis",
            "flyte-copilot[redis]",
            "copilot.storage.redis",
            config_keys=("addr", "username", "password", "db"),
        ),
        Backend("file", "copilot.storage.local", "", kind="local", config_keys=("path",)),
        Backend("memory", "fsspec", ""),
        Backend("http", "fsspec", "", "copilot.storage.http", read_only=True),
        Backend("https", "fsspec", "", "copilot.storage.http", read_only=True),
    )
}


def backend_for(protocol: str) -> Backend:
    """The table entry for ``protocol``; an unknown one still goes through fsspec."""
    return BACKENDS.get(protocol) or Backend(protocol, "fsspec", "")


def module_of(backend: Backend) -> ModuleType | None:
    """The module of copilot's that its entry names, imported now (None for a plain
    fsspec protocol): a store's code is loaded only when a URI needs it."""
    return importlib.import_module(backend.module) if backend.module else None


#: The stow kinds, in the table's order, with the keys each takes.
STOW_KEYS: dict[str, tuple[str, ...]] = {b.kind: b.config_keys for b in BACKENDS.values() if b.kind}
#: Every other spelling of a stow kind (``gcs`` is ``google``, ``minio`` is ``s3``).
STOW_KIND_ALIASES = {a: b.kind for b in BACKENDS.values() for a in b.kind_aliases}
#: The URL scheme each stow kind serves.
KIND_SCHEMES = {b.kind: b.protocol for b in BACKENDS.values() if b.kind}
#: The object stores a ``storage.schemes`` entry can dial, with their default kind.
SCHEME_KINDS = {b.protocol: b.kind for b in BACKENDS.values() if b.kind and b.module}


#: Every backend's codes together: an exception does not say which store raised it.
TRANSIENT_CODES = frozenset().union(*(b.transient_codes for b in BACKENDS.values()))
PERMANENT_CODES = frozenset().union(*(b.permanent_codes for b in BACKENDS.values()))
