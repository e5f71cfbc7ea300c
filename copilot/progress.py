"""Byte-level progress on a terminal; nothing at all when nobody is watching.

In a pod stderr is not a terminal, so only the per-run summary log line is
written (``--logger.formatter.type json`` makes it one JSON object with files,
bytes and seconds).  On a terminal, transfers that take longer than a moment
show a single self-overwriting line.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, TextIO


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
        #: The bytes of every file expected so far, and how many of them have no
        #: size yet (a download whose size comes with its first response).
        self.total_bytes = 0
        self.unsized = 0
        self._sized: set[int] = set()
        self._last = 0.0
        self._drawn = False
        self._lock = threading.Lock()

    def expect(self, files: int, nbytes: int | None = 0) -> None:
        """``files`` more to come, of ``nbytes`` in all (None: a size not known yet,
        given later by :meth:`sized`)."""
        with self._lock:
            self.total_files += files
            if nbytes is None:
                self.unsized += files
            else:
                self.total_bytes += nbytes

    def sized(self, key: int, nbytes: int) -> None:
        """The file ``key`` (its transfer's ``id``), expected without a size, has
        ``nbytes``; told again (a retried download), it is counted once."""
        with self._lock:
            if key in self._sized:
                return
            self._sized.add(key)
            self.unsized = max(self.unsized - 1, 0)
            self.total_bytes += nbytes

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

    def line(self, now: float) -> str:
        """Done of the total (bytes and files), the rate and, once every size is
        known, the time left at that rate."""
        rate = self.bytes / max(now - self.started, 1e-6)
        known = not self.unsized and self.total_bytes >= self.bytes
        done = f"{_mib(self.bytes)} of {_mib(self.total_bytes)}" if known else _mib(self.bytes)
        text = f"{self.label}: {done}, {self.files}/{self.total_files} files, {_mib(int(rate))}/s"
        if known and rate > 0:
            left = int((self.total_bytes - self.bytes) / rate)
            text += f", ETA {left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}"
        return text

    def _draw(self, now: float) -> None:
        self.stream.write(f"\r{self.line(now)}   ")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        with self._lock:
            if self.enabled and self._drawn:
                self._draw(time.monotonic())
                self.stream.write("\n")
                self.stream.flush()


@contextlib.contextmanager
def showing(store: Any, label: str, show: bool = True) -> Iterator[None]:
    """Give ``store`` a progress line labelled ``label`` for the block (on a
    terminal, unless ``show`` is false), ended with the block."""
    if not show:
        yield
        return
    store.progress = Progress(label)
    try:
        yield
    finally:
        store.progress.close()
        store.progress = None
