"""Where copilot's log lines go: stderr, at the level Flyte's ``logger`` section
asks for (Go's levels), as text or one JSON object a line, secrets masked."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from copilot.redaction import RedactingFilter

if TYPE_CHECKING:
    from copilot.config import Settings


def _go_level_to_logging(level: int) -> int:
    # flytestdlib: 0 panic, 1 fatal, 2 error, 3 warn, 4 info, 5 debug.
    return {
        0: logging.CRITICAL,
        1: logging.CRITICAL,
        2: logging.ERROR,
        3: logging.WARNING,
        4: logging.INFO,
    }.get(level, logging.DEBUG if level >= 5 else logging.CRITICAL)


def configure_logging(settings: Settings, *, own_process: bool = True) -> None:
    """Log to stderr at the Go level asked for, as text or one JSON object a line.

    Only copilot's own logger is set unless copilot owns the process
    (``own_process``): then libraries' records go through the root logger too."""
    import json
    import sys
    import time

    class _Json(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            data = {
                "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
                "level": record.levelname.lower(),
                "msg": record.getMessage(),
            }
            data.update(getattr(record, "fields", {}) or {})
            return json.dumps(data, default=str)

    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    if settings.log_format == "json":
        handler.setFormatter(_Json())
    else:
        fmt = "%(asctime)s %(levelname)s %(message)s"
        if settings.show_source:
            fmt = "%(asctime)s %(levelname)s %(filename)s:%(lineno)d %(message)s"
        handler.setFormatter(logging.Formatter(fmt))
    level = _go_level_to_logging(settings.log_level)
    ours = logging.getLogger("copilot")
    ours.handlers[:] = [handler]
    ours.setLevel(level)
    ours.propagate = False
    if not own_process:
        return
    # Libraries (gcsfs, azure-core, botocore, aiohttp) log through the same
    # format, so JSON stays JSON, and only warnings and errors, even when
    # debugging: botocore's debug lines carry request headers (an access key's
    # id among them).  Their tracebacks only at debug level: copilot reports
    # the failure itself, in one line.
    library = logging.StreamHandler(sys.stderr)
    library.addFilter(RedactingFilter())
    library.setFormatter(handler.formatter)
    library.setLevel(max(level, logging.WARNING))
    if level > logging.DEBUG:
        library.addFilter(_drop_traceback)
    library._copilot = True  # type: ignore[attr-defined]
    top = logging.getLogger()
    top.handlers[:] = [h for h in top.handlers if not getattr(h, "_copilot", False)]
    top.addHandler(library)
    top.setLevel(min(top.level or logging.WARNING, library.level))
    logging.captureWarnings(True)


def _drop_traceback(record: logging.LogRecord) -> bool:
    """Keep a library's log line, without the traceback it carries."""
    record.exc_info = None
    record.exc_text = None
    record.stack_info = None
    return True
