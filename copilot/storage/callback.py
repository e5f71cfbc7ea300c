"""One transfer's byte counter, feeding copilot's progress line.

Every engine reports through :meth:`TransferCallback.relative_update`; the
fsspec engine hands fsspec an adapter of its own, so the native engine's
transfers never import fsspec (a costly import, and on the event loop's thread
it would hold up every transfer behind it).
"""

from __future__ import annotations

import time
from collections.abc import Callable

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
        self,
        progress: Progress | None,
        pulse: Pulse | None = None,
        *,
        sized: bool = True,
        on_sized: Callable[[], None] | None = None,
    ) -> None:
        self.progress = progress
        self.pulse = pulse
        self.reported = 0
        #: The progress line knows this transfer's size (else :meth:`size` tells it,
        #: once: ``on_sized`` lets a retry's new callback know it was told).
        self.sized = sized
        self.on_sized = on_sized

    def size(self, nbytes: int) -> None:
        """The transfer's whole size, once known (a download's first response)."""
        if not self.sized:
            self.sized = True
            if self.progress is not None:
                self.progress.sized(nbytes)
            if self.on_sized is not None:
                self.on_sized()

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
