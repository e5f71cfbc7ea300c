"""Byte-level progress on a terminal; nothing at all when nobody is watching.

In a pod stderr is not a terminal, so only the per-run summary log line is
written (``--logger.formatter.type json`` makes it one JSON object with files,
bytes and seconds).  On a terminal, transfers that take longer than a moment
show a single self-overwriting line.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TextIO


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


class Progress:
    """Thread-safe byte and file counter that redraws at most every ``interval`` seconds."""

    def __init__(
        self,
        label: str,
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        interval: float = 0.2,
        delay: float | None = None,
    ) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.interval = interval
        self.started = time.monotonic()
        # Short transfers draw nothing; COPILOT_PROGRESS_DELAY (seconds) tunes when to start.
        if delay is None:
            delay = float(os.environ.get("COPILOT_PROGRESS_DELAY", "0.5"))
        self.delay = delay
        self.bytes = 0
        self.files = 0
        self.total_files = 0
        self._last = 0.0
        self._drawn = False
        self._lock = threading.Lock()

    def expect(self, files: int) -> None:
        with self._lock:
            self.total_files += files

    def advance(self, nbytes: int = 0, files: int = 0) -> None:
        with self._lock:
            self.bytes += nbytes
            self.files += files
            if not self.enabled:
                return
            now = time.monotonic()
            if now - self.started < self.delay or now - self._last < self.interval:
                return
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        rate = self.bytes / max(now - self.started, 1e-6)
        self.stream.write(
            f"\r{self.label}: {_mib(self.bytes)}, {self.files}/{self.total_files} files, "
            f"{_mib(int(rate))}/s   "
        )
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        with self._lock:
            if self.enabled and self._drawn:
                self._draw(time.monotonic())
                self.stream.write("\n")
                self.stream.flush()
