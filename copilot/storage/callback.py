"""One transfer's byte counter, feeding copilot's progress line.

Every engine reports through :meth:`TransferCallback.relative_update`; the
fsspec engine hands fsspec an adapter of its own, so the native engine's
transfers never import fsspec (a costly import, and on the event loop's thread
it would hold up every transfer behind it).
"""

from __future__ import annotations

from copilot.progress import Progress


class TransferCallback:
    """Counts one transfer's bytes into a shared :class:`Progress`."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.reported = 0

    def relative_update(self, inc: int = 1) -> None:
        self.reported += inc
        self.progress.advance(inc)

    def finish(self, size: int) -> None:
        """Count what the backend did not report (e.g. a local copy) and one file."""
        self.progress.advance(max(size - self.reported, 0), files=1)
