"""Reading Flyte protobuf documents strictly: bad bytes become one clear line.

Random bytes often parse "successfully" as a protobuf message made of unknown
fields; a document that has nothing but unknown fields at its top level is
treated as the wrong kind of document rather than silently as an empty one.
"""

from __future__ import annotations

import base64
import binascii
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from copilot.errors import DataError, UsageError

M = TypeVar("M", bound=Message)


def parse_message(cls: type[M], data: bytes, what: str) -> M:
    """Parse ``data`` as ``cls``; raise :class:`DataError` naming ``what`` if it is not one."""
    msg = cls()
    try:
        msg.ParseFromString(data)
    except (DecodeError, RecursionError, ValueError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"{what}: not a valid {cls.__name__} protobuf ({len(data)} bytes; {detail})"
        ) from None
    if data and not msg.ListFields():
        from google.protobuf import unknown_fields

        if len(unknown_fields.UnknownFieldSet(msg)):
            raise DataError(
                f"{what}: not a valid {cls.__name__} protobuf ({len(data)} bytes of "
                "unrecognised fields)"
            )
    return msg


def decode_base64(text: str, what: str) -> bytes:
    """Standard or URL-safe base64, padding optional (pflag writes standard)."""
    cleaned = "".join(text.split())
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        if "-" in cleaned or "_" in cleaned:
            return base64.urlsafe_b64decode(cleaned)
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raise DataError(f"{what}: not valid base64 ({len(text)} characters)") from None


def parse_base64_message(cls: type[M], text: str, what: str, *, usage: bool = False) -> M:
    """A protobuf message given on the command line as base64.

    With ``usage`` a bad value is a :class:`UsageError` (a bad argument: exit 2,
    nothing written) rather than bad data.
    """
    try:
        return parse_message(cls, decode_base64(text, what), what)
    except DataError as exc:
        if usage:
            raise UsageError(exc.message) from None
        raise
