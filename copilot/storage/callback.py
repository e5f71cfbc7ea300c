"""The fsspec callback that feeds copilot's progress line.

Apart from :mod:`copilot.progress` so that a command that transfers nothing (or
nothing on a terminal) never imports fsspec for it.
"""

from __future__ import annotations

from fsspec.callbacks import Callback

from copilot.progress import Progress


class TransferCallback(Callback):
    """fsspec callback for one transfer, feeding a shared :class:`Progress`."""

    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress
        self.reported = 0

    def call(self, *args: object, **kwargs: object) -> None:
        delta = self.value - self.reported
        if delta > 0:
            self.reported = self.value
            self.progress.advance(delta)

    def finish(self, size: int) -> None:
        """Count what the backend did not report (e.g. a local copy) and one file."""
        self.progress.advance(max(size - self.reported, 0), files=1)
