"""SIGTERM, caught from the first moment of the process.

Kubernetes tells a native sidecar that the main container has finished by
sending it SIGTERM.  If that signal arrived before a handler was installed, the
default action would kill copilot before it uploaded anything, so the console
entry point installs this handler before importing anything heavy.
"""

from __future__ import annotations

import signal
import threading
import time

#: Set once SIGTERM (or SIGINT) has been received.
TERMINATED = threading.Event()
_received_at: list[float] = []
_count = [0]


def _handler(signum: int, frame: object) -> None:
    _count[0] += 1
    if not _received_at:
        _received_at.append(time.monotonic())
    TERMINATED.set()


def install() -> None:
    """Record SIGTERM instead of dying on it (idempotent; main thread only)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _handler)


def received_count() -> int:
    return _count[0]


def reset() -> None:
    """Forget earlier signals (for library callers running several steps)."""
    TERMINATED.clear()
    _received_at.clear()
    _count[0] = 0
