"""A fault-injecting HTTP proxy for the tests: loopback only, bounded, deterministic by seed.

It stands in front of a storage server (moto, fake-gcs-server, Azurite) and,
for the first ``first`` requests or a ``rate`` fraction of them, answers with a
fault instead of (or instead of all of) the real response:

- ``500`` / ``503`` (SlowDown) / ``403`` (AccessDenied): an error document (S3's
  shape; every backend classifies these by their HTTP status);
- ``drop``: the connection is closed without an answer;
- ``stall``: nothing is sent for ``stall_seconds``, then the connection closes;
- ``truncate``: the real response, with its full Content-Length, cut off halfway;
- ``mixed``: one of 500, 503, drop and truncate, at random.

It also counts the requests it is answering at once (``peak``), can hold each
one for ``delay`` seconds so that requests in flight overlap, and can speak TLS
to its clients (``tls``: a server context, see tests/tls.py).
"""

from __future__ import annotations

import http.client
import random
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from httpserve import QuietServer

_ERRORS = {
    "500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "503": (503, "SlowDown", "Please reduce your request rate."),
    "403": (403, "AccessDenied", "Access Denied"),
}
_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


class FaultProxy:
    def __init__(
        self,
        upstream: str,
        *,
        mode: str = "none",
        rate: float = 0.0,
        first: int = 0,
        seed: int = 0,
        stall_seconds: float = 5.0,
        only_path: str = "",
        delay: float = 0.0,
        after: int = 0,
        tls: ssl.SSLContext | None = None,
        query_to_form: bool = False,
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.mode = mode
        self.rate = rate
        self.first = first
        self.stall_seconds = stall_seconds
        self.only_path = only_path  # fault only requests whose path holds this
        self.delay = delay  # seconds every request waits before it is answered
        self.after = after  # requests (of ``only_path``) let through before any fault
        self.matching = 0
        # An AWS query-protocol POST with its parameters in the URL is sent on with
        # them as a form body, which moto needs to route an unsigned STS call.
        self.query_to_form = query_to_form
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.requests = 0
        self.faults: dict[str, int] = {}
        #: Set when the first fault is dealt: the client has reached it.
        self.faulted = threading.Event()
        #: Every request seen: (method, path, Range header, or Azure's x-ms-range).
        self.seen: list[tuple[str, str, str | None]] = []
        #: Requests being answered now, and the most there ever were at once
        #: (``peak_for`` counts only paths holding ``count_path``).
        self.active = 0
        self.peak = 0
        self.count_path = ""
        self.closed = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _handle(self) -> None:
                counted = owner.count_path in self.path
                if counted:
                    with owner.lock:
                        owner.active += 1
                        owner.peak = max(owner.peak, owner.active)
                try:
                    self._answer()
                finally:
                    if counted:
                        with owner.lock:
                            owner.active -= 1

            def _answer(self) -> None:
                body = self._body()
                if owner.delay:
                    time.sleep(owner.delay)
                with owner.lock:
                    ranged = self.headers.get("Range") or self.headers.get("x-ms-range")
                    owner.seen.append((self.command, self.path, ranged))
                fault = owner.pick(self.command, self.path)
                if fault in _ERRORS:
                    status, code, message = _ERRORS[fault]
                    xml = (
                        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                        f"<Message>{message}</Message></Error>"
                    ).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header(
                        "Content-Length", str(len(xml) if self.command != "HEAD" else 0)
                    )
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(xml)
                    return
                if fault == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault == "stall":
                    owner.closed.wait(owner.stall_seconds)
                    self.close_connection = True
                    self.connection.close()
                    return
                conn = http.client.HTTPConnection(*owner.upstream, timeout=60)
                path = self.path
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                    if owner.query_to_form and self.command == "POST" and not body and "?" in path:
                        path, query = path.split("?", 1)
                        body = query.encode()
                        headers["Content-Type"] = "application/x-www-form-urlencoded"
                    if body or self.command in ("PUT", "POST"):
                        # One Content-Length (a client's lower-case one would make two,
                        # which Azurite refuses with a 400).
                        headers = {
                            k: v for k, v in headers.items() if k.lower() != "content-length"
                        }
                        headers["Content-Length"] = str(len(body))
                    conn.request(self.command, path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in _HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                length = int(resp.getheader("Content-Length") or len(data))
                self.send_header("Content-Length", str(length))
                self.end_headers()
                if self.command == "HEAD":
                    return
                if fault == "truncate" and len(data) > 1:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.close()
                    return
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.scheme = "http"
        if tls is not None:  # clients speak TLS to the proxy; it forwards plain HTTP
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        # A short poll: shutdown() waits for the loop to look (0.5 s by default, per use).
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def pick(self, method: str, path: str = "") -> str | None:
        if self.only_path and self.only_path not in path:
            return None
        with self.lock:
            self.requests += 1
            n = self.requests
            self.matching += 1
            if self.mode == "none" or self.matching <= self.after:
                return None
            hit = n <= self.first or (self.rate > 0 and self.rng.random() < self.rate)
            if not hit:
                return None
            fault = self.mode
            if fault == "mixed":
                choices = ["500", "503", "drop"] + (["truncate"] if method == "GET" else [])
                fault = self.rng.choice(choices)
            self.faults[fault] = self.faults.get(fault, 0) + 1
            self.faulted.set()
            return fault

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed.set()
        self.server.shutdown()
        self.server.server_close()
        time.sleep(0)
