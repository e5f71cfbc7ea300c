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
#: Whether the console entry point owns this process (and so its handlers).
_owned = False

_tokens: weakref.WeakSet[CancelToken] = weakref.WeakSet()
_relay_lock = threading.Lock()
_relay: threading.Thread | None = None


def _handler(signum: int, frame: object) -> None:
    TERMINATED.set()


def install() -> None:
    """Record SIGTERM instead of dying on it (idempotent; main thread only).

    Called by the console entry point alone: copilot run inside another
    program (its CLI in-process, or the library) leaves the host's handlers,
    root logger and environment as they were."""
    global _owned
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _handler)
        _owned = True


def owns_process() -> bool:
    """True in copilot's own process (the console entry point ran)."""
    return _owned


def _relay_loop() -> None:
    TERMINATED.wait()
    for token in list(_tokens):
        token.cancel("SIGTERM")


def cancel_on_sigterm(token: CancelToken) -> None:
    """Cancel ``token`` (reason ``SIGTERM``) when SIGTERM arrives, or at once if it has
    (only where :func:`install` ran; elsewhere SIGTERM is the host's business)."""
    global _relay
    with _relay_lock:
        _tokens.add(token)
        if _relay is None:
            _relay = threading.Thread(target=_relay_loop, name="copilot-sigterm", daemon=True)
            _relay.start()
    if TERMINATED.is_set():
        token.cancel("SIGTERM")
