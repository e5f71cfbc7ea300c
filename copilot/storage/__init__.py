"""Storage: one door to every store (S3, GCS, Azure Blob, local disk, http, any fsspec
protocol), each reached through the engine that serves it.

- :mod:`~copilot.storage.store`: :class:`Store` (one client per protocol,
  cancellable operations, bounded concurrent transfers, trees listed as they
  are copied);
- :mod:`~copilot.storage.engines`: which engine serves a protocol, and its client;
- :mod:`~copilot.storage.obstore_engine` / :mod:`~copilot.storage.fsspec_engine`:
  the two engines, behind :class:`~copilot.storage.client.Client`;
- :mod:`~copilot.storage.backends`: one table entry per kind of store, and one
  module per store (``s3``, ``gcs``, ``azure``, ``http``) for its options;
- :mod:`~copilot.storage.driver`: the one bounded-memory get/put of every object
  store, over each store's reader and writer (:mod:`~copilot.storage.chunked`:
  the pieces it is made of);
- :mod:`~copilot.storage.retry`: what is worth retrying, and for how long;
- :mod:`~copilot.storage.errors`: the one place backend exceptions become
  copilot's errors;
- :mod:`~copilot.storage.uris`: protocols, joining, safe display.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from copilot.lazy import attribute_loader

if TYPE_CHECKING:
    from copilot.storage.errors import storage_error
    from copilot.storage.store import RemoteEntry, Store
    from copilot.storage.transfer import Transfer, discard, publish, staging_dir
    from copilot.storage.uris import basename_of, display_uri, join_uri, protocol_of

#: Each public name and the module that defines it, imported on first use: reading
#: the storage section's configuration (:mod:`~copilot.storage.config`) does not
#: load the transfer code.
_PUBLIC = {
    "RemoteEntry": "copilot.storage.store",
    "Store": "copilot.storage.store",
    "Transfer": "copilot.storage.transfer",
    "basename_of": "copilot.storage.uris",
    "discard": "copilot.storage.transfer",
    "display_uri": "copilot.storage.uris",
    "join_uri": "copilot.storage.uris",
    "protocol_of": "copilot.storage.uris",
    "publish": "copilot.storage.transfer",
    "staging_dir": "copilot.storage.transfer",
    "storage_error": "copilot.storage.errors",
}

__getattr__ = attribute_loader("copilot.storage", _PUBLIC)

__all__ = [
    "RemoteEntry",
    "Store",
    "Transfer",
    "basename_of",
    "discard",
    "display_uri",
    "join_uri",
    "protocol_of",
    "publish",
    "staging_dir",
    "storage_error",
]
