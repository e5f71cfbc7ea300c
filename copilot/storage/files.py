"""Local files as the uploader and the output reader read them.

A leaf of the storage package (nothing of copilot's imported): the uploader's
small files (:mod:`copilot.storage.chunked`) and the sidecar's values read from
files (:mod:`copilot.literals.from_files`) both come here, 100,000 times for a
list of 100,000 primitives or a Dir of 100,000 small files.  A file to upload
is handed to an engine already open (:class:`LocalSource`): the engines read
that descriptor and never open a path themselves, so what was checked is what
is sent.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class LocalSource:
    """A local file opened for an upload: read from ``fd`` only, with ``pread``."""

    fd: int
    #: The size ``fstat`` gave when it was opened.
    size: int
    #: Its path, for messages and content types (never opened again).
    name: str

    @property
    def path(self) -> str:
        """A path to this very open file, for a library that insists on opening a
        path itself (fsspec's own ``put_file``): ``/dev/fd/N`` opens the file the
        descriptor holds, whatever has since happened to ``name``."""
        return f"/dev/fd/{self.fd}"


def read_fd(fd: int, size: int, limit: int = sys.maxsize) -> bytes:
    """Read an open file from its start to its end, or ``limit + 1`` bytes if it
    holds more (no limit by default: the whole file, as it is now).

    ``size`` is what stat said.  One ``pread`` for a small file, where ``open()``
    makes eleven calls with its 1 MiB buffer: a list of 100,000 primitives, or a
    Dir of 100,000 small files to upload, is 100,000 of these.  A short read that
    matches ``size`` is taken as the end; anything else reads on until the end or
    the limit.
    """
    chunks: list[bytes] = []
    total = 0
    want = min(size, limit) + 1
    while total <= limit:
        data = os.pread(fd, want, total)
        if not data:
            break
        chunks.append(data)
        total += len(data)
        if len(data) < want and total == size:
            break
        want = min(limit + 1 - total, 1 << 20)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_at_most(path: str, size: int, limit: int = sys.maxsize) -> bytes:
    """:func:`read_fd` on ``path``, opened here (a file of copilot's own or one a
    person named; the container's files go through :func:`copilot.paths.open_source`)."""
    fd = os.open(path, os.O_RDONLY)  # not inheritable: os.open sets O_CLOEXEC itself
    try:
        return read_fd(fd, size, limit)
    finally:
        os.close(fd)
