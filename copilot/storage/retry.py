"""Retrying what may succeed next time, and only that.

Transient failures — HTTP 5xx and 429, throttling (``SlowDown``), connections
refused, reset or dropped, timeouts, a body that ended short — are retried with
exponential backoff and full jitter, bounded both by a number of attempts and
by the step's deadline (``--timeout``).  A store host whose name does not
resolve is tried twice, then reported as such.  Permanent ones — 403, 404, bad
credentials, a missing bucket — fail at once: retrying them only delays the
error the user needs to see.

botocore and s3fs retry single requests underneath; this layer retries whole
operations (a file whose body broke off halfway is fetched again from the
start), so it also covers failures that happen outside a request call.
"""

from __future__ import annotations

import errno
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from copilot.cancel import Cancelled, CancelToken
from copilot.errors import CopilotError, Retryable, describe
from copilot.storage.backends import PERMANENT_CODES, TRANSIENT_CODES
from copilot.storage.errors import (
    causes,
    dns_failure,
    http_status,
    obstore_transport,
    tls_failure,
    was_retried,
)

log = logging.getLogger("copilot")
T = TypeVar("T")

# Exception classes (by name, so no backend is imported to test for them).
_TRANSIENT_CLASSES = frozenset(
    {
        "ConnectionError",
        "HTTPClientError",
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ReadTimeoutError",
        "ConnectTimeoutError",
        "ResponseStreamingError",
        "IncompleteReadError",
        "ClientPayloadError",
        "ContentLengthError",
        "ServerDisconnectedError",
        "ClientConnectionError",
        "ClientOSError",
        "ServerTimeoutError",
        "FSTimeoutError",
        "IncompleteRead",
        "TimeoutError",
        "ProxyConnectionError",
    }
)


def _status_and_code(exc: BaseException) -> tuple[int | None, str | None]:
    """HTTP status and service error code (botocore ``Error.Code``, azure ``error_code``)."""
    code = None
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = (response.get("Error") or {}).get("Code")
    code = code or getattr(exc, "error_code", None)
    if not code and type(exc).__module__.startswith("obstore"):
        found = _SERVICE_CODE.search(str(exc))  # the error document in obstore's text
        code = found.group(1) if found else None
    return http_status(exc), (str(code) if code else None)


_SERVICE_CODE = re.compile(r"<Code>(\w+)</Code>")


#: Local resources that run out for a moment (open files, memory for a buffer):
#: what holds them is released as other transfers finish.
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.EAGAIN, errno.ENOBUFS})


def is_transient(exc: BaseException) -> bool:
    """Whether trying again could succeed."""
    if isinstance(exc, Retryable) or (isinstance(exc, CopilotError) and exc.retryable):
        return True
    if isinstance(exc, OSError) and exc.errno in RESOURCE_ERRNOS:
        return True
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
        return False
    if tls_failure(exc) is not None:
        return False  # an untrusted certificate stays untrusted
    for current in causes(exc):
        status, code = _status_and_code(current)
        if code in PERMANENT_CODES:
            return False
        if code in TRANSIENT_CODES:
            return True
        if status is not None:
            return status >= 500 or status in (408, 429)
        names = {cls.__name__ for cls in type(current).__mro__}
        if names & _TRANSIENT_CLASSES:
            return True
        if obstore_transport(current):
            return True
        text = str(current)
        if any(code in text for code in ("SlowDown", "reduce your request rate")):
            return True
    return False


#: Retries stop at this fraction of the time to the deadline, so the error
#: reported is the storage error itself rather than a bare "timed out".
DEADLINE_SHARE = 0.9


@dataclass
class RetryPolicy:
    """How often and how long to retry.

    A transient failure is tried again while fewer than ``attempts`` tries were
    made, or while less than ``patience`` seconds have passed since the
    operation first failed (so a store that is down for a minute is waited out,
    where five quick attempts are over in about three seconds); the pauses grow
    exponentially up to ``cap``.  ``cancel`` ends a back-off sleep at once; no
    retry is started that would end after ``DEADLINE_SHARE`` of the way to its
    deadline.
    """

    attempts: int = 5
    base: float = 0.2
    cap: float = 10.0
    cancel: CancelToken | None = None
    patience: float = 0.0

    def __post_init__(self) -> None:
        self._start = time.monotonic()

    @property
    def deadline(self) -> float | None:
        end = self.cancel.deadline if self.cancel is not None else None
        if end is None:
            return None
        return self._start + DEADLINE_SHARE * (end - self._start)

    def delay(self, attempt: int) -> float:
        """Full jitter: anywhere up to the exponential step, so retries spread out."""
        return random.uniform(0, min(self.cap, self.base * (2 ** min(attempt, 30))))

    def pause_after(
        self, attempt: int, exc: BaseException, what: str, failing_since: float
    ) -> float | None:
        """The pause before trying again after ``exc`` (the ``attempt``-th try, counted
        from 0, of an operation failing since ``failing_since``), or None to give up."""
        if isinstance(exc, Cancelled) or not is_transient(exc):
            return None
        if attempt + 1 >= self.attempts and time.monotonic() - failing_since >= self.patience:
            return None
        if was_retried(exc):
            return None  # an inner loop (a range's, a part's, obstore's) gave up already
        if attempt >= 1 and dns_failure(exc) is not None:
            return None  # a name that did not resolve twice is a wrong endpoint, not a blip
        pause = self.delay(attempt)
        deadline = self.deadline
        if deadline is not None and time.monotonic() + pause >= deadline:
            return None
        # The first retry of an operation is said at the default level, so a store
        # that is down is visible at once instead of after a silent back-off.
        log.log(
            logging.WARNING if attempt == 0 else logging.INFO,
            "%s: attempt %s failed (%s); retrying in %.2fs%s",
            what,
            f"{attempt + 1} of {self.attempts}" if attempt + 1 < self.attempts else attempt + 1,
            describe(exc)[:200],
            pause,
            self._plan(attempt, failing_since),
        )
        return pause

    def _plan(self, attempt: int, failing_since: float) -> str:
        """How long the loop will keep at it, for the log line."""
        if self.patience <= 0:
            return ""
        if attempt + 1 < self.attempts:
            return f" (and for up to {self.patience:.0f}s while it keeps failing)"
        waited = time.monotonic() - failing_since
        return f" (failing for {waited:.0f}s of up to {self.patience:.0f}s)"

    def call(self, fn: Callable[[], T], what: str) -> T:
        attempt = 0
        failing_since = 0.0
        while True:
            if self.cancel is not None:
                self.cancel.raise_if_cancelled()
            try:
                return fn()
            except Exception as exc:
                failing_since = failing_since or time.monotonic()
                pause = self.pause_after(attempt, exc, what, failing_since)
                if pause is None:
                    raise
            if self.cancel is not None and self.cancel.wait(pause):
                raise Cancelled(self.cancel.reason)
            if self.cancel is None:
                time.sleep(pause)
            attempt += 1

    async def acall(self, fn: Callable[[], Awaitable[T]], what: str) -> T:
        attempt = 0
        failing_since = 0.0
        while True:
            try:
                return await fn()
            except Exception as exc:
                failing_since = failing_since or time.monotonic()
                pause = self.pause_after(attempt, exc, what, failing_since)
                if pause is None:
                    raise
            await _sleep(pause)
            attempt += 1


async def _sleep(seconds: float) -> None:
    import asyncio  # imported here: a run with no async backend never loads it

    await asyncio.sleep(seconds)
