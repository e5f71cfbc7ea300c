"""Values a person gives ``copilot run`` and ``copilot stage`` (``-i``, ``--inputs``,
a task's defaults) as literals: local files anywhere on this machine are
uploaded under the run, by their own names."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from flyteidl2.core import literals_pb2, types_pb2

from copilot.literals.from_files import OutputReader
from copilot.storage import Transfer

LiteralType: TypeAlias = types_pb2.LiteralType


@dataclass(frozen=True)
class GivenValue:
    """A value a person gave for an input (``-i``, a task file's default)."""

    value: Any
    type: LiteralType
    #: Where a relative path in the value is taken from.
    base_dir: str


class _GivenReader(OutputReader):
    """Reads one value given to ``copilot run``: a local file or directory anywhere
    on this machine is stored as ``<input>/<its own name>`` under the run, never
    under its local path (a laptop's ``/home/<user>/…`` in a shared bucket)."""

    def __init__(self, name: str, data_uri: str, base_dir: str) -> None:
        super().__init__("/", data_uri, base_dir=base_dir)
        self.name = name
        self.named: set[str] = set()

    def relative(self, path: str, label: str = "") -> str:
        own = os.path.basename(os.path.abspath(path)) or "root"
        rel, n = f"{self.name}/{own}", 0
        while rel in self.named:  # two files of one name (a list of them): numbered
            n += 1
            rel = f"{self.name}/{n}/{own}"
        self.named.add(rel)
        return rel


def literals_from_values(
    values: Mapping[str, GivenValue], data_uri: str
) -> tuple[literals_pb2.LiteralMap, list[Transfer]]:
    """Values as literals, the way ``copilot run`` stores a task's inputs.

    Numbers, text and YAML values convert as in an outputs document; a local
    file or directory anywhere on this machine becomes an upload under
    ``data_uri``/``<input>/<its name>`` (planned and returned, not run); a
    remote URI is kept.
    """
    literals = literals_pb2.LiteralMap()
    transfers: list[Transfer] = []
    for name, given in values.items():
        reader = _GivenReader(name, data_uri, given.base_dir)
        literals.literals[name].CopyFrom(
            reader.from_value(given.value, given.type, f"input {name!r}")
        )
        transfers.extend(reader.transfers)
    return literals, transfers
