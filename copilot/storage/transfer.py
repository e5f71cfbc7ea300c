"""One transfer's description and the rules every transfer follows, whichever
way it goes: a temporary name until whole, a staged directory published in one
rename, an upload's file opened once and checked, a download's hash verified,
errors labelled with the output or input they belong to."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from copilot.constants import TMP_SUFFIX
from copilot.errors import NON_RECOVERABLE, USER, CopilotError, DataError, StorageError
from copilot.paths import Openers, open_source
from copilot.storage.client import RemoteEntry
from copilot.storage.errors import storage_error
from copilot.storage.files import LocalSource
from copilot.storage.retry import RESOURCE_ERRNOS
from copilot.storage.uris import display_uri, join_uri

if TYPE_CHECKING:
    from copilot.progress import Progress
    from copilot.storage.callback import TransferCallback


@dataclass(frozen=True)
class Transfer:
    """Copy ``src`` to ``dst`` (one local path, one URI); ``label`` names it in errors.

    ``size``, when known, is checked after the copy; ``sha256`` too, for a download.
    """

    src: str
    dst: str
    label: str
    size: int | None = None
    #: For a download: the SHA-256 (lowercase hex) the bytes must have, checked as
    #: they arrive; a mismatch fails the transfer for good.
    sha256: str | None = None
    #: For a download into a staged directory: ``dst`` is not visible under its real
    #: name until the whole tree is published, so it is written in place, with no
    #: temporary name (and rename) of its own.
    staged: bool = False
    #: A whole tree: for a download ``src`` is a prefix and ``dst`` a (staged)
    #: directory that receives every object under it at its relative path; for an
    #: upload ``leaves`` gives the files and ``dst`` is the prefix they go under.
    #: The store lists or walks it while the transfers run: nothing is held per file.
    tree: bool = False
    #: Download: checks a relative path from the listing before it becomes a local
    #: one (returns it, or raises naming it): names from data never leave ``dst``.
    check: Callable[[str], str] | None = None
    #: Upload: ``(relative path, source, size)`` of every file, in a fixed order.
    leaves: Callable[[], Iterable[tuple[str, str, int]]] | None = None
    #: Upload: told ``(index in that order, relative path, size, SHA-256)`` as each
    #: file is sent (when digests are asked for); files finish in any order, but
    #: never more than the store's ``tree_window`` after the first unfinished one.  Download:
    #: told the same of each file as it lands (index 0: in no particular order).
    sink: Callable[[int, str, int, str], None] | None = None
    #: Download: compute the file's SHA-256 as it arrives, for its tree's ``sink``
    #: (a Dir digest checked once the tree is whole), with nothing to compare it to.
    hashed: bool = False
    #: Upload: the real directory ``src`` must lie in (the sidecar's output dir).
    #: The file is opened beneath it one component at a time, following no link,
    #: and sent from that descriptor (:func:`copilot.paths.open_source`); None for
    #: a file a person named on this machine (links followed).
    inside: str | None = None


def staging_dir(final: str) -> str:
    """The hidden sibling a directory is filled in before :func:`publish` renames it:
    same parent, so the rename stays on one file system."""
    parent, name = os.path.split(final.rstrip(os.sep))
    return os.path.join(parent, f".{name}{TMP_SUFFIX}")


def publish(staged: str, final: str) -> None:
    """Move a filled staging directory to its real name in one rename.

    Whatever is at ``final`` already (an earlier run's copy) is moved aside first and
    removed after, so the real name never shows a mix of the two.
    """
    try:
        if not os.path.lexists(final):
            os.rename(staged, final)
            return
        old = staged + ".old"
        shutil.rmtree(old, ignore_errors=True)
        os.rename(final, old)
        os.rename(staged, final)
    except OSError as exc:
        raise StorageError(f"cannot move {staged} to {final}: {exc.strerror}") from None
    if os.path.isdir(old) and not os.path.islink(old):
        shutil.rmtree(old, ignore_errors=True)
    else:
        unlink_quietly(old)


def discard(staged: str) -> None:
    """Remove a staging directory that will not be published (a failed download)."""
    shutil.rmtree(staged, ignore_errors=True)


def unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class Attempt:
    """Removes the temporary file of an attempt that fails.

    A class, not a ``@contextmanager`` generator: a local copy of 2,000 small
    files enters one per file, and the generator cost about 5 us each.
    """

    __slots__ = ("tmp",)

    def __init__(self, tmp: str | None) -> None:
        self.tmp = tmp

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is not None and self.tmp is not None:
            unlink_quietly(self.tmp)


def open_for_upload(t: Transfer, openers: Openers) -> LocalSource:
    """The file an upload sends, opened once (beneath ``t.inside`` when set, through
    the run's opener for that directory); its size is checked against what was
    planned: a file that changed in between is not the output that was checked."""
    opener = openers.beneath(t.inside) if t.inside is not None else None
    fd, st = open_source(t.src, t.inside, t.label, opener)
    if t.size is not None and st.st_size != t.size:
        os.close(fd)
        raise DataError(
            f"{t.label}: {t.src} changed size after it was checked "
            f"({t.size} then {st.st_size} bytes); refused",
            origin=USER,
        )
    return LocalSource(fd, st.st_size, t.src)


def sent_whole(t: Transfer, source: LocalSource, sent: int) -> int:
    """The bytes an upload sent, checked: all of the file, and the file unchanged.
    A file that changed meanwhile was changed by the container's processes after
    it was declared done: refused as theirs (USER), and what was sent is removed."""
    now = os.fstat(source.fd).st_size
    if sent != source.size or now != source.size:
        raise DataError(
            f"{t.label}: {t.src} changed size while it was uploaded "
            f"({source.size} then {now} bytes); refused",
            origin=USER,
        )
    return sent


def local_path(uri: str) -> str:
    """The absolute path a ``file://`` URI or a plain path names."""
    return os.path.abspath(uri[len("file://") :] if uri.startswith("file://") else uri)


def verify(t: Transfer, digest: Any) -> None:
    """A downloaded file whose SHA-256 is not the one its literal carries: the data
    in the store is not what was written, and fetching it again cannot help."""
    if digest is None or not t.sha256:
        return
    actual = digest.hexdigest()
    if actual != t.sha256:
        raise StorageError(
            f"{display_uri(t.src)}: the content does not match the hash in its literal "
            f"(expected SHA-256 {t.sha256}, got {actual})",
            kind=NON_RECOVERABLE,
            retryable=False,
        )


def labelled(err: CopilotError, label: str) -> CopilotError:
    if label and not err.message.startswith(label + ":"):
        err.message = f"{label}: {err.message}"
        err.args = (err.message,)
    return err


# One transfer, either direction.  A download (and a local copy) lands under a
# temporary name and is renamed when complete, unless its directory is staged
# whole; an upload to an object store is atomic already.


def temp_name(t: Transfer, direction: str, made: set[str] | None = None) -> str | None:
    """Where a download writes (None for an upload); its directory made once."""
    if direction != "get":
        return None
    parent = os.path.dirname(t.dst) or "."
    if made is None or parent not in made:
        os.makedirs(parent, exist_ok=True)
        if made is not None:
            made.add(parent)
    return t.dst if t.staged else t.dst + TMP_SUFFIX


def finish_download(
    t: Transfer,
    tmp: str,
    final: str,
    cb: TransferCallback | None,
    written: int | None = None,
) -> int:
    """Check a download's size, move its temporary file into place, count the
    file (``written``: the size, when the copy counted it)."""
    got = os.path.getsize(tmp) if written is None else written
    if t.size is not None and got != t.size:
        raise StorageError(
            f"{t.label}: download of {display_uri(t.src)} ended short ({got} of {t.size} bytes)",
            retryable=True,
        )
    if tmp != final:
        os.replace(tmp, final)
    if cb is not None:
        cb.finish(got)
    return got


def transfer_error(t: Transfer, direction: str, exc: Exception) -> CopilotError:
    """A failed transfer as the error to report: the local side named when it
    failed (a write, a read), else the store's error for the object."""
    local = t.dst if direction == "get" else t.src
    if isinstance(exc, OSError) and exc.errno in RESOURCE_ERRNOS:
        # This machine ran short (open files, say) past --retries: copilot's own
        # trouble, and a later attempt may well have what it needs.
        what = "download to" if direction == "get" else "upload of"
        return labelled(StorageError(f"{what} {local}: {exc.strerror}"), t.label)
    if isinstance(exc, OSError) and exc.filename is not None:
        failed = os.path.abspath(os.fsdecode(exc.filename))
        if failed in (os.path.abspath(local), os.path.abspath(local) + TMP_SUFFIX):
            # The local side failed, not the store: name the file and the cause.
            if direction == "get":
                return labelled(StorageError(f"cannot write {local}: {exc.strerror}"), t.label)
            return labelled(DataError(f"cannot read {local}: {exc.strerror}", origin=USER), t.label)
    uri = t.src if direction == "get" else t.dst
    action = "download" if direction == "get" else "upload to"
    err = storage_error(exc, uri, action)
    if direction == "put" and err.message.endswith(": not found") and "://" in uri:
        # Nothing is "not found" on upload but the bucket itself.
        bucket = uri.split("://", 1)[1].split("/", 1)[0]
        err = StorageError(
            f"upload to {display_uri(uri)}: the bucket {bucket!r} does not exist "
            "(copilot does not create buckets)",
            kind=NON_RECOVERABLE,
        )
    return labelled(err, t.label)


def leaf_of(tree: Transfer, entry: RemoteEntry, progress: Progress | None) -> Transfer | None:
    """The transfer of one object found under a tree (None for a directory,
    which is made here)."""
    rel = tree.check(entry.relpath) if tree.check is not None else entry.relpath
    dest = os.path.join(tree.dst, *rel.split("/"))
    if entry.is_dir:
        os.makedirs(dest, exist_ok=True)
        return None
    if progress is not None:
        progress.expect(1, entry.size)
    return Transfer(
        entry.uri, dest, tree.label, entry.size, staged=True, hashed=tree.sink is not None
    )


def upload_leaves(tree: Transfer, progress: Progress | None) -> Iterator[tuple[int, Transfer]]:
    """Every file of an upload tree, numbered in its order."""
    assert tree.leaves is not None
    for index, (rel, src, size) in enumerate(tree.leaves()):
        if progress is not None:
            progress.expect(1, size)
        yield (
            index,
            Transfer(src, join_uri(tree.dst, rel), tree.label, size, inside=tree.inside),
        )
