"""The one place where backend exceptions become copilot's errors.

Whatever the backend (botocore, gcsfs, azure-core, aiohttp, the OS), a failure
leaves the storage package as a :class:`~copilot.errors.StorageError` with one
line naming the action and the object, and a kind that says whether a retry
can help.  Credentials never appear: URIs are shown without user info or
query strings.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from copilot.errors import NON_RECOVERABLE, RECOVERABLE, CopilotError, StorageError
from copilot.storage.uris import display_uri


def unsatisfiable_range(exc: BaseException) -> bool:
    """A 416 for a range starting at byte 0: the object is empty.  Backends say it
    as a status (azure-core, gcsfs), botocore's ``InvalidRange`` code, or s3fs's
    ``OSError`` text."""
    text = str(exc)
    return (
        http_status(exc) == 416
        or "InvalidRange" in text
        or "range is not satisfiable" in text.lower()
    )


#: obstore's errors carry the response's status only in their text.
_OBSTORE_STATUS = re.compile(r"non-2xx status code: (\d{3})|\bstatus: (\d{3}),")


def mark_retried(exc: BaseException) -> BaseException:
    """Mark a failure that a retry loop already gave up on (copilot's own, around a
    range or a part, or obstore's around a multipart upload's requests): no outer
    loop tries the whole operation again, so retries never multiply."""
    try:
        exc.copilot_retried = True  # type: ignore[attr-defined]
    except AttributeError:
        pass  # an exception without a __dict__: it is simply retried
    return exc


def was_retried(exc: BaseException) -> bool:
    return any(getattr(e, "copilot_retried", False) for e in causes(exc))


def http_status(exc: BaseException) -> int | None:
    """The HTTP status a backend exception carries, wherever that backend keeps it.

    botocore: ``response["ResponseMetadata"]["HTTPStatusCode"]``; aiohttp and
    s3fs: ``status``; gcsfs: ``code`` (and a bare ``OSError`` for 403); azure-core:
    ``status_code``; obstore: the text of its message.
    """
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        if isinstance(status, int):
            return status
    for attr in ("status", "status_code", "code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and 100 <= value < 600:
            return value
    if type(exc) is OSError and str(exc).startswith("Forbidden: "):
        return 403  # gcsfs turns a 403 into a bare OSError("Forbidden: <url>")
    if _is_obstore(exc):
        found = _OBSTORE_STATUS.search(str(exc))
        if found:
            return int(found.group(1) or found.group(2))
    return None


#: How obstore (reqwest, hyper) says a request never got a whole answer: the
#: connection failed, broke, stalled or timed out.  Worth another try.
_OBSTORE_TRANSPORT = re.compile(
    r"HttpError \{\s*kind: (Connect|Timeout|Interrupted|Request|Decode|Unknown)"
    r"|error sending request|error decoding response body|connection closed"
    r"|operation timed out|connection reset",
    re.IGNORECASE,
)


def obstore_transport(exc: BaseException) -> bool:
    """An obstore failure of the connection rather than an answer from the service."""
    return (
        _is_obstore(exc) and http_status(exc) is None and bool(_OBSTORE_TRANSPORT.search(str(exc)))
    )


def _is_obstore(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("obstore") or (
        # obstore raises the builtin FileNotFoundError too, with its own text
        isinstance(exc, FileNotFoundError) and "Error performing" in str(exc)
    )


_DNS_TEXT = (
    "dns error",
    "Name or service not known",
    "Temporary failure in name resolution",
    "nodename nor servname provided",
    "No address associated with hostname",
)


def causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, outermost first (each once, whatever the cycles)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not e for e in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def dns_failure(exc: BaseException) -> str | None:
    """The store host that could not be resolved, when a DNS lookup is what failed.

    Returns the host name ("" when the exceptions do not say which), or None
    for any other failure.  aiohttp keeps ``host`` and the ``socket.gaierror``;
    botocore keeps the endpoint URL.
    """
    import socket

    host = ""
    failed = False
    for err in causes(exc):
        if not host and _is_obstore(err):
            found = re.search(r"Error performing \w+ (\S+)", str(err))
            host = (urlsplit(found.group(1)).hostname or "") if found else ""
        name = getattr(err, "host", None)
        url = (getattr(err, "kwargs", None) or {}).get("endpoint_url")
        if not host and isinstance(name, str):
            host = name
        elif not host and isinstance(url, str):
            host = urlsplit(url).hostname or ""
        if (
            isinstance(err, socket.gaierror)
            or isinstance(getattr(err, "os_error", None), socket.gaierror)
            or type(err).__name__ == "ClientConnectorDNSError"
            or any(t in str(err) for t in _DNS_TEXT)
        ):
            failed = True
    return host if failed else None


#: How a certificate the client does not trust shows: rustls (obstore) names the
#: reason in its debug text; Python's ssl module raises SSLCertVerificationError.
_TLS_TEXT = re.compile(
    r"InvalidCertificate\(\s*(\w+)|CERTIFICATE_VERIFY_FAILED\] certificate verify failed: ([^(']+)"
)


def tls_failure(exc: BaseException) -> str | None:
    """Why the store's TLS certificate was refused (the reason, "" when unsaid), or
    None when that is not what failed.  Trying again cannot help."""
    import ssl

    for err in causes(exc):
        found = _TLS_TEXT.search(str(err))
        if found:
            return (found.group(1) or found.group(2) or "").strip()
        if isinstance(err, ssl.SSLCertVerificationError):
            return str(err.verify_message or "")
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def storage_error(exc: BaseException, uri: str, action: str) -> CopilotError:
    """Turn a backend exception into one clear line that names the object."""
    if isinstance(exc, CopilotError):
        return exc
    shown = display_uri(uri)
    status = http_status(exc)
    if type(exc).__name__ == "InvalidPathError" and _is_obstore(exc):
        # obstore refuses keys with empty, "." or ".." segments before copilot sees them.
        found = re.search(r'Path "([^"]*)"', str(exc))
        key = f" {found.group(1)!r}" if found else ""
        return StorageError(
            f"{action} {shown}: the object key{key} cannot be used as a file name inside "
            "the input directory (an empty, '.' or '..' path segment)",
            kind=NON_RECOVERABLE,
        )
    if isinstance(exc, FileNotFoundError):
        return StorageError(f"{action} {shown}: not found", kind=NON_RECOVERABLE)
    if isinstance(exc, PermissionError):
        return StorageError(f"{action} {shown}: access denied", kind=NON_RECOVERABLE)
    if status in (401, 403):
        return StorageError(
            f"{action} {shown}: access denied (HTTP {status})", kind=NON_RECOVERABLE
        )
    if status == 404:
        return StorageError(f"{action} {shown}: not found", kind=NON_RECOVERABLE)
    reason = tls_failure(exc)
    if reason is not None:
        return StorageError(
            f"{action} {shown}: the store's TLS certificate is not trusted"
            f"{f' ({reason})' if reason else ''}; give the CA that signed it with "
            "--storage.ca-bundle (a PEM file)",
            kind=NON_RECOVERABLE,
        )
    host = dns_failure(exc)
    if host is not None:
        named = f"the store's host {host!r}" if host else "the store's host"
        return StorageError(
            f"{action} {shown}: {named} could not be resolved (DNS); check the endpoint",
            kind=NON_RECOVERABLE,
        )
    if isinstance(status, int) and 400 <= status < 600:
        kind = NON_RECOVERABLE if status in (401, 403, 404, 410) else RECOVERABLE
        return StorageError(f"{action} {shown}: HTTP {status}", kind=kind)
    if _timed_out(exc):
        return StorageError(f"{action} {shown}: timed out")
    return StorageError(f"{action} {shown}: {_first_line(exc)}")


def _timed_out(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError):
        return True
    # Before 3.11 asyncio's TimeoutError is a class of its own; it can only have
    # been raised if asyncio is loaded, so a local run never imports it to check.
    aio = sys.modules.get("asyncio")
    return aio is not None and isinstance(exc, aio.TimeoutError)


@contextmanager
def _errors(uri: str, action: str) -> Iterator[None]:
    try:
        yield
    except CopilotError:
        raise
    except Exception as exc:
        raise storage_error(exc, uri, action) from exc
