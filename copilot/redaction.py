"""Secrets never leave the process: one redaction for everything copilot says.

A presigned input URL carries its signature in the query (``X-Amz-Signature``,
an Azure SAS's ``sig=``, ``X-Goog-Signature``); a library's error text can hold
a whole request URL or an ``Authorization`` header; a multipart request names
its ``uploadId``; a URL can carry a password as user info.  :func:`redact`
masks all of these in any text, and it runs at the few places text leaves:

- every log record, copilot's and the libraries', at every level, tracebacks
  included (:class:`RedactingFilter`, installed by ``logs.configure_logging``);
- every expected failure's message (:class:`~copilot.errors.CopilotError`),
  which is what stderr, ``error.pb`` and ``copilot run -o record`` show;
- ``copilot run``'s record as a whole.

What is kept: the scheme, host, path and the names of query parameters, so a
message still says which object failed.
"""

from __future__ import annotations

import logging
import re
import traceback
from typing import Any

MASK = "REDACTED"

#: Names whose value is a secret, as a query parameter or a ``name=value`` pair.
_SECRET_WORDS = (
    r"signature|credential|token|secret|password|passwd|apikey|api_key|accountkey"
    r"|sharedaccesssignature|uploadid"
)
_NAME = rf"[A-Za-z0-9_.-]*(?:{_SECRET_WORDS})[A-Za-z0-9_.-]*"
#: In a query string also Azure SAS's ``sig`` (and ``X-Amz-Signature`` & co. above).
_QUERY = re.compile(rf"(?i)([?&;](?:{_NAME}|sig)=)([^&\s\"'<>)#,;]+)")
#: ``name=value`` (a connection string, a form), and ``'name': 'value'`` (a dict's
#: repr, JSON); a bare ``name: text`` is left alone, as it is how messages name paths.
_PAIR = re.compile(rf"(?i)(\b{_NAME}=[\"']?|[\"']{_NAME}[\"']\s*:\s*[\"'])([^&\s\"'<>)#,;}}]+)")
_HEADER = re.compile(
    r"(?i)(\b(?:authorization|proxy-authorization|x-amz-security-token|x-ms-authorization"
    r"|x-goog-iam-authorization-token)[\"']?\s*:\s*[\"']?)([^\"'\n,}]+)"
)
#: ``scheme://user:password@host`` and ``scheme://token@host`` (not Azure's
#: ``abfs://container@account``, where that place holds the container).
_USERINFO = re.compile(r"(?i)\b((?!abfss?://|az://|wasbs?://)[a-z][a-z0-9+.-]*://)([^/\s@\"']+)@")


def redact(text: str) -> str:
    """``text`` with every secret it may hold masked."""
    if not text or not any(c in text for c in "?&=:@"):
        return text
    text = _USERINFO.sub(rf"\1{MASK}@", text)
    text = _HEADER.sub(rf"\1{MASK}", text)
    text = _QUERY.sub(rf"\1{MASK}", text)
    return _PAIR.sub(rf"\1{MASK}", text)


class RedactingFilter(logging.Filter):
    """Masks secrets in a record before any handler formats it (message, arguments
    and traceback), so no level and no formatter can print one."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and record.exc_info[0] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_info, record.exc_text = None, redact(text)
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def masked_repr(settings: Any, secrets: tuple[str, ...]) -> str:
    """A settings dataclass as it may be printed: its credentials (``secrets``) masked."""
    shown = {k: ("***" if k in secrets and v else v) for k, v in settings.__dict__.items()}
    return f"{type(settings).__name__}({shown!r})"
