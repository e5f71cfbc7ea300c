"""Running one step (download or sidecar) to an outcome the orchestrator can read.

Shared by the CLI and by library callers: a deadline around the whole step, and
the error document written where the protocol wants it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from copilot.errors import CopilotError, ErrorInfo, describe
from copilot.literals.text import format_duration_ns
from copilot.storage import Store, join_uri

T = TypeVar("T")


def call_with_deadline(fn: Callable[[], T], seconds: float | None, what: str) -> T:
    """Run ``fn``; if it has not finished after ``seconds``, raise a timeout error.

    The work runs in a daemon thread so the caller can report the timeout and
    exit even while a transfer is stuck in the network.
    """
    if not seconds or seconds <= 0:
        return fn()
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    worker = threading.Thread(target=target, name="copilot-step", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        limit = format_duration_ns(int(seconds * 1e9))
        raise CopilotError(f"{what} did not finish within the timeout of {limit}")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def as_copilot_error(exc: BaseException) -> CopilotError:
    """Expected failures pass through; anything else becomes an internal error line."""
    if isinstance(exc, CopilotError):
        return exc
    return CopilotError(f"internal error: {describe(exc)}")


def write_error_document(store: Store, prefix: str, name: str, code: str, err: CopilotError) -> str:
    """Write ``ErrorDocument`` to ``<prefix>/<name>``; returns its URI."""
    uri = join_uri(prefix, name)
    info = ErrorInfo(code=code, message=err.message, kind=err.kind, origin=err.origin)
    store.write_bytes(uri, info.to_document(), what="write error document")
    return uri
