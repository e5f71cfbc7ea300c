"""SIGTERM, caught from the first moment of the process.

Kubernetes tells a native sidecar that the main container has finished by
sending it SIGTERM.  If that signal arrived before a handler was installed, the
default action would kill copilot before it uploaded anything, so the console
entry point installs this handler before importing anything heavy.  Later
signals only set the same flag again: a second SIGTERM changes nothing.

The handler only sets a flag.  One relay thread, started on first use, turns
it into cancellation of the tokens that asked for it (:func:`cancel_on_sigterm`),
so no token callback ever runs inside the signal handler.
"""

from __future__ import annotations

import signal
import threading
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from copilot.cancel import CancelToken

#: Set once SIGTERM has been received.
TERMINATED = threading.Event()

_tokens: weakref.WeakSet[CancelToken] = weakref.WeakSet()
_relay_lock = threading.Lock()
_relay: threading.Thread | None = None


def _handler(signum: int, frame: object) -> None:
    TERMINATED.set()


def install() -> None:
    """Record SIGTERM instead of dying on it (idempotent; main thread only)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _handler)


def _relay_loop() -> None:
    TERMINATED.wait()
    for token in list(_tokens):
        token.cancel("SIGTERM")


def cancel_on_sigterm(token: CancelToken) -> None:
    """Cancel ``token`` (reason ``SIGTERM``) when SIGTERM arrives, or at once if it has."""
    global _relay
    install()
    with _relay_lock:
        _tokens.add(token)
        if _relay is None:
            _relay = threading.Thread(target=_relay_loop, name="copilot-sigterm", daemon=True)
            _relay.start()
    if TERMINATED.is_set():
        token.cancel("SIGTERM")
