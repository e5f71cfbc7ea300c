"""One transfer's byte counter, feeding copilot's progress line.

Every engine reports through :meth:`TransferCallback.relative_update`; the
fsspec engine hands fsspec an adapter of its own, so the native engine's
transfers never import fsspec (a costly import, and on the event loop's thread
it would hold up every transfer behind it).
"""

from __future__ import annotations

import time

from copilot.progress import Progress


class Pulse:
    """When the store's transfers last moved (a chunk of bytes, a finished file, a
    listing page): what the store's watchdog reads to tell a slow transfer from
    one that stopped (see ``Store.stall_seconds``)."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def beat(self) -> None:
        self.last = time.monotonic()


class TransferCallback:
    """Counts one transfer's bytes into a shared :class:`Progress` (when the run shows
    one) and beats the store's :class:`Pulse`."""

    def __init__(
        self, progress: Progress | None, pulse: Pulse | None = None, *, unsized: int | None = None
    ) -> None:
        self.progress = progress
        self.pulse = pulse
        self.reported = 0
        #: The key of a transfer the progress line has no size for (its ``id``).
        self.unsized = unsized

    def size(self, nbytes: int) -> None:
        """The transfer's whole size, once known (a download's first response)."""
        if self.unsized is not None and self.progress is not None:
            self.progress.sized(self.unsized, nbytes)

    def relative_update(self, inc: int = 1) -> None:
        self.reported += inc
        if self.progress is not None:
            self.progress.advance(inc)
        if self.pulse is not None:
            self.pulse.last = time.monotonic()

    def finish(self, size: int) -> None:
        """Count what the backend did not report (e.g. a local copy) and one file."""
        self.size(size)
        if self.progress is not None:
            self.progress.advance(max(size - self.reported, 0), files=1)
        if self.pulse is not None:
            self.pulse.last = time.monotonic()
