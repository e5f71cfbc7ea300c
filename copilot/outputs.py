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
import time
from dataclasses import dataclass, field

from flyteidl2.core import literals_pb2

from copilot.constants import (
    ERROR_FILE,
)
from copilot.eager import EagerUploader
from copilot.error_documents import download_error
from copilot.errors import NON_RECOVERABLE, USER, CopilotError, DataError, StorageError
from copilot.literals.output_dir import OutputDir
from copilot.literals.walk import blobs
from copilot.options import UploadOptions
from copilot.storage import Store, Transfer, join_uri
from copilot.validation import Validation

log = logging.getLogger("copilot")


@dataclass
class UploadResult:
    outputs_uri: str | None
    literals: literals_pb2.LiteralMap
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    skipped_reason: str = ""
    transfers: list = field(default_factory=list)


def clear_leftovers(store: Store, reader: OutputDir, trees: list[Transfer]) -> None:
    """Remove what is already under each Dir's prefix and that the upload will not
    replace (a killed attempt's objects, say): a Dir in the store holds exactly the
    files uploaded for it, and a download never takes an old object for one of
    them.  Usually one listing that finds nothing; a re-run onto the same prefix
    replaces its objects and deletes none."""
    for tree in trees:
        listed = store.list_tree(tree.dst, keep=reader.foreign(tree, sizes=False))
        found = [join_uri(tree.dst, e.relpath) for e in listed]
        for uri in found:
            store.delete(uri)
        if found:
            log.warning(
                "%s: removed %d object(s) left under %s before uploading it",
                tree.label, len(found), tree.dst,
            )  # fmt: skip


def remove_uploaded(store: Store, transfers: list[Transfer]) -> None:
    """Delete what ``transfers`` put in the store (a tree: everything under its
    prefix), after a refusal; a failure to delete is a warning, not the cause."""
    removed = 0
    for t in transfers:
        try:
            targets = [e.uri for e in store.list_tree(t.dst)] if t.tree else [t.dst]
            for uri in targets:
                store.delete(uri)
                removed += 1
        except CopilotError as exc:
            log.warning("could not remove what was uploaded to %s: %s", t.dst, exc.message)
    if removed:
        log.info("removed %d uploaded objects of the refused outputs", removed)


#: The raw-output prefix a validation plans against (nothing is ever sent there).
VALIDATION_PREFIX = "validate://raw"


def validate_outputs(opts: UploadOptions) -> Validation:
    """The sidecar's own reading of ``opts.from_local_dir`` (same conversion, same
    refusals, same messages), collecting every problem instead of stopping at the first."""
    reader = OutputDir(
        opts.from_local_dir,
        opts.to_raw_output or VALIDATION_PREFIX,
        max_primitive_bytes=opts.max_primitive_bytes,
        struct_encoding=opts.struct_encoding,
        limits=opts.limits,
    )
    problems: list[str] = []
    try:
        user_error = reader.user_error()
    except DataError as exc:
        problems.append(exc.message)
    else:
        if user_error is not None:
            problems.append(
                f"the container reported a failure in {ERROR_FILE}: {user_error.message}"
            )
    literals = reader.outputs(opts.declared(), opts.format, problems)
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
    reader = OutputDir(
        opts.from_local_dir,
        opts.to_raw_output,
        upload=opts.mode != "DO_NOT_UPLOAD",
        max_primitive_bytes=opts.max_primitive_bytes,
        struct_encoding=opts.struct_encoding,
        limits=opts.limits,
    )
    try:
        user_error = reader.user_error()
        if user_error is not None:
            raise user_error
        literals = reader.outputs(opts.declared(), opts.format)
    except CopilotError as exc:
        if isinstance(exc, DataError):
            # What the container wrote (or failed to write) is the container's failure.
            exc.origin = USER
        if eager is not None and eager.uploaded:
            # Sent early, but the outputs are refused: nothing of them stays.
            remove_uploaded(
                store, [Transfer(src, uri, "") for src, (_, uri) in eager.uploaded.items()]
            )
        raise
    pending = reader.transfers
    digests: dict[str, str] | None = {} if opts.hash_outputs == "sha256" else None
    if eager is not None:
        pending = [t for t in pending if not eager.still_valid(t)]
        if digests is not None:
            sent = {t.dst for t in reader.transfers} - {t.dst for t in pending}
            digests.update({k: v for k, v in eager.digests.items() if k in sent})
    stats: dict[str, int] = {"files": len(reader.transfers) - len(pending)}  # sent early
    trees = [t for t in pending if t.tree]
    clear_leftovers(store, reader, trees)
    try:
        copied = store.upload(pending, digests, stats)
    except CopilotError as exc:
        if exc.origin == USER:
            # Refused mid-way (a file swapped for a link, say): what was sent of
            # these outputs does not stay behind.
            remove_uploaded(store, reader.transfers)
        raise
    for tree in trees:
        foreign = [e.relpath for e in store.list_tree(tree.dst, keep=reader.foreign(tree))]
        if foreign:
            raise StorageError(
                f"{tree.label}: {len(foreign)} object(s) under {tree.dst} were not written by "
                f"this upload, or were changed after it (another writer on the same prefix?), "
                f"e.g. {foreign[0]}; the directory would not be what was uploaded",
                kind=NON_RECOVERABLE,
            )
    if digests is not None:
        from copilot.literals.digests import apply_hashes

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
