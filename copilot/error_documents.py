"""The error document: writing it, and recognising the one ``download`` wrote.

Flyte's output reader opens ``<output prefix>/error.pb`` before ``outputs.pb``,
so who may write or replace it is the protocol's rule, kept here:
``download`` always writes its failure; the sidecar writes its own unless the
document there came from ``download`` (the first cause, code
``InputDownloadFailed``), and replaces one an earlier sidecar run left.
"""

from __future__ import annotations

from flyteidl2.core import execution_pb2

from copilot.errors import INPUT_DOWNLOAD_FAILED, CopilotError, DataError, ErrorInfo, UserError
from copilot.storage import Store, join_uri


def download_error(store: Store, uri: str) -> ErrorInfo | None:
    """The failure ``download`` recorded at ``uri``, if the document there is one.

    Only download's document (code ``InputDownloadFailed``) is a first cause
    the sidecar must keep: a document an earlier sidecar run wrote is its own
    and may be replaced, so a re-run by hand is never blocked by it.
    """
    from copilot.protobuf import parse_message

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
    if isinstance(err, UserError) and err.document is not None:
        # The container's own document, forwarded as it wrote it (Flyte #7960).
        document = err.document
    else:
        info = ErrorInfo(code=code, message=err.message, kind=err.kind, origin=err.origin)
        document = info.to_document()
    store.write_bytes(uri, document, what="write error document")
    return uri
