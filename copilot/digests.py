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
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from flyteidl2.core import literals_pb2

from copilot.literals.types import MULTIPART
from copilot.literals.walk import walk
from copilot.storage import Transfer

#: The values ``--hash-outputs`` takes.
HASHES = ("sha256", "none")


def dir_digest(entries: Iterable[tuple[str, int, str]]) -> str:
    """The Dir digest over (relative path, size, file SHA-256) entries, in any order."""
    h = hashlib.sha256()
    for rel, size, file_hash in sorted(entries, key=lambda e: e[0].encode("utf-8")):
        h.update(f"{rel}\0{size}\0{file_hash}\n".encode())
    return h.hexdigest()


def apply_hashes(
    literals: literals_pb2.LiteralMap,
    transfers: Sequence[Transfer],
    digests: Mapping[str, str],
    raw_prefix: str,
) -> int:
    """Set ``hash`` on every blob and dataset literal whose data was uploaded (its
    files' SHA-256 in ``digests`` by destination URI); returns how many were set.

    ``raw_prefix`` is where copilot puts what it uploads: an empty directory
    there was read (and is empty), while a URI elsewhere with no upload is the
    container's own and gets no hash.
    """
    uploaded = {t.dst: t for t in transfers if t.dst in digests}
    sizes = {
        dst: t.size if t.size is not None else os.path.getsize(t.src) for dst, t in uploaded.items()
    }
    set_count = 0

    def visit(node: Any, label: str, state: None) -> None:
        nonlocal set_count
        if node.WhichOneof("value") != "scalar":
            return None
        kind = node.scalar.WhichOneof("value")
        if kind == "blob":
            uri = node.scalar.blob.uri
            is_dir = node.scalar.blob.metadata.type.dimensionality == MULTIPART
        elif kind == "structured_dataset":
            uri, is_dir = node.scalar.structured_dataset.uri, True
        else:
            return None
        value = _hash_of(uri, is_dir, uploaded, digests, sizes, raw_prefix)
        if value:
            node.hash = value
            set_count += 1
        return None

    for name in literals.literals:
        walk(literals.literals[name], name, visit, None)
    return set_count


def _hash_of(
    uri: str,
    is_dir: bool,
    uploaded: Mapping[str, Transfer],
    digests: Mapping[str, str],
    sizes: Mapping[str, int],
    raw_prefix: str,
) -> str:
    if uri in uploaded:
        return digests[uri]
    if not is_dir:
        return ""
    base = uri.rstrip("/") + "/"
    entries = [
        (dst[len(base) :], sizes.get(dst, 0), digests[dst])
        for dst in uploaded
        if dst.startswith(base)
    ]
    if entries or (raw_prefix and uri.startswith(raw_prefix.rstrip("/") + "/")):
        return dir_digest(entries)
    return ""
