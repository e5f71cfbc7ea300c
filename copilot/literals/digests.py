"""Content hashes on output literals, so downstream caches hit on identical data.

A raw container's File and Dir outputs land at fresh paths every run, and a
cache key that folds in the URI never matches twice.  Flyte 2 reads
``Literal.hash`` instead of the literal's body when it is set (flyte-sdk
``generate_inputs_repr_for_literal``), so the sidecar records one for every
file and directory it uploaded, from the bytes it read to upload them:

- a File: the lowercase hex SHA-256 of its content (what the Flyte SDK's
  ``sha256`` hash method gives for the same bytes);
- a Dir (or a structured dataset uploaded as a directory): the SHA-256 of one
  line per file, sorted by relative path (``/``-separated, compared as UTF-8
  bytes): ``<relative path> NUL <size in decimal> NUL <file SHA-256> LF``;
- in a collection or map, each element's literal carries its own hash.

Data copilot did not read (a URI the container wrote in an outputs document)
gets no hash.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from typing import Any

from flyteidl2.core import literals_pb2

from copilot.literals.walk import walk

#: The values ``--hash-outputs`` takes.
HASHES = ("sha256", "none")


def _line(rel: str, size: int, file_hash: str) -> bytes:
    return f"{rel}\0{size}\0{file_hash}\n".encode("utf-8", "surrogateescape")


class DirDigest:
    """A Dir digest built while the tree is uploaded, without a list of its files.

    Files are numbered in the digest's order (the walk's, see
    ``OutputReader.tree_files``) and finish in any order: a finished file's line
    waits here only until every file before it has finished (the store keeps
    that window short), then goes into the hash.
    """

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._next = 0
        self._waiting: dict[int, bytes] = {}
        self._lock = threading.Lock()

    def add(self, index: int, rel: str, size: int, file_hash: str) -> None:
        with self._lock:
            self._waiting[index] = _line(rel, size, file_hash)
            while self._next in self._waiting:
                self._hash.update(self._waiting.pop(self._next))
                self._next += 1

    @property
    def files(self) -> int:
        return self._next

    def hexdigest(self) -> str:
        with self._lock:
            if self._waiting:
                raise RuntimeError(f"file {self._next} of the tree never finished")
            return self._hash.hexdigest()


class DirCheck:
    """The Dir digest of a tree as it is downloaded, to compare with its literal's.

    Files land in any order (and the fsspec engine lists directory by directory,
    not in the digest's order), so each file's line is kept until the end and
    sorted then: one ``bytes`` a file (its path, size and raw SHA-256, about 100
    bytes with Python's overhead), only for a Dir whose literal carries a digest
    copilot can check.  A path holds no NUL, so sorting the kept lines sorts them
    by path, the digest's order.
    """

    def __init__(self, expected: str) -> None:
        self.expected = expected
        self._lines: list[bytes] = []
        self._lock = threading.Lock()

    def add(self, index: int, rel: str, size: int, file_hash: str) -> None:
        kept = f"{rel}\0{size}".encode("utf-8", "surrogateescape") + bytes.fromhex(file_hash)
        with self._lock:
            self._lines.append(kept)

    def hexdigest(self) -> str:
        digest = hashlib.sha256()
        with self._lock:
            self._lines.sort()
            for kept in self._lines:
                digest.update(kept[:-32] + b"\0" + kept[-32:].hex().encode() + b"\n")
        return digest.hexdigest()

    @property
    def files(self) -> int:
        return len(self._lines)


def apply_hashes(literals: literals_pb2.LiteralMap, digests: Mapping[str, str]) -> int:
    """Set ``hash`` on every blob and dataset literal whose data copilot uploaded:
    its SHA-256 (a File) or Dir digest (a tree), in ``digests`` by its URI.  A URI
    with no entry there is the container's own and gets no hash.  Returns how
    many were set."""
    set_count = 0

    def visit(node: Any, label: str, state: None) -> None:
        nonlocal set_count
        if node.WhichOneof("value") != "scalar":
            return None
        kind = node.scalar.WhichOneof("value")
        if kind == "blob":
            uri = node.scalar.blob.uri
        elif kind == "structured_dataset":
            uri = node.scalar.structured_dataset.uri
        else:
            return None
        value = digests.get(uri)
        if value:
            node.hash = value
            set_count += 1
        return None

    for name in literals.literals:
        walk(literals.literals[name], name, visit, None)
    return set_count
