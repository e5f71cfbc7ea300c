"""Storage: one door to every store (S3, GCS, Azure Blob, local disk, http).

- :mod:`~copilot.storage.store`: :class:`Store` (one filesystem per protocol,
  cancellable operations, bounded concurrent transfers to temporary names);
- :mod:`~copilot.storage.backends`: one table entry per kind of store;
- :mod:`~copilot.storage.s3`: S3 transfers in bounded memory;
- :mod:`~copilot.storage.retry`: what is worth retrying, and for how long;
- :mod:`~copilot.storage.errors`: the one place backend exceptions become
  copilot's errors;
- :mod:`~copilot.storage.uris`: protocols, joining, safe display.
"""

from __future__ import annotations

from copilot.storage.errors import storage_error
from copilot.storage.store import RemoteEntry, Store, Transfer, discard, publish, staging_dir
from copilot.storage.uris import basename_of, display_uri, join_uri, protocol_of

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
