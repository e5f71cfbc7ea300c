"""Every store kind behind one small interface, for the hostile-container suite.

A key holding ``..`` means something different on each store (a path on local
disk, a literal key on S3, a refused path on obstore), so the attacks run on
all of them: ``file://``, S3 on both engines, GCS, Azure Blob and redis.  Each
target gives a copilot :class:`~copilot.storage.Store` for it and reads what
landed with the server's own client (or the file system), not through copilot.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest

#: Every store kind.  The everyday run (``-m "not slow"``) takes the local store and
#: S3 on its default engine; CI's whole run takes them all.
TARGETS = (
    "file",
    "s3-obstore",
    *(
        pytest.param(which, marks=pytest.mark.slow)
        for which in ("s3-fsspec", "gs-fsspec", "abfs-obstore", "abfs-fsspec", "redis")
    ),
)


class FileTarget:
    """A ``file://`` store in a directory of its own (as ``copilot run``'s embedded one)."""

    name = "file"

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def uri(self, key: str) -> str:
        return f"file://{self.root}/{key.lstrip('/')}"

    def store(self) -> Any:
        from copilot.storage import Store

        return Store()

    def everything(self) -> dict[str, bytes]:
        """Every file under the store's directory (and, for a key that climbed,
        beside it), by its path from there."""
        found: dict[str, bytes] = {}
        for dirpath, _, files in os.walk(self.root.parent):
            for name in files:
                path = Path(dirpath) / name
                found[str(path.relative_to(self.root.parent))] = path.read_bytes()
        return found

    def keys(self, prefix: str = "") -> list[str]:
        base = self.root / prefix
        if not base.exists():
            return []
        return sorted(str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file())

    def get(self, key: str) -> bytes:
        return (self.root / key).read_bytes()


class RedisTarget:
    name = "redis"

    def __init__(self, server: Any) -> None:
        self.server = server
        self.prefix = uuid.uuid4().hex[:10]

    def uri(self, key: str) -> str:
        return f"redis://{self.server.addr}/{self.prefix}/{key.lstrip('/')}"

    def store(self) -> Any:
        from copilot.config import StorageConfig
        from copilot.storage import Store

        section = {"addr": self.server.addr, "password": self.server.password}
        return Store(StorageConfig(type="redis", redis=section))

    def everything(self) -> dict[str, bytes]:
        r = self.server.client()
        return {k.decode(): r.get(k) for k in r.scan_iter(match=f"{self.prefix}*")}

    def keys(self, prefix: str = "") -> list[str]:
        start = f"{self.prefix}/{prefix}"
        return sorted(k[len(self.prefix) + 1 :] for k in self.everything() if k.startswith(start))

    def get(self, key: str) -> bytes:
        value = self.server.client().get(f"{self.prefix}/{key}")
        assert value is not None, key
        return bytes(value)


class RemoteTarget:
    """An object store bucket (tests/stores.py), on one engine."""

    def __init__(self, remote: Any) -> None:
        self.remote = remote
        self.name = f"{remote.protocol}-{remote.engine}"

    def uri(self, key: str) -> str:
        return str(self.remote.uri(key))

    def store(self) -> Any:
        return self.remote.store()

    def everything(self) -> dict[str, bytes]:
        found = self.remote.keys("")
        return {k: self.remote.get(k) for k in found}

    def keys(self, prefix: str = "") -> list[str]:
        return list(self.remote.keys(prefix))

    def get(self, key: str) -> bytes:
        return bytes(self.remote.get(key))


def make_target(which: str, request: Any, tmp_path: Path) -> Any:
    if which == "file":
        return FileTarget(tmp_path / "store" / "bucket")
    if which == "redis":
        return RedisTarget(request.getfixturevalue("redis_server"))
    from stores import make_remote

    return RemoteTarget(make_remote(which, request))
