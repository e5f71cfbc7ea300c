"""The two pod steps as library calls: ``download`` and ``sidecar``.

Like Go's ``Download(ctx) error`` / ``Sidecar(ctx) error``, each returns a
result or raises, and takes one cancellation token.  Each also applies the
protocol's failure policy, the same for the CLI and for library callers:

- a failure is written to ``<prefix>/error.pb`` as an ``ErrorDocument`` (the
  name Flyte's output reader opens) and raised as :class:`StepFailed`, which
  says whether the document was written;
- the sidecar never replaces a document ``download`` wrote (the first cause);
  one an earlier sidecar run wrote is replaced, so re-runs are never blocked;
- ``timeout`` bounds the step (for the sidecar: the upload after the main
  container ended) through the token, so in-flight transfers stop and their
  temporary files are removed before the call returns.

Bad arguments raise :class:`~copilot.errors.UsageError` before anything is
written.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flyteidl2.core import literals_pb2

from copilot.cancel import CancelToken
from copilot.constants import DEFAULT_RETRY_SECONDS, ERROR_DOCUMENT_NAME
from copilot.durations import format_duration_ns
from copilot.error_documents import write_error_document
from copilot.errors import (
    INPUT_DOWNLOAD_FAILED,
    NON_RECOVERABLE,
    OUTPUT_UPLOAD_FAILED,
    CopilotError,
    UsageError,
    describe,
    resource_shortage,
)
from copilot.inputs import DownloadResult, download_inputs
from copilot.options import DownloadOptions, UploadOptions
from copilot.storage import Store, display_uri, join_uri, protocol_of

if TYPE_CHECKING:
    # The sidecar's half: imported when a sidecar runs, so a download (the init
    # container, started on every task) does not pay for it.
    from copilot.eager import EagerUploader
    from copilot.outputs import UploadResult
    from copilot.watchers import Watcher

log = logging.getLogger("copilot")

#: How long writing the error document may take once the step itself has failed.
ERROR_DOCUMENT_SECONDS = 30.0


class StepFailed(CopilotError):
    """A step failed; ``error`` is the cause, ``document`` the error document's URI (or None)."""

    def __init__(self, error: CopilotError, document: str | None, note: str = "") -> None:
        super().__init__(error.message, kind=error.kind, origin=error.origin)
        self.error = error
        self.document = document
        #: Why no document was written, when none was.
        self.note = note


@dataclass
class StepLimits:
    """Bounds shared by both steps."""

    #: Seconds the step (the sidecar: its upload) may take; None for no bound.
    timeout: float | None = 3600.0
    #: Attempts per storage operation for transient failures (at least)...
    retries: int = 5
    #: ...and seconds a failing operation keeps being retried (a store that is down
    #: for a while is waited out), never past ``timeout``.
    retry_for: float = DEFAULT_RETRY_SECONDS

    def scope(self, store: Store, token: CancelToken) -> Store:
        """``store`` under the step's token, retrying as these limits say."""
        return store.scoped(token, attempts=self.retries, patience=self.retry_for)


def as_copilot_error(exc: BaseException) -> CopilotError:
    """Expected failures pass through; anything else is an internal error.

    A bug leaves its traceback in the log at any level; the message stays one line.
    """
    if isinstance(exc, CopilotError):
        return exc
    shortage = resource_shortage(exc)
    if shortage is not None:
        log.debug("ran short", exc_info=exc)
        return shortage
    log.error("internal error", exc_info=exc)
    return CopilotError(f"internal error: {describe(exc)}")


def _cause(
    exc: BaseException, token: CancelToken, what: str, timeout: float | None
) -> CopilotError:
    """Why a step failed: its cancellation when the token was set, else the error itself."""
    if token.cancelled:
        return _cancel_message(what, token.reason, timeout)
    return as_copilot_error(exc)


def _cancel_message(what: str, reason: str, timeout: float | None) -> CopilotError:
    if reason == "timeout" and timeout:
        limit = format_duration_ns(int(timeout * 1e9))
        return CopilotError(f"{what} did not finish within the timeout of {limit}")
    if reason == "SIGTERM":
        return CopilotError(f"{what} was interrupted by SIGTERM before it finished")
    return CopilotError(f"{what} was cancelled ({reason})")


def _record_failure(
    store: Store,
    prefix: str,
    name: str,
    code: str,
    err: CopilotError,
    *,
    keep_download_error: bool,
) -> StepFailed:
    """Write the error document for ``err`` (bounded in time); the exception to raise."""
    if not prefix:
        return StepFailed(
            err, None, "no --to-output-prefix given, so no error document was written"
        )
    token = CancelToken()
    disarm = token.cancel_after(ERROR_DOCUMENT_SECONDS)
    try:
        uri = write_error_document(
            store.scoped(token), prefix, name, code, err, keep_download_error=keep_download_error
        )
    except CopilotError as werr:
        return StepFailed(err, None, werr.message)
    finally:
        disarm()
    if uri is None:
        log.warning("download already recorded a failure under %s; kept it", display_uri(prefix))
        return StepFailed(err, join_uri(prefix, name))
    log.info("wrote error document %s", display_uri(uri))
    return StepFailed(err, uri)


def download(
    store: Store,
    opts: DownloadOptions,
    *,
    error_prefix: str = "",
    error_name: str = ERROR_DOCUMENT_NAME,
    limits: StepLimits | None = None,
    cancel: CancelToken | None = None,
) -> DownloadResult:
    """Fetch the inputs into ``opts.to_local_dir``; on failure write ``error.pb`` and raise.

    Raises :class:`StepFailed` (the document is under ``error_prefix`` unless
    that is empty) or :class:`~copilot.errors.UsageError` for bad options.
    """
    limits = limits or StepLimits()
    opts.validate()
    token = CancelToken(cancel)
    disarm = token.cancel_after(limits.timeout)
    try:
        return download_inputs(limits.scope(store, token), opts)
    except UsageError:
        raise
    except Exception as exc:
        err = _cause(exc, token, "download", limits.timeout)
        raise _record_failure(
            store, error_prefix, error_name, INPUT_DOWNLOAD_FAILED, err, keep_download_error=False
        ) from None
    finally:
        disarm()
        token.detach()


def _prewarm(store: Store, uri: str) -> None:
    """Import the backend and open its client while the main container runs.

    Importing s3fs/aiobotocore and building a botocore client takes a few
    hundred milliseconds; doing it now keeps it out of exit-to-outputs time.
    """

    if protocol_of(uri) == "file":
        return  # copilot's own few os calls: nothing to load

    def warm() -> None:
        try:
            store.client(protocol_of(uri))
        except Exception as exc:  # reported properly when the upload needs it
            log.debug("prewarming the store failed: %s", exc)

    threading.Thread(target=warm, name="copilot-prewarm", daemon=True).start()


def sidecar(
    store: Store,
    opts: UploadOptions,
    *,
    start: Watcher | None = None,
    finish: Watcher | None = None,
    limits: StepLimits | None = None,
    cancel: CancelToken | None = None,
) -> UploadResult:
    """Wait for the main container, then upload its outputs and write ``outputs.pb``.

    ``start`` and ``finish`` default to watchers that do not wait (the caller
    knows the container is done).  ``limits.timeout`` bounds the upload once
    the main container has ended; ``cancel`` stops everything, waits included.
    On failure ``error.pb`` is written (download's is kept) and
    :class:`StepFailed` raised.
    """
    from copilot.eager import EagerUploader
    from copilot.outputs import UploadResult, upload_outputs
    from copilot.watchers import NoopWatcher

    limits = limits or StepLimits()
    opts.validate()
    start = start or NoopWatcher()
    finish = finish or NoopWatcher()
    if opts.interface is None:
        # Said at the default level: a forgotten --interface otherwise looks like success.
        log.warning("no --interface given: no outputs declared, nothing to upload")
        return UploadResult(None, literals_pb2.LiteralMap(), skipped_reason="no outputs declared")
    if not opts.declared():
        log.info("no outputs declared; nothing to upload")
        return UploadResult(None, literals_pb2.LiteralMap(), skipped_reason="no outputs declared")
    token = CancelToken(cancel)
    eager: EagerUploader | None = None
    disarm = lambda: None  # noqa: E731 - armed once the main container has ended
    waited = False
    try:
        _prewarm(store, opts.to_output_prefix)
        log.info("main container started (%s)", start.wait_to_start(token))
        if opts.mode == "UPLOAD_EAGER" and opts.to_raw_output:
            eager = EagerUploader(store.scoped(token), opts).start()
        log.info("main container finished (%s)", finish.wait_to_exit(token))
        waited = True
        disarm = token.cancel_after(limits.timeout)
        result = upload_outputs(limits.scope(store, token), opts, eager)
        if result.skipped_reason:
            log.warning("outputs not uploaded: %s", result.skipped_reason)
        return result
    except Exception as exc:
        if isinstance(exc, UsageError):
            if not waited:
                raise
            # Found only once the outputs are read (a store's configuration, say): the
            # container's work is done, so Flyte must still get a document; the same
            # configuration cannot do better on a retry.
            exc.kind = NON_RECOVERABLE
        err = _cause(exc, token, "upload", limits.timeout)
        raise _record_failure(
            store,
            opts.to_output_prefix,
            opts.err_output_name,
            OUTPUT_UPLOAD_FAILED,
            err,
            keep_download_error=True,
        ) from None
    finally:
        disarm()
        token.detach()
        if eager is not None:
            eager.stop()
