"""SIGTERM, caught from the first moment of the process.

Kubernetes tells a native sidecar that the main container has finished by
sending it SIGTERM.  If that signal arrived before a handler was installed, the
default action would kill copilot before it uploaded anything, so the console
entry point installs this handler before importing anything heavy.  Later
signals only set the same flag again: a second SIGTERM changes nothing.
"""

from __future__ import annotations

import signal
import threading

#: Set once SIGTERM has been received.
TERMINATED = threading.Event()


def _handler(signum: int, frame: object) -> None:
    TERMINATED.set()


def install() -> None:
    """Record SIGTERM instead of dying on it (idempotent; main thread only)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _handler)
