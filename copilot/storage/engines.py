"""Which engine serves a protocol, and the client that speaks for it.

obstore (the Rust ``object_store``) serves the stores its table entry names a
native kind for, unless ``storage.engine`` says fsspec or (under ``auto``) the
configuration needs what only botocore does; fsspec serves everything else.
Each store's module turns copilot's configuration into the engine's options.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from copilot.errors import NON_RECOVERABLE, StorageError
from copilot.storage.backends import backend_for, module_of
from copilot.storage.client import Client
from copilot.storage.config import StorageConfig

log = logging.getLogger("copilot")


def engine_for(protocol: str, config: StorageConfig) -> str:
    """``obstore`` for a store it serves unless the configuration asks for fsspec
    (or, under ``auto``, needs what only fsspec does), else ``fsspec``."""
    backend = backend_for(protocol)
    if not backend.native or config.engine == "fsspec":
        return "fsspec"
    if config.engine == "auto":
        module = module_of(backend)
        unsupported = getattr(module, "unsupported", None)
        why = unsupported(config) if unsupported is not None else ""
        if why:
            log.info("%s://: the fsspec engine serves this configuration (%s)", protocol, why)
            return "fsspec"
    return "obstore"


def make_client(protocol: str, config: StorageConfig, concurrency: int) -> Client:
    """A client for ``protocol`` on the engine :func:`engine_for` picks, its code
    imported now (a backend is loaded only when a URI needs it)."""
    backend = backend_for(protocol)
    if protocol == "file":
        raise ValueError("file:// is copilot's own local store, not a client")
    module = module_of(backend)
    try:
        own = getattr(module, "make_client", None)
        if own is not None:  # a store with a client of its own (redis://)
            client: Client = own(protocol, config, concurrency)
            return client
        if engine_for(protocol, config) == "obstore":
            assert module is not None
            from copilot.storage import obstore_engine

            ca = config.ca_certificates(os.environ, getattr(module, "CA_ENV", ""))
            return obstore_engine.ObstoreClient(
                protocol,
                backend.native,
                module.obstore_options(config),
                ca_certificates=ca,
                upload_concurrency=getattr(module, "upload_concurrency", lambda c: None)(config),
            )
        import fsspec

        from copilot.storage.fsspec_engine import FsspecClient

        options: dict[str, Any] = (
            module.fsspec_options(config, concurrency) if module is not None else {}
        )
        make_fs = getattr(module, "fsspec_class", None)
        if make_fs is not None:
            fs = make_fs()(skip_instance_cache=True, **options)
        else:
            fs = fsspec.filesystem(protocol, skip_instance_cache=True, **options)
    except (ImportError, ValueError) as exc:
        hint = f" (install {backend.install})" if backend.install else ""
        text = str(exc).strip().splitlines()
        raise StorageError(
            f"storage {protocol}://: backend not available{hint}: "
            f"{text[0] if text else type(exc).__name__}",
            kind=NON_RECOVERABLE,
        ) from None
    prepare = getattr(module, "prepare", None)
    if prepare is not None:
        prepare(fs)
    return FsspecClient(fs, protocol, module if backend.bounded else None)
