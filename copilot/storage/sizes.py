"""How big the pieces of a bounded-memory transfer are: one :class:`TransferLimits`
value per :class:`~copilot.storage.store.Store`, handed to every transfer.

The defaults were tuned with ``scripts/bench`` (docs/BENCHMARKS.md, "Tuning
measurements").  A backend whose service or SDK works best with other sizes
keeps its own default (Azure's 3 MiB ranges and 4 MiB blocks, obstore's 8 MiB
parts, GCS's 5 MiB single-request bound); a size set here overrides every
backend's, which is how tests reach the multi-part paths with small files.
Kept import-free: a local run reads it without loading an event loop.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Objects bigger than one range are downloaded as concurrent ranges.
RANGE_SIZE = 64 << 20
#: Files up to this size go up in one request; bigger ones in parts of this size.
PART_SIZE = 16 << 20
#: Bytes all uploads of one store together may hold in memory.
UPLOAD_BUDGET = 32 << 20
#: How far an upload tree's files may run ahead of its first unfinished one: what
#: a Dir digest holds of finished lines waiting for it (a line each).
TREE_WINDOW = 1024


@dataclass(frozen=True)
class TransferLimits:
    """The sizes one store's transfers are cut to."""

    #: Bytes per range of a large download (None: the backend's own, ``RANGE_SIZE``
    #: for most).
    range_size: int | None = None
    #: Bytes per part of a large upload, and the most sent in one request (None:
    #: the backend's own, ``PART_SIZE`` for most).
    part_size: int | None = None
    #: Bytes all uploads of the store together may hold in memory.
    upload_budget: int = UPLOAD_BUDGET
    #: How far an upload tree's files may run ahead of its first unfinished one.
    tree_window: int = TREE_WINDOW

    def ranges(self, default: int = RANGE_SIZE) -> int:
        """The range size, given the backend's own."""
        return self.range_size or default

    def parts(self, default: int = PART_SIZE) -> int:
        """The part size (and single-request bound), given the backend's own."""
        return self.part_size or default


DEFAULT_LIMITS = TransferLimits()
