"""Files -> literal: turn what a container wrote into typed values (SPEC §6).

:class:`OutputReader` converts one declared output at a time, from a path in the
output dir or from a value in a whole-outputs document.  It reads only small
things itself (primitives, JSON/YAML documents, binary values) and plans every
blob upload as a :class:`~copilot.storage.Transfer` for the caller to run, so
that nothing is uploaded unless every output converted.

Nothing leads out of the output dir: a symlink whose target is outside it is
refused, as are FIFOs (never opened, so never blocked on), sockets and devices.
"""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Iterator
from typing import Any, TypeAlias

from flyteidl2.core import literals_pb2, types_pb2

from copilot.constants import DEFAULT_MAX_PRIMITIVE_BYTES, MAX_DOCUMENT_BYTES, TMP_SUFFIX
from copilot.errors import NON_RECOVERABLE, USER, CopilotError, DataError
from copilot.limits import OutputLimits, Tally
from copilot.literals.digests import DirDigest
from copilot.literals.types import MULTIPART, type_name
from copilot.literals.values import (
    TRIM,
    ValueReader,
    _short,
    dataset_literal,
    document_holding,
    none_literal,
    optional_none,
    parse_struct,
    primitive_from_text,
    remote_literal,
    union_literal,
)
from copilot.paths import Beneath, kind_of_mode, real_path, short_path, within
from copilot.storage import Transfer, join_uri, protocol_of
from copilot.storage.files import read_fd

#: Trees of up to this many files in all are uploaded from the walks that checked
#: them (a few MB of paths); the others are walked again as they upload, so
#: memory does not grow with the number of files.
TREE_KEPT = 10_000

Literal: TypeAlias = literals_pb2.Literal
LiteralType: TypeAlias = types_pb2.LiteralType


#: How to raise the primitive limit, said where it is hit.
RAISE_HINT = " (raise the limit with --max-primitive-bytes; in Python, max_primitive_bytes)"


class OutputReader(ValueReader):
    """Converts files under ``root`` into literals; blobs go under ``raw_prefix``."""

    def __init__(
        self,
        root: str,
        raw_prefix: str,
        *,
        upload: bool = True,
        max_primitive_bytes: int = DEFAULT_MAX_PRIMITIVE_BYTES,
        struct_encoding: str = "msgpack",
        base_dir: str | None = None,
        limits: OutputLimits | None = None,
    ) -> None:
        super().__init__(struct_encoding=struct_encoding)
        #: Nothing outside this real directory is read or uploaded.
        self.root = os.path.realpath(root)
        #: How files under it are found and opened (paths.py's rules).
        self.beneath = Beneath(self.root)
        #: The directory as given, for object keys (its real path may differ).
        self.given_root = os.path.abspath(root)
        # Relative paths in documents and values are taken from here.
        self.base_dir = os.path.realpath(base_dir) if base_dir else self.root
        self.raw_prefix = raw_prefix
        self.upload = upload
        self.max_primitive_bytes = max_primitive_bytes
        #: Each uploaded tree's Dir digest, by its URI, complete once it is uploaded.
        self.dir_digests: dict[str, DirDigest] = {}
        #: Files kept from checking walks so far, over every tree (``TREE_KEPT``).
        self.kept_files = 0
        #: What the planned uploads add up to, against the output limits.
        self.tally = Tally(limits or OutputLimits())
        #: Each tree's files and sizes as uploaded, by its URI (trees kept from
        #: their checking walks, see ``TREE_KEPT``), for the check after upload.
        self.tree_sizes: dict[str, dict[str, int]] = {}

    # -- finding and checking paths ---------------------------------------------

    def inspect(self, path: str, label: str) -> os.stat_result | None:
        """Stat ``path`` safely: None if absent; refuse anything that leads out or may block."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise DataError(f"{label}: cannot read {short_path(path)}: {exc.strerror}") from None
        if stat.S_ISLNK(st.st_mode):
            target = real_path(path, label)
            if not within(target, self.root):
                try:
                    shown = os.readlink(path)
                except OSError:
                    shown = target
                raise DataError(
                    f"{label}: {path} is a symlink to {shown}, outside the output "
                    "directory; refused"
                )
            try:
                st = os.stat(path)
            except OSError as exc:
                reason = "a symlink loop" if exc.errno == 40 else "a dangling symlink"
                raise DataError(f"{label}: {path} is {reason}; refused") from None
        if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
            return st
        raise DataError(
            f"{label}: {path} is {kind_of_mode(st.st_mode)}, not a regular file or "
            "directory; refused"
        )

    def locate(self, directory: str, name: str, label: str) -> str | None:
        """``directory/name``, else the single ``directory/name.*``; None when neither exists."""
        exact = os.path.join(directory, name)
        if os.path.lexists(exact):
            return exact
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise DataError(f"{label}: cannot list {directory}: {exc.strerror}") from None
        matches = sorted(
            n for n in names if n.startswith(name + ".") and not n.endswith(TMP_SUFFIX)
        )
        if len(matches) > 1:
            raise DataError(
                f"{label}: more than one file could be this output: "
                + ", ".join(os.path.join(directory, m) for m in matches)
            )
        return os.path.join(directory, matches[0]) if matches else None

    def contained(self, path: str, label: str) -> str:
        """``path``'s real location, refused unless it lies in the output directory
        (every route to a local file comes through here or :meth:`inspect`)."""
        real = self.beneath.resolve(path)
        if real is None:
            raise DataError(
                f"{label}: {path} leads outside the output directory "
                f"(to {short_path(real_path(path))}); refused",
                origin=USER,
            )
        return real

    def read(
        self, path: str, st: os.stat_result, limit: int, what: str, label: str, hint: str = ""
    ) -> bytes:
        """A small file's bytes, from a descriptor opened beneath the output dir."""
        if not stat.S_ISREG(st.st_mode):
            raise DataError(f"{label}: {path}: expected a file holding {what}, found a directory")
        if st.st_size > limit:
            raise DataError(
                f"{label}: {path} is {st.st_size} bytes; {what} may be at most {limit} bytes{hint}"
            )
        fd, now = self.beneath.open(path, label)
        try:
            if now.st_size > limit:
                raise DataError(f"{label}: {path} grew past {limit} bytes while being read")
            data = read_fd(fd, now.st_size, limit)
        except OSError as exc:
            raise DataError(f"{label}: cannot read {path}: {exc.strerror}") from None
        finally:
            os.close(fd)
        if len(data) > limit:
            raise DataError(f"{label}: {path} grew past {limit} bytes while being read")
        return data

    def _text(self, path: str, st: os.stat_result, lt: LiteralType, label: str) -> str:
        data = self.read(
            path, st, self.max_primitive_bytes, f"a {type_name(lt)} value", label, RAISE_HINT
        )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{label}: {path}: expected {type_name(lt)} as UTF-8 text, found a byte "
                f"that is not UTF-8 at offset {exc.start}"
            ) from None
        return text.strip(TRIM)

    def relative(self, path: str, label: str = "") -> str:
        """``path`` from the output dir, ``/``-separated.  Made absolute first (no
        ``..`` left), and refused unless it lies below the output dir: the names an
        object key is built from cannot climb."""
        where = os.path.abspath(path)
        for base in (self.given_root, self.root):
            if where != base and within(where, base):
                return where[len(base.rstrip("/")) + 1 :]
        raise DataError(
            f"{label + ': ' if label else ''}{path} is not below the output directory "
            f"{self.given_root}; refused",
            origin=USER,
        )

    def remote_for(self, path: str, label: str = "") -> str:
        """The object a local file or tree goes to: its path under the output dir,
        under the raw prefix."""
        return join_uri(self.raw_prefix, self.relative(path, label))

    # -- from a path ------------------------------------------------------------

    def from_path(self, path: str, lt: LiteralType, label: str) -> Literal:
        which = lt.WhichOneof("type")
        st = self.inspect(path, label)
        if which == "union_type":
            return self._union_from_path(path, st, lt, label)
        if st is None:
            raise DataError(
                f"{label}: expected {type_name(lt)} at {path}, found nothing there"
                + _typo_hint(self.beneath.close_name(path))
            )
        if which == "simple":
            return self._simple_from_path(path, st, lt, label)
        if which == "enum_type":
            text = self._text(path, st, lt, label)
            return self._enum(text, lt, label, path)
        if which == "blob":
            multipart = lt.blob.dimensionality == MULTIPART
            return self._blob(path, st, lt, label, tree=multipart)
        if which == "structured_dataset_type":
            uri = self.plan(path, st, label, tree=stat.S_ISDIR(st.st_mode))
            return dataset_literal(uri, lt, path)
        if which == "schema":
            uri = self.plan(path, st, label, tree=stat.S_ISDIR(st.st_mode))
            lit = Literal()
            lit.scalar.schema.uri = uri
            lit.scalar.schema.type.CopyFrom(lt.schema)
            return lit
        if which == "collection_type":
            if stat.S_ISDIR(st.st_mode):
                return self._collection_dir(path, lt, label)
            return self.from_value(self._document(path, st, label, list), lt, label)
        if which == "map_value_type":
            if stat.S_ISDIR(st.st_mode):
                return self._map_dir(path, lt, label)
            return self.from_value(self._document(path, st, label, dict), lt, label)
        raise DataError(f"{label}: outputs of type {type_name(lt)} are not supported")

    def _simple_from_path(
        self, path: str, st: os.stat_result, lt: LiteralType, label: str
    ) -> Literal:
        simple = lt.simple
        if simple == types_pb2.NONE:
            return none_literal()
        if simple == types_pb2.BINARY:
            data = self.read(path, st, MAX_DOCUMENT_BYTES, "a binary value", label)
            lit = Literal()
            lit.scalar.binary.value = data
            return lit
        if simple == types_pb2.STRUCT:
            data = self.read(path, st, MAX_DOCUMENT_BYTES, "a struct", label)
            return self._struct(parse_struct(data, path, label), label)
        text = self._text(path, st, lt, label)
        if simple == types_pb2.ERROR:
            lit = Literal()
            lit.scalar.error.message = text
            return lit
        try:
            return primitive_from_text(text, simple)
        except ValueError as exc:
            raise DataError(f"{label}: {path}: expected {type_name(lt)}, found {exc}") from None

    def _union_from_path(
        self, path: str, st: os.stat_result | None, lt: LiteralType, label: str
    ) -> Literal:
        none_variant = optional_none(lt)
        if st is None:
            if none_variant is not None:
                return union_literal(none_literal(), none_variant)
            raise DataError(f"{label}: expected {type_name(lt)} at {path}, found nothing there")
        if (
            none_variant is not None
            and stat.S_ISREG(st.st_mode)
            and st.st_size <= 64
            and self.read(path, st, 64, "a value", label).strip(TRIM.encode()) == b"null"
        ):
            return union_literal(none_literal(), none_variant)
        return self._first_variant(
            lt,
            label,
            f"{path}: expected {type_name(lt)}, but no variant fits",
            lambda variant: self.from_path(path, variant, label),
        )

    def _blob(
        self, path: str, st: os.stat_result, lt: LiteralType, label: str, *, tree: bool
    ) -> Literal:
        is_dir = stat.S_ISDIR(st.st_mode)
        if tree and not is_dir:
            raise DataError(
                f"{label}: {path}: expected a directory ({type_name(lt)}), found a file"
            )
        if not tree and is_dir:
            raise DataError(
                f"{label}: {path}: expected a file ({type_name(lt)}), found a directory"
            )
        lit = Literal()
        lit.scalar.blob.uri = self.plan(path, st, label, tree=tree)
        lit.scalar.blob.metadata.type.CopyFrom(lt.blob)
        return lit

    def plan(self, path: str, st: os.stat_result, label: str, *, tree: bool) -> str:
        """Plan uploads for a file or a whole tree; returns the URI the literal will hold.

        A tree is walked once now, every entry checked before anything is
        uploaded; while the outputs' trees add up to ``TREE_KEPT`` files, a tree
        is uploaded from that walk, past that it is walked again by the store
        while it uploads (one transfer for the tree, nothing kept per file).
        Its Dir digest is built as files go up.
        """
        if not self.upload:
            return os.path.abspath(path)
        if not self.raw_prefix:
            # Only a blob needs the prefix: primitives-only outputs upload without it.
            raise CopilotError(
                f"{label}: {path} is to be uploaded, but no raw-output prefix was given "
                "(--to-raw-output)",
                kind=NON_RECOVERABLE,
            )
        real = self.contained(path, label)
        rel = self.relative(path, label)
        uri = join_uri(self.raw_prefix, rel)
        depth = rel.count("/") + 1
        if not tree:
            self.tally.add(st.st_size, depth, label, path)
            self.transfers.append(Transfer(real, uri, label, st.st_size, inside=self.root))
            return uri
        kept: list[tuple[str, str, int]] | None = []
        room = TREE_KEPT - self.kept_files
        for entry in self.tree_files(path, label, depth):
            child, _, size = entry
            self.tally.add(size, depth + child.count("/") + 1, label, f"{path}/{child}")
            if kept is not None:
                kept.append(entry)
                if len(kept) > room:
                    kept = None
        if kept is not None:
            self.kept_files += len(kept)
            self.tree_sizes[uri] = {rel: size for rel, _, size in kept}
        digest = DirDigest()
        self.dir_digests[uri] = digest
        walk: Any = (
            kept.__iter__
            if kept is not None
            else functools.partial(self.tree_files, path, label, depth)
        )
        self.transfers.append(
            Transfer(real, uri, label, tree=True, leaves=walk, sink=digest.add, inside=self.root)
        )
        return uri

    def tree_files(self, path: str, label: str, depth: int = 0) -> Iterator[tuple[str, str, int]]:
        """``(relative path, source, size)`` of every file under ``path``, each checked
        (nothing leads out of the output dir, nothing blocks), in the order of the
        relative paths as UTF-8 bytes: the Dir digest's order.  Depth first with a
        stack of its own (a tree 10,000 levels deep is an error about its paths, not
        a Python recursion error); ``depth`` is the tree's own below the output dir,
        for the depth limit, checked before a directory is entered."""
        # Symlinked directories are refused, so a plain entry's real path is the
        # tree's real path plus its relative path: no realpath() per file.
        real_base = real_path(path)
        stack = [("", iter(self._sorted_entries(path, "", label)))]
        while stack:
            rel, entries = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                continue
            name, is_dir, size, is_link = entry
            child = f"{rel}/{name}" if rel else name
            if is_dir:
                self.tally.depth(depth + child.count("/") + 1, label, f"{path}/{child}")
                stack.append((child, iter(self._sorted_entries(path, child, label))))
                continue
            local = os.path.join(path, *child.split("/"))
            src = real_path(local) if is_link else os.path.join(real_base, *child.split("/"))
            yield child, src, size

    def _sorted_entries(self, top: str, rel: str, label: str) -> list[tuple[str, bool, int, bool]]:
        """A directory's entries, checked, as ``(name, is_dir, size, is_link)`` in the
        digest's order: a directory sorts as its name and a "/", which is where its
        files sort among its siblings' names when whole relative paths are compared."""
        current = os.path.join(top, *rel.split("/")) if rel else top
        try:
            with os.scandir(current) as it:
                listed = [(e.name, e.path, e.is_symlink()) for e in it]
        except OSError as exc:
            raise DataError(f"{label}: cannot list {short_path(current)}: {exc.strerror}") from None
        found: list[tuple[bytes, str, bool, int, bool]] = []
        for name, full, is_link in listed:
            if name.endswith(TMP_SUFFIX):
                continue
            est = self.inspect(full, label)
            if est is None:
                continue
            is_dir = stat.S_ISDIR(est.st_mode)
            if is_dir and is_link:
                raise DataError(
                    f"{label}: {full} is a symlink to a directory; refused "
                    "(copy the directory instead)"
                )
            key = name.encode("utf-8", "surrogateescape") + (b"/" if is_dir else b"")
            found.append((key, name, is_dir, est.st_size, is_link))
        found.sort()
        return [(name, is_dir, size, is_link) for _, name, is_dir, size, is_link in found]

    def _entries(self, path: str, label: str) -> list[str]:
        try:
            names = os.listdir(path)
        except OSError as exc:
            raise DataError(f"{label}: cannot list {path}: {exc.strerror}") from None
        return sorted(n for n in names if not n.startswith(".") and not n.endswith(TMP_SUFFIX))

    def _collection_dir(self, path: str, lt: LiteralType, label: str) -> Literal:
        by_index: dict[int, str] = {}
        for name in self._entries(path, label):
            stem = name.split(".", 1)[0]
            if not stem.isdigit() or (len(stem) > 1 and stem[0] == "0"):
                raise DataError(
                    f"{label}: {os.path.join(path, name)}: a list directory holds entries "
                    "named 0, 1, 2, ...; found an entry with another name"
                )
            index = int(stem)
            if index in by_index:
                raise DataError(
                    f"{label}: two entries for element {index}: "
                    f"{os.path.join(path, by_index[index])}, {os.path.join(path, name)}"
                )
            by_index[index] = name
        missing = [i for i in range(len(by_index)) if i not in by_index]
        if missing:
            raise DataError(
                f"{label}: {path}: element {missing[0]} is missing "
                f"(found {len(by_index)} entries up to {max(by_index)})"
            )
        lit = Literal()
        lit.collection.SetInParent()
        for i in range(len(by_index)):
            item = self.from_path(
                os.path.join(path, by_index[i]), lt.collection_type, f"{label}[{i}]"
            )
            lit.collection.literals.add().CopyFrom(item)
        return lit

    def _map_dir(self, path: str, lt: LiteralType, label: str) -> Literal:
        lit = Literal()
        lit.map.SetInParent()
        for name in self._entries(path, label):
            item = self.from_path(os.path.join(path, name), lt.map_value_type, f"{label}[{name!r}]")
            lit.map.literals[name].CopyFrom(item)
        return lit

    # -- documents and structs ----------------------------------------------------

    def _document(self, path: str, st: os.stat_result, label: str, want: type) -> Any:
        data = self.read(path, st, MAX_DOCUMENT_BYTES, "a JSON or YAML document", label)
        return document_holding(data, path, label, want)

    def path_value(self, value: Any, lt: LiteralType, label: str) -> Literal:
        """A File/Dir/dataset given by path in a document: inside the output dir, or remote."""
        if not isinstance(value, str) or not value:
            raise DataError(f"{label}: expected {type_name(lt)} as a path, found {_short(value)}")
        if "://" in value and protocol_of(value) != "file":
            return remote_literal(value, lt)
        path = self.local_path(value, self.base_dir, label)
        return self.from_path(path, lt, label)

    def local_path(self, value: str, base: str, label: str) -> str:
        """A local path (or ``file://`` URI) named in a document, made absolute from
        ``base`` and refused unless it lies in the output directory, links resolved."""
        local = value.removeprefix("file://")
        path = os.path.normpath(local if os.path.isabs(local) else os.path.join(base, local))
        if self.beneath.resolve(path) is None:
            raise DataError(
                f"{label}: path {value} is outside the output directory; refused", origin=USER
            )
        return path


def _typo_hint(close: str | None) -> str:
    return f"; the command wrote {close!r} there: a typo?" if close else ""
