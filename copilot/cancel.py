"""One cancellation token for a step: set by SIGTERM, by the deadline, or by a caller.

Everything that can wait takes the token: the store (in-flight transfers on
fsspec's event loop are cancelled, their temporary files removed), the retry
policy (a back-off sleep ends at once) and the watchers.  A step then returns
(raising :class:`Cancelled`) within a bounded time, with nothing still running
or writing behind it — unlike a timeout that abandons a worker thread.

A child token is cancelled with its parent, so a step's deadline token can
hang under the process's SIGTERM token or a library caller's own; a child
used as a context manager (or ``detach()``-ed) unregisters from its parent
when the step ends, so one parent can serve any number of steps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from copilot.errors import CopilotError


class Cancelled(CopilotError):
    """The step was cancelled; ``reason`` says by whom (``timeout``, ``SIGTERM``, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"cancelled ({reason})")
        self.reason = reason


class CancelToken:
    """Set once; callbacks run (in the cancelling thread) exactly once each."""

    def __init__(self, parent: CancelToken | None = None) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._next = 0
        self.reason = ""
        #: ``time.monotonic()`` when ``cancel_after`` will fire (the earliest, with parents).
        self.deadline: float | None = parent.deadline if parent is not None else None
        # Kept so a child can let go of its parent: a long-lived parent (a
        # library caller's token used for many steps) must not collect callbacks.
        self._detach: Callable[[], None] = lambda: None
        if parent is not None:
            self._detach = parent.on_cancel(lambda: self.cancel(parent.reason))

    def __enter__(self) -> CancelToken:
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def detach(self) -> None:
        """Stop following the parent (idempotent); the token itself stays as it is."""
        detach, self._detach = self._detach, lambda: None
        detach()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self, reason: str = "cancelled") -> None:
        with self._lock:
            if self._event.is_set():
                return
            self.reason = reason
            self._event.set()
            callbacks = list(self._callbacks.values())
            self._callbacks.clear()
        for callback in callbacks:
            callback()

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` when cancelled (at once if already); returns an unregister."""
        with self._lock:
            if not self._event.is_set():
                key = self._next
                self._next += 1
                self._callbacks[key] = callback
                return lambda: self._forget(key)
        callback()
        return lambda: None

    def _forget(self, key: int) -> None:
        with self._lock:
            self._callbacks.pop(key, None)

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled(self.reason)

    def wait(self, seconds: float | None = None) -> bool:
        """Sleep up to ``seconds``; True as soon as the token is cancelled."""
        return self._event.wait(seconds)

    def child(self) -> CancelToken:
        return CancelToken(self)

    def cancel_after(self, seconds: float | None, reason: str = "timeout") -> Callable[[], None]:
        """Cancel after ``seconds`` (none: never); returns a function that disarms it."""
        if not seconds or seconds <= 0:
            return lambda: None
        import time

        end = time.monotonic() + seconds
        self.deadline = end if self.deadline is None else min(self.deadline, end)
        timer = threading.Timer(seconds, self.cancel, args=(reason,))
        timer.daemon = True
        timer.name = "copilot-deadline"
        timer.start()
        return timer.cancel
