"""One test interface over S3 (moto), GCS (fake-gcs-server) and Azure Blob (Azurite).

Storage tests take the parametrized ``remote`` fixture (conftest) and see a
:class:`Remote`: a fresh bucket or container, reached for setup and checks
with the backend's own client, and the root flags a Flyte user would pass
copilot for it, optionally through a fault proxy in front of the server.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from conftest import S3
from emulators import GCS, Azure

#: Every object store the storage tests run against.
PROTOCOLS = ("s3", "gs", "abfs")


class Remote(Protocol):
    protocol: str
    bucket: str
    engine: str

    #: The server's base URL (what a fault proxy forwards to).
    @property
    def upstream(self) -> str: ...

    def uri(self, key: str) -> str: ...
    def put(self, key: str, data: bytes) -> str: ...
    def put_file(self, key: str, path: str) -> str: ...
    def get(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def keys(self, prefix: str = "") -> list[str]: ...
    def stow_flags(self, endpoint: str | None = None) -> list[str]: ...
    def store(
        self, concurrency: int = 32, endpoint: str | None = None, engine: str | None = None
    ) -> Any: ...


class FsspecBucket:
    """A bucket reached through the backend's own fsspec filesystem (not copilot's)."""

    protocol = ""
    kind = ""
    #: The engine copilot uses for this bucket (``auto``: the default one).
    engine = "auto"

    def __init__(self, fs: Any, bucket: str) -> None:
        self.fs = fs
        self.bucket = bucket

    def uri(self, key: str) -> str:
        return f"{self.protocol}://{self.bucket}/{key.lstrip('/')}"

    def put(self, key: str, data: bytes) -> str:
        self.fs.pipe_file(f"{self.bucket}/{key}", data)
        return self.uri(key)

    def put_file(self, key: str, path: str) -> str:
        self.fs.put_file(path, f"{self.bucket}/{key}")
        return self.uri(key)

    def get(self, key: str) -> bytes:
        return bytes(self.fs.cat_file(f"{self.bucket}/{key}"))

    def exists(self, key: str) -> bool:
        self.fs.invalidate_cache()
        return bool(self.fs.exists(f"{self.bucket}/{key}"))

    def stow_config(self, endpoint: str | None = None) -> dict[str, str]:
        raise NotImplementedError

    def stow_flags(self, endpoint: str | None = None) -> list[str]:
        flags = ["--storage.type=stow", f"--storage.stow.kind={self.kind}"]
        for key, value in self.stow_config(endpoint).items():
            flags += ["--storage.stow.config", f"{key}={value}"]
        if self.engine != "auto":
            flags.append(f"--storage.engine={self.engine}")
        return flags

    def store(
        self, concurrency: int = 32, endpoint: str | None = None, engine: str | None = None
    ) -> Any:
        """An in-process copilot Store configured for this server (or ``endpoint``),
        on the bucket's engine (or ``engine``)."""
        from copilot.config import StorageConfig
        from copilot.storage import Store

        config = StorageConfig(
            kind=self.kind, stow_config=self.stow_config(endpoint), engine=engine or self.engine
        )
        return Store(config, concurrency=concurrency)

    def keys(self, prefix: str = "") -> list[str]:
        self.fs.invalidate_cache()
        root = f"{self.bucket}/"
        found = self.fs.find(f"{self.bucket}/{prefix}".rstrip("/"))
        return sorted(p[len(root) :] for p in found if p.startswith(root + prefix))


class GCSBucket(FsspecBucket):
    protocol = "gs"
    kind = "google"

    def __init__(self, server: GCS) -> None:
        import gcsfs.core

        bucket = f"copilot-{uuid.uuid4().hex[:10]}"
        server.create_bucket(bucket)
        # The plain class, as copilot takes it (storage/gcs.py).
        fs = gcsfs.core.GCSFileSystem(
            endpoint_url=server.endpoint, token="anon", project=server.project
        )
        super().__init__(fs, bucket)
        self.server = server

    @property
    def upstream(self) -> str:
        return self.server.endpoint

    def stow_config(self, endpoint: str | None = None) -> dict[str, str]:
        return {"endpoint": endpoint or self.server.endpoint}


class AzureContainer(FsspecBucket):
    protocol = "abfs"
    kind = "azure"

    def __init__(self, server: Azure) -> None:
        import adlfs

        container = f"copilot-{uuid.uuid4().hex[:10]}"
        server.create_container(container)
        fs = adlfs.AzureBlobFileSystem(connection_string=server.connection_string)
        super().__init__(fs, container)
        self.server = server

    @property
    def upstream(self) -> str:
        return self.server.blob_endpoint.rsplit("/", 1)[0]

    # Checks through the Azure SDK itself: adlfs reads "?" in a path as a version id.
    def _container(self) -> Any:
        from azure.storage.blob import ContainerClient

        return ContainerClient.from_connection_string(self.server.connection_string, self.bucket)

    def put(self, key: str, data: bytes) -> str:
        self._container().upload_blob(key, data, overwrite=True)
        return self.uri(key)

    def get(self, key: str) -> bytes:
        return bytes(self._container().download_blob(key).readall())

    def exists(self, key: str) -> bool:
        return bool(self._container().get_blob_client(key).exists())

    def keys(self, prefix: str = "") -> list[str]:
        return sorted(b.name for b in self._container().list_blobs(name_starts_with=prefix))

    def stow_config(self, endpoint: str | None = None) -> dict[str, str]:
        blob = f"{endpoint}/{self.server.account}" if endpoint else self.server.blob_endpoint
        return {"account": self.server.account, "key": self.server.key, "endpoint": blob}


def make_remote(which: str, request: Any) -> Remote:
    """A fresh bucket on the session's server for ``which`` (``protocol`` or
    ``protocol-engine``: ``s3-fsspec``)."""
    protocol, _, engine = which.partition("-")
    remote: Remote
    if protocol == "s3":
        from conftest import _make_bucket

        remote = _make_bucket(request.getfixturevalue("s3_endpoint"))
    elif protocol == "gs":
        remote = GCSBucket(request.getfixturevalue("gcs_server"))
    elif protocol == "abfs":
        remote = AzureContainer(request.getfixturevalue("azure_server"))
    else:
        raise ValueError(which)
    remote.engine = engine or "auto"
    return remote


__all__ = ["PROTOCOLS", "S3", "AzureContainer", "GCSBucket", "Remote", "make_remote"]
