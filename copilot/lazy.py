"""A package's public names, each imported from its module on first use (PEP 562).

``copilot --help`` must not pay for protobuf, fsspec or the event loop, and
reading the storage configuration must not load the transfer code: the
packages name what they offer in a table and load it when it is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def attribute_loader(package: str, table: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that finds ``name`` in the module
    ``table`` gives for it."""

    def load(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return load
