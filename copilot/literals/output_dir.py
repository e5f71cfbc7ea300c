"""The output directory as the sidecar reads it: one reader owns every read.

The container's error file (``_ERROR``), the optional whole-outputs document
(``outputs.json`` / ``.yaml`` / ``.pb``) and each declared output's file are
all read here, through :class:`~copilot.literals.from_files.OutputReader`'s
safe stat and bounded reads; :mod:`copilot.outputs` only orchestrates (read →
hash → upload → write the document).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from typing import Any

from flyteidl2.core import execution_pb2, interface_pb2, literals_pb2

from copilot.constants import ERROR_FILE, MAX_DOCUMENT_BYTES
from copilot.errors import NON_RECOVERABLE, RECOVERABLE, SYSTEM, USER, DataError, UserError
from copilot.literals.from_files import OutputReader
from copilot.literals.types import mismatch
from copilot.literals.values import parse_document
from copilot.literals.walk import blobs
from copilot.protobuf import parse_message
from copilot.storage import Transfer, protocol_of
from copilot.storage.client import RemoteEntry

DOCUMENT_NAMES = {"JSON": "outputs.json", "YAML": "outputs.yaml", "PROTO": "outputs.pb"}
#: The first line of ``_ERROR`` that marks a failure a retry cannot fix.
PERMANENT_MARKER = "NON_RECOVERABLE"
MAX_ERROR_FILE_BYTES = 1 << 20

Declared = list[tuple[str, interface_pb2.Variable]]


def container_document(data: bytes) -> UserError | None:
    """``_ERROR`` as the container's own binary ``ErrorDocument``, if it is one.

    Go's reader (``readErrorDocument``, flytecopilot/data/upload.go, Flyte
    #7960) takes the bytes as a document when they parse and the error has a
    code or a message; anything else is text.  Mind ``ContainerError.Kind``:
    ``NON_RECOVERABLE`` is 0, so a document that leaves ``kind`` out is
    permanent.  The bytes are forwarded as they are.
    """
    from google.protobuf.message import DecodeError

    doc = execution_pb2.ErrorDocument()
    try:
        doc.ParseFromString(data)
    except (DecodeError, ValueError):
        return None
    if not doc.error.code and not doc.error.message:
        return None
    kind = (
        RECOVERABLE
        if doc.error.kind == execution_pb2.ContainerError.RECOVERABLE
        else NON_RECOVERABLE
    )
    origin = SYSTEM if doc.error.origin == execution_pb2.ExecutionError.SYSTEM else USER
    message = f"{doc.error.code}: {doc.error.message}" if doc.error.code else doc.error.message
    return UserError(message, kind=kind, origin=origin, document=data)


class OutputsDocument:
    """A whole-outputs document the container may write instead of one file per
    output: its values (JSON / YAML) or its literals (``outputs.pb``), if any."""

    def __init__(
        self,
        values: dict[str, Any] | None = None,
        literals: literals_pb2.LiteralMap | None = None,
        path: str = "",
    ) -> None:
        self.values = values
        self.literals = literals
        self.path = path

    def has(self, name: str) -> bool:
        if self.literals is not None:
            return name in self.literals.literals
        return self.values is not None and name in self.values


class OutputDir(OutputReader):
    """Reads the output directory ``root``; blobs are planned under ``raw_prefix``."""

    def __init__(self, root: str, raw_prefix: str, **options: Any) -> None:
        super().__init__(root, raw_prefix, **options)
        #: The directory as given (messages name paths the way the user wrote them).
        self.directory = root

    def regular_file(self, name: str, label: str) -> tuple[str, os.stat_result] | None:
        """Output ``name``'s file and its stat if it is a regular file now, else None
        (what ``UPLOAD_EAGER`` polls; any problem is left to the final reading)."""
        try:
            path = self.locate(self.directory, name, label)
            if path is None:
                return None
            st = os.lstat(path)
        except (DataError, OSError):
            return None
        return (path, st) if stat.S_ISREG(st.st_mode) else None

    @staticmethod
    def signature(path: str) -> tuple[int, int, int] | None:
        """Size, mtime and inode: a file that keeps them is taken as unchanged."""
        try:
            st = os.lstat(path)
        except OSError:
            return None
        return (st.st_size, st.st_mtime_ns, st.st_ino)

    def foreign(self, tree: Transfer, sizes: bool = True) -> Callable[[RemoteEntry], bool]:
        """Whether an object listed under a tree's prefix is not (or, before the
        upload, will not be) one of the files uploaded for it, as a test a listing
        applies page by page (a Dir of 100,000 files is never held as a listing).
        With ``sizes`` (after the upload) each must also have the size that was
        sent: known from the checking walk for trees it kept, so a file the
        container changes afterwards is not taken for another writer; for a tree
        walked again as it went up, only its name is checked against the tree on
        disk."""
        sent = self.tree_sizes.get(tree.dst) if sizes else None

        def test(entry: RemoteEntry) -> bool:
            if entry.is_dir:
                return False
            if sent is not None:
                size = sent.get(entry.relpath)
                return size is None or (entry.size is not None and entry.size != size)
            try:  # a link inside the output dir was uploaded as its target: follow it
                st = os.stat(os.path.join(tree.src, *entry.relpath.split("/")))
            except OSError:
                return True
            return not stat.S_ISREG(st.st_mode)

        return test

    def user_error(self) -> UserError | None:
        """The container's own failure report, if it wrote ``_ERROR``."""
        path = os.path.join(self.directory, ERROR_FILE)
        st = self.inspect(path, "the error file")
        if st is None:
            return None
        if not stat.S_ISREG(st.st_mode):
            raise DataError(f"{path}: the error file must be a regular file; refused")
        if st.st_size > MAX_ERROR_FILE_BYTES:
            raise DataError(
                f"{path}: the error file is {st.st_size} bytes; "
                f"at most {MAX_ERROR_FILE_BYTES} allowed"
            )
        data = self.read(path, st, MAX_ERROR_FILE_BYTES, "an error file", "the error file")
        forwarded = container_document(data)
        if forwarded is not None:
            return forwarded
        text = data.decode("utf-8", errors="replace")
        kind = RECOVERABLE
        first, _, rest = text.partition("\n")
        if first.strip().upper() in (PERMANENT_MARKER, RECOVERABLE):
            kind = NON_RECOVERABLE if first.strip().upper() == PERMANENT_MARKER else RECOVERABLE
            text = rest
        return UserError(f"User Error: {text.strip()}", kind=kind, origin=USER)

    def document(self, fmt: str, names: set[str]) -> OutputsDocument:
        """The whole-outputs document in ``fmt``, or an empty one.  A declared output
        called ``outputs`` owns ``outputs.<ext>`` as its own file."""
        path = os.path.join(self.directory, DOCUMENT_NAMES[fmt])
        if "outputs" in names:
            return OutputsDocument()
        label = "outputs document"
        st = self.inspect(path, label)
        if st is None:
            return OutputsDocument()
        data = self.read(path, st, MAX_DOCUMENT_BYTES, "an outputs document", label)
        if fmt == "PROTO":
            return OutputsDocument(
                literals=parse_message(literals_pb2.LiteralMap, data, path), path=path
            )
        values = parse_document(data, path, label)
        if not isinstance(values, dict):
            raise DataError(
                f"{path}: expected an object of output name -> value, found {type(values).__name__}"
            )
        return OutputsDocument(values=values, path=path)

    def adopt(
        self, lit: literals_pb2.Literal, var: interface_pb2.Variable, label: str
    ) -> literals_pb2.Literal:
        """A literal from ``outputs.pb``: type-checked; local blob paths planned for upload."""
        reason = mismatch(lit, var.type, label)
        if reason:
            raise DataError(reason)
        out = literals_pb2.Literal()
        out.CopyFrom(lit)
        for _, holder, node_label in blobs(out, label):
            uri = holder.uri
            if "://" in uri and protocol_of(uri) != "file":
                continue  # already remote: recorded as given
            path = self.local_path(uri, self.root, node_label)
            st = self.inspect(path, node_label)
            if st is None:
                raise DataError(f"{node_label}: {path} named in outputs.pb does not exist")
            holder.uri = self.plan(path, st, node_label, tree=stat.S_ISDIR(st.st_mode))
        return out

    def outputs(
        self, declared: Declared, fmt: str, problems: list[str] | None = None
    ) -> literals_pb2.LiteralMap:
        """Every declared output as a literal (uploads planned, not run).

        The first problem raises a :class:`DataError`; with ``problems``, each one
        is recorded there instead and the outputs that do convert are returned.
        """
        try:
            return self._outputs(declared, fmt, problems)
        finally:
            self.beneath.close()  # the reading is done: the directory it kept open goes

    def _outputs(
        self, declared: Declared, fmt: str, problems: list[str] | None
    ) -> literals_pb2.LiteralMap:
        names = {name for name, _ in declared}
        try:
            doc = self.document(fmt, names)
        except DataError as exc:
            if problems is None:
                raise
            problems.append(exc.message)
            doc = OutputsDocument()
        out = literals_pb2.LiteralMap()
        for name, var in declared:
            label = f"output {name!r}"
            try:
                path = self.locate(self.directory, name, label)
                if path is not None or not doc.has(name):
                    where = path or os.path.join(self.directory, name)
                    lit = self.from_path(where, var.type, label)
                elif doc.literals is not None:
                    lit = self.adopt(doc.literals.literals[name], var, label)
                else:
                    assert doc.values is not None
                    lit = self.from_value(doc.values[name], var.type, label)
            except DataError as exc:
                if problems is None:
                    raise
                problems.append(exc.message)
                continue
            out.literals[name].CopyFrom(lit)
        return out
