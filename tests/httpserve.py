"""A tiny loopback HTTP server for http(s) inputs: fixed bodies, 404s, redirects and a stall."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietServer(ThreadingHTTPServer):
    """A client that closes its connection while a request is read (aiohttp dropping
    a kept-alive one after a 503) is not an error: no traceback on the test's stderr,
    where it would be taken for copilot's."""

    def handle_error(self, request: object, client_address: object) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class FileServer:
    """Serves ``files`` (path -> bytes) and ``redirects`` (path -> Location, a 302);
    ``/stall`` answers after ``stall_seconds``.  ``requests`` lists every path asked for."""

    def __init__(
        self,
        files: dict[str, bytes],
        stall_seconds: float = 30.0,
        redirects: dict[str, str] | None = None,
    ) -> None:
        self.files = dict(files)
        self.redirects = dict(redirects or {})
        self.requests: list[str] = []
        self.stall_seconds = stall_seconds
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, head_only: bool) -> None:
                path = self.path.split("?", 1)[0]
                owner.requests.append(path)
                if path in owner.redirects:
                    self.send_response(302)
                    self.send_header("Location", owner.redirects[path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if path.startswith("/stall"):
                    owner.stalled.set()
                    deadline = time.monotonic() + owner.stall_seconds
                    while time.monotonic() < deadline and not owner.closed:
                        time.sleep(0.05)
                body = owner.files.get(path)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head_only:
                    self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                self._reply(False)

            def do_HEAD(self) -> None:  # noqa: N802
                self._reply(True)

        self.closed = False
        #: Set when a request for ``/stall`` has arrived (the client is in it).
        self.stalled = threading.Event()
        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # A short poll: shutdown() waits for the loop to look (0.5 s by default, per use).
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed = True
        self.server.shutdown()
        self.server.server_close()
