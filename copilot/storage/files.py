"""Reading a local file whole in the fewest system calls.

A leaf of the storage package (nothing of copilot's imported): the uploader's
small files (:mod:`copilot.storage.chunked`) and the sidecar's values read from
files (:mod:`copilot.literals.from_files`) both come here, 100,000 times for a
list of 100,000 primitives or a Dir of 100,000 small files.
"""

from __future__ import annotations

import os
import sys


def read_at_most(path: str, size: int, limit: int = sys.maxsize) -> bytes:
    """Read ``path`` whole, or ``limit + 1`` bytes if it holds more (no limit by
    default: the whole file, as it is now).

    ``size`` is what stat said.  Four system calls (stat, open, read, close) for
    a small file, where ``open()`` makes eleven with its 1 MiB buffer: a list of
    100,000 primitives, or a Dir of 100,000 small files to upload, is 100,000
    of these.  A short read that matches ``size``
    is taken as the end; anything else reads on until the end or the limit.
    """
    fd = os.open(path, os.O_RDONLY)  # not inheritable: os.open sets O_CLOEXEC itself
    try:
        chunks: list[bytes] = []
        total = 0
        want = min(size, limit) + 1
        while total <= limit:
            data = os.read(fd, want)
            if not data:
                break
            chunks.append(data)
            total += len(data)
            if len(data) < want and total == size:
                break
            want = min(limit + 1 - total, 1 << 20)
    finally:
        os.close(fd)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
