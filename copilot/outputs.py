"""Outputs: the output dir -> uploads + ``outputs.pb`` (or ``error.pb``).

Order matters and is the point of this module:

1. if the container wrote ``_ERROR``, that is the outcome (origin USER);
2. every declared output is converted (files, or a whole-outputs document)
   before anything is uploaded, so a bad output costs no transfer;
3. uploads run concurrently within the store's bound;
4. ``outputs.pb`` is written last, only after every upload succeeded, so a
   reader never sees outputs that point at missing data.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from dataclasses import dataclass, field

from flyteidl2.core import interface_pb2, literals_pb2

from copilot.constants import (
    DEFAULT_MAX_PRIMITIVE_BYTES,
    ERROR_DOCUMENT_NAME,
    ERROR_FILE,
    MAX_DOCUMENT_BYTES,
    OUTPUTS_DOCUMENT_NAME,
)
from copilot.error_documents import download_error
from copilot.errors import NON_RECOVERABLE, RECOVERABLE, USER, CopilotError, DataError, UsageError
from copilot.literals.from_files import OutputReader
from copilot.literals.types import MULTIPART, mismatch
from copilot.literals.values import parse_document
from copilot.literals.walk import blobs
from copilot.modes import MetadataFormat, StructEncoding, UploadMode
from copilot.protobuf import parse_message
from copilot.storage import Store, Transfer, join_uri, protocol_of
from copilot.validation import Validation

log = logging.getLogger("copilot")

DOCUMENT_NAMES = {"JSON": "outputs.json", "YAML": "outputs.yaml", "PROTO": "outputs.pb"}

#: The first line of ``_ERROR`` that marks a failure a retry cannot fix.
PERMANENT_MARKER = "NON_RECOVERABLE"
MAX_ERROR_FILE_BYTES = 1 << 20


class UserError(CopilotError):
    """The main container reported its own failure through ``_ERROR``."""


@dataclass
class UploadOptions:
    """What to read and where to put it; mirrors the ``sidecar`` command's flags."""

    from_local_dir: str
    to_output_prefix: str
    to_raw_output: str = ""
    interface: interface_pb2.TypedInterface | None = None
    format: MetadataFormat = MetadataFormat.JSON
    mode: UploadMode = UploadMode.UPLOAD_ON_EXIT
    meta_output_name: str = OUTPUTS_DOCUMENT_NAME
    err_output_name: str = ERROR_DOCUMENT_NAME
    max_primitive_bytes: int = DEFAULT_MAX_PRIMITIVE_BYTES
    struct_encoding: StructEncoding = StructEncoding.MSGPACK
    #: Content hash recorded on uploaded File / Dir outputs (copilot.digests): sha256 or none.
    hash_outputs: str = "sha256"

    def validate(self) -> None:
        """Required fields present; enum fields made members (text is accepted, any case)."""
        if self.hash_outputs not in ("sha256", "none"):
            raise UsageError(
                f"sidecar: --hash-outputs: expected sha256 or none, found {self.hash_outputs!r}"
            )
        if not self.from_local_dir:
            raise UsageError("sidecar: --from-local-dir is required")
        if not self.to_output_prefix:
            raise UsageError("sidecar: --to-output-prefix is required")
        self.format = MetadataFormat.parse(self.format, "sidecar: --format")
        self.mode = UploadMode.parse(self.mode, "sidecar: --upload-mode")
        self.struct_encoding = StructEncoding.parse(
            self.struct_encoding, "sidecar: --struct-encoding"
        )

    def declared(self) -> list[tuple[str, interface_pb2.Variable]]:
        if self.interface is None:
            return []
        return [(e.key, e.value) for e in self.interface.outputs.variables]


@dataclass
class UploadResult:
    outputs_uri: str | None
    literals: literals_pb2.LiteralMap
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    skipped_reason: str = ""
    transfers: list = field(default_factory=list)


def read_user_error(reader: OutputReader, directory: str) -> UserError | None:
    """The container's own failure report, if it wrote ``_ERROR``."""
    path = os.path.join(directory, ERROR_FILE)
    st = reader.inspect(path, "the error file")
    if st is None:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{path}: the error file must be a regular file; refused")
    if st.st_size > MAX_ERROR_FILE_BYTES:
        raise DataError(
            f"{path}: the error file is {st.st_size} bytes; at most {MAX_ERROR_FILE_BYTES} allowed"
        )
    with open(path, "rb") as fh:
        text = fh.read(MAX_ERROR_FILE_BYTES).decode("utf-8", errors="replace")
    kind = RECOVERABLE
    first, _, rest = text.partition("\n")
    if first.strip().upper() in (PERMANENT_MARKER, RECOVERABLE):
        kind = NON_RECOVERABLE if first.strip().upper() == PERMANENT_MARKER else RECOVERABLE
        text = rest
    return UserError(f"User Error: {text.strip()}", kind=kind, origin=USER)


class _Document:
    """A whole-outputs document the container may write instead of one file per output."""

    def __init__(self, reader: OutputReader, directory: str, fmt: str, names: set[str]) -> None:
        self.values: dict | None = None
        self.literals: literals_pb2.LiteralMap | None = None
        self.path = os.path.join(directory, DOCUMENT_NAMES[fmt])
        # A declared output called "outputs" owns outputs.<ext> as its own file.
        if "outputs" in names:
            return
        st = reader.inspect(self.path, "outputs document")
        if st is None:
            return
        label = "outputs document"
        data = reader.read(self.path, st, MAX_DOCUMENT_BYTES, "an outputs document", label)
        if fmt == "PROTO":
            self.literals = parse_message(literals_pb2.LiteralMap, data, self.path)
            return
        values = parse_document(data, self.path, label)
        if not isinstance(values, dict):
            raise DataError(
                f"{self.path}: expected an object of output name -> value, "
                f"found {type(values).__name__}"
            )
        self.values = values

    @classmethod
    def none(cls) -> _Document:
        """No document (the one there could not be read)."""
        doc = cls.__new__(cls)
        doc.values, doc.literals, doc.path = None, None, ""
        return doc

    def has(self, name: str) -> bool:
        if self.literals is not None:
            return name in self.literals.literals
        return self.values is not None and name in self.values


def _adopt_literal(
    reader: OutputReader, lit: literals_pb2.Literal, var: interface_pb2.Variable, label: str
) -> literals_pb2.Literal:
    """A literal from outputs.pb: type-checked; local blob paths planned for upload."""
    reason = mismatch(lit, var.type, label)
    if reason:
        raise DataError(reason)
    out = literals_pb2.Literal()
    out.CopyFrom(lit)
    for _, holder, node_label in blobs(out, label):
        uri = holder.uri
        if "://" in uri and protocol_of(uri) != "file":
            continue  # already remote: recorded as given
        local = uri.removeprefix("file://")
        path = local if os.path.isabs(local) else os.path.join(reader.root, local)
        st = reader.inspect(path, node_label)
        if st is None:
            raise DataError(f"{node_label}: {path} named in outputs.pb does not exist")
        holder.uri = reader.plan(path, st, node_label, tree=stat.S_ISDIR(st.st_mode))
    return out


class EagerUploader:
    """``UPLOAD_EAGER``: upload declared File outputs while the main container still runs.

    A file counts as complete once its size, mtime and inode have stayed the
    same for ``settle`` polls and it was last written at least that long ago.
    What was uploaded early is remembered with that signature; at exit a file
    whose signature still matches is not sent again, and one that changed is
    uploaded again, so the outputs are always the final content.
    """

    def __init__(
        self, store: Store, opts: UploadOptions, *, poll: float = 1.0, settle: int = 2
    ) -> None:
        import threading

        self.store = store
        self.opts = opts
        self.poll = poll
        self.settle = settle
        self.reader = OutputReader(opts.from_local_dir, opts.to_raw_output)
        self.uploaded: dict[str, tuple[tuple[int, int, int], str]] = {}
        #: SHA-256 of what was sent early, by destination URI.
        self.digests: dict[str, str] = {}
        self._seen: dict[str, tuple[tuple[int, int, int], int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="copilot-eager", daemon=True)

    def _files(self) -> list[tuple[str, str]]:
        out = []
        for name, var in self.opts.declared():
            lt = var.type
            if lt.WhichOneof("type") == "union_type":
                blobs = [v for v in lt.union_type.variants if v.WhichOneof("type") == "blob"]
                lt = blobs[0] if blobs else lt
            if lt.WhichOneof("type") == "blob" and lt.blob.dimensionality != MULTIPART:
                out.append((name, f"output {name!r}"))
        return out

    def scan(self) -> None:
        now = time.time()
        for name, label in self._files():
            try:
                path = self.reader.locate(self.opts.from_local_dir, name, label)
                if path is None:
                    continue
                st = os.lstat(path)
            except (DataError, OSError):
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            sig = (st.st_size, st.st_mtime_ns, st.st_ino)
            real = os.path.realpath(path)
            if real in self.uploaded and self.uploaded[real][0] == sig:
                continue
            previous = self._seen.get(real)
            count = previous[1] + 1 if previous and previous[0] == sig else 1
            self._seen[real] = (sig, count)
            if count < self.settle or now - st.st_mtime < self.settle * self.poll:
                continue
            uri = self.reader.remote_for(path)
            try:
                self.store.upload([Transfer(real, uri, label, st.st_size)], self.digests)
            except CopilotError as exc:
                log.info("early upload of %s failed (%s); it will be sent at exit", path, exc)
                continue
            self.uploaded[real] = (sig, uri)
            log.info("uploaded %s early to %s", path, uri)

    def _loop(self) -> None:
        while not self._stop.wait(self.poll):
            self.scan()

    def start(self) -> EagerUploader:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def still_valid(self, t: Transfer) -> bool:
        """Whether ``t`` was already uploaded with exactly this content."""
        done = self.uploaded.get(t.src)
        if done is None or done[1] != t.dst:
            return False
        try:
            st = os.lstat(t.src)
        except OSError:
            return False
        return done[0] == (st.st_size, st.st_mtime_ns, st.st_ino)


def convert_outputs(
    opts: UploadOptions, reader: OutputReader, problems: list[str] | None = None
) -> literals_pb2.LiteralMap:
    """Every declared output as a literal (uploads planned on ``reader``, not run).

    The first problem raises a :class:`DataError`; with ``problems``, each one is
    recorded there instead and the outputs that do convert are returned.
    """
    declared = opts.declared()
    names = {name for name, _ in declared}
    try:
        doc = _Document(reader, opts.from_local_dir, opts.format, names)
    except DataError as exc:
        if problems is None:
            raise
        problems.append(exc.message)
        doc = _Document.none()
    out = literals_pb2.LiteralMap()
    for name, var in declared:
        label = f"output {name!r}"
        try:
            path = reader.locate(opts.from_local_dir, name, label)
            if path is not None or not doc.has(name):
                where = path or os.path.join(opts.from_local_dir, name)
                lit = reader.from_path(where, var.type, label)
            elif doc.literals is not None:
                lit = _adopt_literal(reader, doc.literals.literals[name], var, label)
            else:
                assert doc.values is not None
                lit = reader.from_value(doc.values[name], var.type, label)
        except DataError as exc:
            if problems is None:
                raise
            problems.append(exc.message)
            continue
        out.literals[name].CopyFrom(lit)
    return out


#: The raw-output prefix a validation plans against (nothing is ever sent there).
VALIDATION_PREFIX = "validate://raw"


def validate_outputs(opts: UploadOptions) -> Validation:
    """The sidecar's own reading of ``opts.from_local_dir`` (same conversion, same
    refusals, same messages), collecting every problem instead of stopping at the first."""
    reader = OutputReader(
        opts.from_local_dir,
        opts.to_raw_output or VALIDATION_PREFIX,
        max_primitive_bytes=opts.max_primitive_bytes,
        struct_encoding=opts.struct_encoding,
    )
    problems: list[str] = []
    try:
        user_error = read_user_error(reader, opts.from_local_dir)
    except DataError as exc:
        problems.append(exc.message)
    else:
        if user_error is not None:
            problems.append(
                f"the container reported a failure in {ERROR_FILE}: {user_error.message}"
            )
    literals = convert_outputs(opts, reader, problems)
    sources: dict[str, str] = {}
    for lit in literals.literals.values():
        for _, blob, _ in blobs(lit):
            uri = blob.uri.rstrip("/")
            for t in reader.transfers:
                if t.dst == uri:
                    sources[blob.uri] = t.src
                elif t.dst.startswith(uri + "/"):
                    rel = t.dst[len(uri) + 1 :]
                    sources[blob.uri] = t.src[: -len(rel)].rstrip("/") or t.src
    return Validation(literals, problems, sources)


def upload_outputs(
    store: Store, opts: UploadOptions, eager: EagerUploader | None = None
) -> UploadResult:
    """Convert, upload and record the outputs the container wrote.

    Raises :class:`~copilot.errors.CopilotError` on any failure; ``outputs.pb``
    is then not written.
    """
    opts.validate()
    if eager is not None:
        eager.stop()  # the main container is done; nothing more is sent early
    started = time.monotonic()
    empty = literals_pb2.LiteralMap()
    if not opts.declared():
        return UploadResult(None, empty, skipped_reason="the interface declares no outputs")
    err_uri = join_uri(opts.to_output_prefix, opts.err_output_name)
    earlier = download_error(store, err_uri)
    if earlier is not None:
        # download already recorded the first cause; the outputs cannot be right.
        return UploadResult(
            None, empty, skipped_reason=f"download failed first ({earlier.message})"
        )
    stale_error = store.exists(err_uri)  # an earlier sidecar run's own document
    reader = OutputReader(
        opts.from_local_dir,
        opts.to_raw_output,
        upload=opts.mode != "DO_NOT_UPLOAD",
        max_primitive_bytes=opts.max_primitive_bytes,
        struct_encoding=opts.struct_encoding,
    )
    try:
        user_error = read_user_error(reader, opts.from_local_dir)
        if user_error is not None:
            raise user_error
        literals = convert_outputs(opts, reader)
    except DataError as exc:
        # What the container wrote (or failed to write) is the container's failure.
        exc.origin = USER
        raise
    pending = reader.transfers
    digests: dict[str, str] | None = {} if opts.hash_outputs == "sha256" else None
    if eager is not None:
        pending = [t for t in pending if not eager.still_valid(t)]
        if digests is not None:
            sent = {t.dst for t in reader.transfers} - {t.dst for t in pending}
            digests.update({k: v for k, v in eager.digests.items() if k in sent})
    stats: dict[str, int] = {"files": len(reader.transfers) - len(pending)}  # sent early
    copied = store.upload(pending, digests, stats)
    if digests is not None:
        from copilot.digests import apply_hashes

        digests.update({uri: d.hexdigest() for uri, d in reader.dir_digests.items()})
        apply_hashes(literals, digests)
    outputs_uri = join_uri(opts.to_output_prefix, opts.meta_output_name)
    if stale_error:
        # Flyte's reader checks the error document first: an earlier run's must go.
        store.delete(err_uri)
        log.info("removed %s left by an earlier sidecar run", err_uri)
    store.write_bytes(
        outputs_uri, literals.SerializeToString(deterministic=True), what="write outputs"
    )
    seconds = time.monotonic() - started
    log.info(
        "uploaded %d outputs (%d files, %d bytes) and wrote %s in %.3fs",
        len(literals.literals),
        stats["files"],
        copied,
        outputs_uri,
        seconds,
        extra={"fields": {"files": stats["files"], "bytes": copied, "seconds": seconds}},
    )
    return UploadResult(
        outputs_uri, literals, stats["files"], copied, seconds, transfers=reader.transfers
    )
