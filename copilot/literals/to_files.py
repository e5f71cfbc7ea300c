"""Literal -> files: lay a resolved ``LiteralMap`` out as plain files (SPEC §4).

The walk writes small values (primitives, binary, JSON) at once and collects
blob copies as :class:`~copilot.storage.Transfer` jobs for the caller to run
concurrently.  It also builds the two views of the inputs the container may
read: the local ``LiteralMap`` (blob URIs replaced by local paths) and a plain
Python value per variable for ``inputs.json`` / ``inputs.yaml``.

Every name that comes from the data (variable names, map keys, object keys,
blob basenames) passes :func:`safe_name` before it becomes part of a path.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flyteidl2.core import literals_pb2

from copilot.durations import format_duration_ns
from copilot.errors import NON_RECOVERABLE, DataError, StorageError
from copilot.literals.digests import DirCheck
from copilot.literals.text import (
    duration_ns,
    format_float,
    format_timestamp,
)
from copilot.literals.types import MULTIPART
from copilot.modes import FileLayout
from copilot.paths import safe_name, safe_relpath
from copilot.storage import Store, Transfer, basename_of, discard, display_uri, staging_dir

if TYPE_CHECKING:
    from copilot.sources import InputSources

# Files the downloader writes itself beside the inputs.
METADATA_NAMES = frozenset({"inputs.pb", "inputs.json", "inputs.yaml"})


def _json_float(value: float) -> Any:
    return value if math.isfinite(value) else format_float(value)


def struct_to_python(struct: Any) -> Any:
    """A protobuf Struct as plain Python, with integral numbers as ints (as Go prints them)."""
    from google.protobuf.json_format import MessageToDict

    def fix(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
            return int(v)
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        return v

    return fix(MessageToDict(struct))


def primitive_text_and_value(p: literals_pb2.Primitive) -> tuple[str, Any]:
    """The file text for a primitive and its value for ``inputs.json``."""
    which = p.WhichOneof("value")
    if which == "integer":
        return str(p.integer), p.integer
    if which == "float_value":
        return format_float(p.float_value), _json_float(p.float_value)
    if which == "string_value":
        return p.string_value, p.string_value
    if which == "boolean":
        return ("true" if p.boolean else "false"), p.boolean
    if which == "datetime":
        text = format_timestamp(p.datetime.seconds, p.datetime.nanos)
        return text, text
    if which == "duration":
        ns = duration_ns(p.duration.seconds, p.duration.nanos)
        return format_duration_ns(ns), ns
    return "null", None


@dataclass
class LaidOut:
    """Result of laying out a map: what to copy, what to record."""

    literals: literals_pb2.LiteralMap
    values: dict[str, Any]
    transfers: list[Transfer] = field(default_factory=list)
    #: Directories filled under a hidden name: ``(staging, final)`` pairs, published
    #: once the transfers are done (:func:`copilot.storage.publish`).
    stages: list[tuple[str, str]] = field(default_factory=list)


def python_value(lit: literals_pb2.Literal) -> Any:
    """A literal as plain Python for people: blobs as URIs, msgpack structs decoded."""
    layout = InputWriter(None, "", fetch=False, decode_msgpack=True)  # type: ignore[arg-type]
    return layout.literal(lit, "", "value")[1]


#: A content hash copilot can check: a SHA-256 in lowercase hex (what the sidecar
#: and the Flyte SDK's sha256 method write).  Anything else is passed through.
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class InputWriter:
    """Writes literals under ``root``; blobs become transfers unless ``fetch`` is off."""

    def __init__(
        self,
        store: Store,
        root: str,
        *,
        layout: FileLayout = FileLayout.DIRECT,
        fetch: bool = True,
        decode_msgpack: bool = False,
        verify: bool = True,
        sources: InputSources | None = None,
    ) -> None:
        self.store = store
        #: Which stores a blob's URI may name (None: any; :mod:`copilot.sources`).
        self.sources = sources
        #: Check a File's bytes against the SHA-256 its literal carries (copilot.literals.digests).
        self.verify = verify
        self.root = root
        self.layout = layout
        self.fetch = fetch
        self.decode_msgpack = decode_msgpack
        self.transfers: list[Transfer] = []
        self.stages: list[tuple[str, str]] = []
        #: Dirs whose literal carries copilot's Dir digest: checked once downloaded.
        self.dir_checks: list[tuple[str, str, DirCheck]] = []

    # -- entry point ---------------------------------------------------------

    def lay_out(self, inputs: literals_pb2.LiteralMap) -> LaidOut:
        """Write ``inputs`` under the root and plan their copies.  ``inputs`` itself
        becomes the local map (blob URIs rewritten in place): a copy of a
        100,000-element list would double the memory for nothing."""
        values: dict[str, Any] = {}
        for name in sorted(inputs.literals):
            safe_name(name, "variable name", f"input {name!r}")
            if name in METADATA_NAMES:
                raise DataError(
                    f"input {name!r}: the name clashes with the metadata file the "
                    "downloader writes beside the inputs"
                )
            lit = inputs.literals[name]
            path = os.path.join(self.root, name)
            label = f"input {name!r}"
            if self.layout == FileLayout.NAMED_DIR:
                _, value = self._named(lit, path, label)
            else:
                _, value = self.literal(lit, path, label)
            values[name] = value
        return LaidOut(inputs, values, self.transfers, self.stages)

    # -- NAMED_DIR -----------------------------------------------------------

    @staticmethod
    def _single_blob(lit: literals_pb2.Literal) -> literals_pb2.Blob | None:
        if lit.WhichOneof("value") != "scalar":
            return None
        scalar = lit.scalar
        if scalar.WhichOneof("value") == "union":
            return InputWriter._single_blob(scalar.union.value)
        if scalar.WhichOneof("value") == "blob" and (
            scalar.blob.metadata.type.dimensionality != MULTIPART
        ):
            return scalar.blob
        return None

    def _named(self, lit: literals_pb2.Literal, path: str, label: str) -> tuple[Any, Any]:
        """NAMED_DIR: files keep their own names inside ``<var>/``."""
        blob = self._single_blob(lit)
        if blob is not None:
            base = safe_name(basename_of(blob.uri), "file name", label)
            self._mkdir(path)
            return self.literal(lit, os.path.join(path, base), label)
        if lit.WhichOneof("value") == "collection":
            used: set[str] = set()

            def own_name(i: int, item: literals_pb2.Literal) -> str:
                item_blob = self._single_blob(item)
                name = str(i)
                if item_blob is not None:
                    name = safe_name(basename_of(item_blob.uri), "file name", f"{label}[{i}]")
                while name in used:  # a clash gets the index in front, until unique
                    name = f"{i}_{name}"
                used.add(name)
                return name

            return self._collection(lit, path, label, own_name)
        return self.literal(lit, path, label)

    # -- the walk ------------------------------------------------------------

    def _mkdir(self, path: str) -> None:
        if self.fetch:
            os.makedirs(path, exist_ok=True)

    def _write(self, path: str, data: bytes) -> None:
        if self.fetch:
            # O_NOFOLLOW: never write through a link someone left in the input dir.
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
            fd = os.open(path, flags, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)

    def literal(
        self, lit: literals_pb2.Literal, path: str, label: str
    ) -> tuple[literals_pb2.Literal, Any]:
        which = lit.WhichOneof("value")
        if which == "scalar":
            return self._scalar(lit, path, label)
        if which == "collection":
            return self._collection(lit, path, label, lambda i, item: str(i))
        if which == "map":
            self._mkdir(path)
            mapping: dict[str, Any] = {}
            for key in sorted(lit.map.literals):
                key_label = f"{label}[{key!r}]"
                safe_name(key, "map key", key_label)
                _, value = self.literal(lit.map.literals[key], os.path.join(path, key), key_label)
                mapping[key] = value
            return lit, mapping
        if which == "offloaded_metadata":
            raise DataError(f"{label}: offloaded literal was not resolved before layout")
        raise DataError(f"{label}: the literal holds no value")

    def _collection(
        self, lit: literals_pb2.Literal, path: str, label: str, name_for: Any
    ) -> tuple[literals_pb2.Literal, list[Any]]:
        """A list as a directory; ``name_for(i, item)`` names each entry."""
        self._mkdir(path)
        values = []
        for i, item in enumerate(lit.collection.literals):
            _, value = self.literal(item, os.path.join(path, name_for(i, item)), f"{label}[{i}]")
            values.append(value)
        return lit, values

    def _scalar(
        self, lit: literals_pb2.Literal, path: str, label: str
    ) -> tuple[literals_pb2.Literal, Any]:
        scalar = lit.scalar
        kind = scalar.WhichOneof("value")
        if kind == "primitive":
            text, value = primitive_text_and_value(scalar.primitive)
            self._write(path, text.encode("utf-8"))
            return lit, value
        if kind == "none_type":
            self._write(path, b"null")
            return lit, None
        if kind == "error":
            self._write(path, scalar.error.message.encode("utf-8"))
            return lit, scalar.error.message
        if kind == "binary":
            self._write(path, scalar.binary.value)
            if self.decode_msgpack and scalar.binary.tag == "msgpack":
                import msgpack

                try:
                    return lit, msgpack.unpackb(scalar.binary.value, strict_map_key=False)
                except Exception:
                    pass  # not valid msgpack after all: show it as base64
            return lit, base64.b64encode(scalar.binary.value).decode("ascii")
        if kind == "generic":
            value = struct_to_python(scalar.generic)
            text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
            self._write(path, text.encode("utf-8"))
            return lit, value
        if kind == "union":
            _, value = self.literal(scalar.union.value, path, label)
            return lit, value
        if kind == "blob":
            multipart = scalar.blob.metadata.type.dimensionality == MULTIPART
            expect = lit.hash if self.verify and _SHA256_HEX.fullmatch(lit.hash) else None
            local = self._fetch(scalar.blob.uri, path, label, tree=multipart, sha256=expect)
            scalar.blob.uri = local
            return lit, local
        if kind == "schema":
            local = self._fetch(scalar.schema.uri, path, label, tree=True)
            scalar.schema.uri = local
            return lit, local
        if kind == "structured_dataset":
            local = self._fetch(scalar.structured_dataset.uri, path, label, tree=None)
            scalar.structured_dataset.uri = local
            return lit, local
        raise DataError(f"{label}: the scalar holds no value")

    def _fetch(
        self, uri: str, path: str, label: str, *, tree: bool | None, sha256: str | None = None
    ) -> str:
        """Plan the copy of a blob; ``tree`` None means "file or directory, whichever it is"."""
        if not uri:
            raise DataError(f"{label}: the literal has an empty URI")
        if not self.fetch:
            return uri
        if self.sources is not None:
            self.sources.check(uri, label)
        if tree is None:
            remote_is_http = uri.split("://", 1)[0].lower() in ("http", "https")
            tree = not remote_is_http and not self.store.is_file(uri)
        if not tree:
            self.transfers.append(Transfer(uri, path, label, sha256=sha256))
            return path
        # The tree is filled under a hidden sibling and renamed into place once,
        # when every file is there: one rename per tree, not one per file.  The
        # store lists it page by page while copying (nothing held per object),
        # each name checked before it becomes a path.
        stage = staging_dir(path)
        discard(stage)  # a crashed earlier run's leftovers
        os.makedirs(stage)
        self.stages.append((stage, path))
        sink = None
        if sha256:  # the Dir digest the sidecar wrote: every file hashed as it lands
            check = DirCheck(sha256)
            self.dir_checks.append((label, uri, check))
            sink = check.add
        self.transfers.append(
            Transfer(
                uri,
                stage,
                label,
                tree=True,
                check=functools.partial(safe_relpath, label=label),
                sink=sink,
            )
        )
        return path

    def check_dirs(self) -> None:
        """Each downloaded Dir against the digest its literal carries: an object
        changed, added or removed since the sidecar wrote it is refused for good (a
        retry would fetch the same objects)."""
        for label, uri, check in self.dir_checks:
            found = check.hexdigest()
            if found != check.expected:
                raise StorageError(
                    f"{label}: {display_uri(uri)}: the directory's content does not match "
                    f"the hash in its literal (expected Dir SHA-256 {check.expected}, got "
                    f"{found} over {check.files} files): an object under it was changed, "
                    "added or removed",
                    kind=NON_RECOVERABLE,
                )
