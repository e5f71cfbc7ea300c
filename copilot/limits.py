"""Bounds on what a container's outputs may hold, for code nobody reviewed.

A main container can write a million files, a sparse terabyte or a tree ten
thousand levels deep, and the sidecar would upload it all.  These bounds are
off by default (Flyte's own copilot has none); ``copilot pod``, the flags
``--max-output-bytes``, ``--max-output-files`` and ``--max-output-depth``, or
the ``sidecar`` section of a ``--config`` file set them.  They are checked
while the outputs are read, before anything is uploaded (the sidecar walks
every tree first), and by the eager uploader before each early upload.
Passing one is the container's failure and permanent: a USER,
``NON_RECOVERABLE`` error naming the limit and the figure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from copilot.errors import USER, DataError, UsageError

#: The ``sidecar`` section's keys (the flags' names without the dashes).
SECTION_KEYS = ("max-output-bytes", "max-output-files", "max-output-depth")

_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4, "p": 1000**5}


def parse_size(value: Any, where: str) -> int:
    """A byte count: ``1048576``, ``64MiB``, ``10G``, ``1.5TB`` (binary with ``i``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?)b?\s*", str(value).lower())
        if not match:
            raise UsageError(
                f"{where}: expected a size such as 1048576, 64MiB or 10G, found {value!r}"
            )
        digits, unit, binary = match.groups()
        scale = 1024 ** "kmgtp".index(unit) * 1024 if binary and unit else _UNITS[unit]
        number = int(float(digits) * scale)
    if number < 0:
        raise UsageError(f"{where}: expected 0 (no limit) or more, found {value!r}")
    return number


@dataclass(frozen=True)
class OutputLimits:
    """What the outputs may add up to; 0 means no bound."""

    #: Bytes of all files uploaded, together.
    max_bytes: int = 0
    #: Files uploaded, together.
    max_files: int = 0
    #: Path components below the output dir (``d/a/b.txt`` is 3), files and
    #: directories alike.
    max_depth: int = 0

    @classmethod
    def from_tree(cls, tree: dict[str, Any]) -> OutputLimits:
        """The ``sidecar`` section of a config file (its keys checked by the caller)."""
        get = {key: tree.get(key, 0) or 0 for key in SECTION_KEYS}
        return cls(
            max_bytes=parse_size(get["max-output-bytes"], "sidecar.max-output-bytes"),
            max_files=_count(get["max-output-files"], "sidecar.max-output-files"),
            max_depth=_count(get["max-output-depth"], "sidecar.max-output-depth"),
        )

    def merged(
        self, max_bytes: int | None, max_files: int | None, max_depth: int | None
    ) -> OutputLimits:
        """These limits with the ones given (flags) put over them."""
        return OutputLimits(
            self.max_bytes if max_bytes is None else max_bytes,
            self.max_files if max_files is None else max_files,
            self.max_depth if max_depth is None else max_depth,
        )

    def __bool__(self) -> bool:
        return bool(self.max_bytes or self.max_files or self.max_depth)


def _count(value: Any, where: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise UsageError(f"{where}: expected a whole number, found {value!r}") from None
    if number < 0:
        raise UsageError(f"{where}: expected 0 (no limit) or more, found {value!r}")
    return number


class Tally:
    """What the outputs add up to as they are planned; raises past a limit."""

    def __init__(self, limits: OutputLimits) -> None:
        self.limits = limits
        self.bytes = 0
        self.files = 0

    def depth(self, depth: int, label: str, path: str) -> None:
        """A file or directory ``depth`` components below the output dir."""
        limit = self.limits.max_depth
        if limit and depth > limit:
            raise _exceeded(
                label, f"{path} lies {depth} levels below the output directory", "depth", limit
            )

    def add(self, size: int, depth: int, label: str, path: str) -> None:
        """One more file to upload."""
        self.depth(depth, label, path)
        self.files += 1
        self.bytes += size
        if self.limits.max_files and self.files > self.limits.max_files:
            raise _exceeded(
                label, f"the outputs hold more than {self.limits.max_files} files", "files",
                self.limits.max_files,
            )  # fmt: skip
        if self.limits.max_bytes and self.bytes > self.limits.max_bytes:
            raise _exceeded(
                label, f"the outputs hold at least {self.bytes} bytes (at {path})", "bytes",
                self.limits.max_bytes,
            )  # fmt: skip

    def fits(self, size: int) -> bool:
        """Whether one more file of ``size`` bytes stays within the count and bytes."""
        files_ok = not self.limits.max_files or self.files + 1 <= self.limits.max_files
        bytes_ok = not self.limits.max_bytes or self.bytes + size <= self.limits.max_bytes
        return files_ok and bytes_ok


def _exceeded(label: str, what: str, which: str, limit: int) -> DataError:
    return DataError(
        f"{label}: {what}, past the limit --max-output-{which} {limit}; refused, nothing uploaded",
        origin=USER,
    )
