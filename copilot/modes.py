"""The enumerated choices of the command line, as types (spelled once, here).

Each is a ``str`` enum, so a value compares equal to its flag text and prints
as Go spells it; :meth:`Choice.parse` turns user text (any case) into a member
or a one-line error naming the flag and the allowed values.
"""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

from copilot.errors import UsageError

C = TypeVar("C", bound="Choice")


class Choice(str, Enum):
    """Base of every enumerated flag value."""

    def __str__(self) -> str:
        return str(self.value)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(m.value for m in cls)

    @classmethod
    def parse(cls: type[C], value: str | C, flag: str) -> C:
        """``value`` as a member (case-insensitive), or a :class:`UsageError`."""
        if isinstance(value, cls):
            return value
        text = str(value)
        for member in cls:
            if member.value.lower() == text.lower():
                return member
        raise UsageError(f"{flag} {text!r} is not one of {', '.join(cls.values())}")


class MetadataFormat(Choice):
    """Which metadata document is written beside ``inputs.pb`` (and read for outputs)."""

    JSON = "JSON"
    YAML = "YAML"
    PROTO = "PROTO"


class FileLayout(Choice):
    """Where File inputs land: ``<dir>/v``, or ``<dir>/v/<their own name>``."""

    DIRECT = "DIRECT"
    NAMED_DIR = "NAMED_DIR"


class DownloadMode(Choice):
    DOWNLOAD_EAGER = "DOWNLOAD_EAGER"
    DOWNLOAD_STREAM = "DOWNLOAD_STREAM"
    DO_NOT_DOWNLOAD = "DO_NOT_DOWNLOAD"


class UploadMode(Choice):
    UPLOAD_ON_EXIT = "UPLOAD_ON_EXIT"
    UPLOAD_EAGER = "UPLOAD_EAGER"
    DO_NOT_UPLOAD = "DO_NOT_UPLOAD"


class StructEncoding(Choice):
    """How struct outputs are encoded: msgpack (current SDKs) or a protobuf Struct."""

    MSGPACK = "msgpack"
    GENERIC = "generic"


class WatcherType(Choice):
    SIGNAL = "signal"
    FILE = "file"
    SHARED_PROCESS_NS = "shared-process-ns"
    NOOP = "noop"
