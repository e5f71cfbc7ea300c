"""Failures copilot expects, and the error document the orchestrator reads.

Every failure that a user or operator can cause is a :class:`CopilotError`: it
carries a one-line message (variable, path, what was expected, what was found)
and the fields of Flyte's ``ContainerError``.  Anything else that escapes is a
bug and is reported as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from copilot.redaction import redact

# Codes the Flyte plugin knows (upstream flytecopilot uses exactly these).
INPUT_DOWNLOAD_FAILED = "InputDownloadFailed"
OUTPUT_UPLOAD_FAILED = "OutputUploadFailed"


class ErrorKind(str, Enum):
    """``ContainerError.kind``: whether the orchestrator may retry."""

    RECOVERABLE = "RECOVERABLE"
    NON_RECOVERABLE = "NON_RECOVERABLE"

    def __str__(self) -> str:
        return self.value


class Origin(str, Enum):
    """``ContainerError.origin``: whose failure it is (which retry budget Flyte spends)."""

    USER = "USER"
    SYSTEM = "SYSTEM"

    def __str__(self) -> str:
        return self.value


RECOVERABLE = ErrorKind.RECOVERABLE
NON_RECOVERABLE = ErrorKind.NON_RECOVERABLE
USER = Origin.USER
SYSTEM = Origin.SYSTEM


class Retryable(Exception):
    """Mixin for a lower-level failure that is worth trying again (a short read, say)."""


class CopilotError(Exception):
    """An expected failure: reported in one line and in the error document.

    ``kind`` and ``origin`` go into the ``ContainerError``; ``retryable`` tells
    the storage retry layer that trying the same operation again may succeed.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind = RECOVERABLE,
        origin: Origin = SYSTEM,
        retryable: bool = False,
    ) -> None:
        message = redact(message)  # what stderr, error.pb and records show: never a secret
        super().__init__(message)
        self.message = message
        self.kind = ErrorKind(kind)
        self.origin = Origin(origin)
        self.retryable = retryable


class UserError(CopilotError):
    """The main container reported its own failure through ``_ERROR``.

    ``document``, when set, is the container's own serialized ``ErrorDocument``
    (Flyte #7960): written as the error document byte for byte, so the code,
    kind and origin it chose reach the orchestrator unchanged.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind = RECOVERABLE,
        origin: Origin = SYSTEM,
        document: bytes | None = None,
    ) -> None:
        super().__init__(message, kind=kind, origin=origin)
        self.document = document


class UsageError(CopilotError):
    """Bad arguments or configuration: exit non-zero, no error document."""


class StorageError(CopilotError):
    """A storage operation failed (not found, denied, unreachable, ...)."""


class DataError(CopilotError):
    """The data itself is wrong: a retry would fail the same way."""

    def __init__(self, message: str, *, origin: Origin = SYSTEM) -> None:
        super().__init__(message, kind=NON_RECOVERABLE, origin=origin)


@dataclass(frozen=True)
class ErrorInfo:
    """What goes into ``ContainerError``; kept free of protobuf for callers."""

    code: str
    message: str
    kind: ErrorKind = RECOVERABLE
    origin: Origin = SYSTEM

    @classmethod
    def from_container_error(cls, err: Any) -> ErrorInfo:
        """Read back a ``ContainerError`` (enum numbers as their names)."""
        from flyteidl2.core import execution_pb2

        origin = execution_pb2.ExecutionError.ErrorKind.Name(err.origin)
        return cls(
            code=err.code,
            message=err.message,
            kind=ErrorKind(execution_pb2.ContainerError.Kind.Name(err.kind)),
            origin=Origin(origin) if origin in Origin.__members__ else SYSTEM,
        )

    def to_document(self) -> bytes:
        """Serialize as Flyte's ``ErrorDocument``."""
        from flyteidl2.core import execution_pb2

        kinds = execution_pb2.ContainerError.Kind
        origins = execution_pb2.ExecutionError.ErrorKind
        doc = execution_pb2.ErrorDocument(
            error=execution_pb2.ContainerError(
                code=self.code,
                message=self.message,
                kind=kinds.Value(ErrorKind(self.kind).value),
                origin=origins.Value(Origin(self.origin).value),
            )
        )
        return doc.SerializeToString()


def describe(exc: BaseException) -> str:
    """One line for an unexpected exception, without a traceback."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    name = type(exc).__name__
    return f"{name}: {first}" if first else name


def resource_shortage(exc: BaseException) -> CopilotError | None:
    """This machine running short (memory, threads), said as such rather than as an
    internal error: SYSTEM and RECOVERABLE (a retry, or a pod with more memory, may
    well have what it needs).  None for anything else."""
    for current in (exc, exc.__cause__, exc.__context__):
        if isinstance(current, MemoryError):
            what = "ran out of memory"
        elif isinstance(current, RuntimeError) and "can't start new thread" in str(current):
            what = "could not start a thread (memory, or a thread or address-space limit)"
        else:
            continue
        return CopilotError(
            f"this machine {what}; give the step more memory (the sidecar and download "
            f"need about 128 MiB) or fewer transfers at once (--concurrency)"
        )
    return None
