"""Running one step (download or sidecar) to an outcome the orchestrator can read.

Shared by the CLI and by library callers: a deadline around the whole step, and
the error document written where the protocol wants it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from flyteidl2.core import execution_pb2

from copilot import _signals
from copilot.errors import INPUT_DOWNLOAD_FAILED, CopilotError, DataError, ErrorInfo, describe
from copilot.literals.text import format_duration_ns
from copilot.storage import Store, join_uri

T = TypeVar("T")


def call_with_deadline(
    fn: Callable[[], T], seconds: float | None, what: str, *, stop_on_signal: bool = False
) -> T:
    """Run ``fn``; raise a clear error if it has not finished after ``seconds``.

    The work runs in a daemon thread so the caller can report the timeout (or,
    with ``stop_on_signal``, a SIGTERM) and exit even while a transfer is stuck
    in the network.
    """
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    worker = threading.Thread(target=target, name="copilot-step", daemon=True)
    worker.start()
    deadline = time.monotonic() + seconds if seconds and seconds > 0 else None
    while worker.is_alive():
        if stop_on_signal and _signals.TERMINATED.is_set():
            raise CopilotError(f"{what} was interrupted by SIGTERM before it finished")
        if deadline is not None and time.monotonic() >= deadline:
            limit = format_duration_ns(int(seconds * 1e9))  # type: ignore[operator]
            raise CopilotError(f"{what} did not finish within the timeout of {limit}")
        step = 0.05 if stop_on_signal else 0.5
        if deadline is not None:
            step = max(0.0, min(step, deadline - time.monotonic()))
        worker.join(step)
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def as_copilot_error(exc: BaseException) -> CopilotError:
    """Expected failures pass through; anything else becomes an internal error line."""
    if isinstance(exc, CopilotError):
        return exc
    return CopilotError(f"internal error: {describe(exc)}")


def download_error(store: Store, uri: str) -> ErrorInfo | None:
    """The failure ``download`` recorded at ``uri``, if the document there is one.

    Only download's document (code ``InputDownloadFailed``) is a first cause
    the sidecar must keep: a document an earlier sidecar run wrote is its own
    and may be replaced, so a re-run by hand is never blocked by it.
    """
    from copilot.messages import parse_message

    if not store.exists(uri):
        return None
    try:
        doc = parse_message(
            execution_pb2.ErrorDocument, store.read_bytes(uri, what="read error document"), uri
        )
    except DataError:
        return None  # not a document anybody can read: nothing to keep
    if doc.error.code != INPUT_DOWNLOAD_FAILED:
        return None
    return ErrorInfo.from_container_error(doc.error)


def write_error_document(
    store: Store,
    prefix: str,
    name: str,
    code: str,
    err: CopilotError,
    *,
    keep_download_error: bool = False,
) -> str | None:
    """Write ``ErrorDocument`` to ``<prefix>/<name>``; returns its URI.

    With ``keep_download_error`` a document that ``download`` already wrote
    there is kept (the first cause is never lost) and None is returned.
    """
    uri = join_uri(prefix, name)
    if keep_download_error and download_error(store, uri) is not None:
        return None
    info = ErrorInfo(code=code, message=err.message, kind=err.kind, origin=err.origin)
    store.write_bytes(uri, info.to_document(), what="write error document")
    return uri
