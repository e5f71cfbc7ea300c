"""One transfer's byte counter, feeding copilot's progress line.

Every engine reports through :meth:`TransferCallback.relative_update`; the
fsspec engine hands fsspec an adapter (:meth:`TransferCallback.for_fsspec`), so
the native engine's transfers never import fsspec (a costly import,
and on the event loop's thread it would hold up every transfer behind it).
"""

from __future__ import annotations

from typing import Any

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

    def for_fsspec(self) -> Any:
        """An fsspec ``Callback`` whose progress lands here."""
        from fsspec.callbacks import Callback

        target = self

        class Relay(Callback):
            def call(self, *args: object, **kwargs: object) -> None:
                delta = self.value - target.reported
                if delta > 0:
                    target.relative_update(delta)

        return Relay()
