"""The event loop copilot's own async clients run on: one daemon thread per process.

fsspec's async filesystems bring their own loop; obstore's calls are awaitable
on any loop (the bytes move on obstore's Rust runtime), so they run here.  A
step's thread submits coroutines to this loop and waits for them with its
cancel token, exactly as for fsspec's.
"""

from __future__ import annotations

import asyncio
import threading

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def event_loop() -> asyncio.AbstractEventLoop:
    """The process's storage loop, started on first use."""
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            started = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(started.set)
                loop.run_forever()

            threading.Thread(target=run, name="copilot-storage-loop", daemon=True).start()
            started.wait()
            _loop = loop
        return _loop
