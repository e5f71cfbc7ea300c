"""``UPLOAD_EAGER``: declared File outputs sent while the main container still runs.

What was sent early is remembered with the file's signature; the upload at exit
(:func:`copilot.outputs.upload_outputs`) sends again only what changed since, so
the outputs are always the final content.
"""

from __future__ import annotations

import logging
import time

from flyteidl2.core import interface_pb2

from copilot.errors import CopilotError
from copilot.literals.output_dir import OutputDir
from copilot.literals.types import MULTIPART
from copilot.options import UploadOptions
from copilot.storage import Store, Transfer

log = logging.getLogger("copilot")


def _single_files(declared: list[tuple[str, interface_pb2.Variable]]) -> list[tuple[str, str]]:
    """The declared outputs that are one file (a File, or a union holding one), with labels."""
    out = []
    for name, var in declared:
        lt = var.type
        if lt.WhichOneof("type") == "union_type":
            blobs = [v for v in lt.union_type.variants if v.WhichOneof("type") == "blob"]
            lt = blobs[0] if blobs else lt
        if lt.WhichOneof("type") == "blob" and lt.blob.dimensionality != MULTIPART:
            out.append((name, f"output {name!r}"))
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
        #: The declared single-file outputs, the only ones sent early.
        self.files = _single_files(opts.declared())
        self.poll = poll
        self.settle = settle
        self.reader = OutputDir(opts.from_local_dir, opts.to_raw_output, limits=opts.limits)
        self.uploaded: dict[str, tuple[tuple[int, int, int], str]] = {}
        #: SHA-256 of what was sent early, by destination URI.
        self.digests: dict[str, str] = {}
        self._seen: dict[str, tuple[tuple[int, int, int], int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="copilot-eager", daemon=True)

    def scan(self) -> None:
        now = time.time()
        for name, label in self.files:
            found = self.reader.regular_file(name, label)
            if found is None:
                continue
            path, st = found
            sig = (st.st_size, st.st_mtime_ns, st.st_ino)
            real = self.reader.beneath.resolve(path)
            if real is None:
                continue  # the final reading refuses it, with the reason
            if real in self.uploaded and self.uploaded[real][0] == sig:
                continue
            previous = self._seen.get(real)
            count = previous[1] + 1 if previous and previous[0] == sig else 1
            self._seen[real] = (sig, count)
            if count < self.settle or now - st.st_mtime < self.settle * self.poll:
                continue
            if not self.reader.tally.fits(st.st_size):
                continue  # past a limit: the reading at exit refuses the outputs
            uri = self.reader.remote_for(path, label)
            try:
                self.store.upload(
                    [Transfer(real, uri, label, st.st_size, inside=self.reader.root)],
                    self.digests,
                )
            except CopilotError as exc:
                log.info("early upload of %s failed (%s); it will be sent at exit", path, exc)
                continue
            self.uploaded[real] = (sig, uri)
            self.reader.tally.add(st.st_size, 1, label, path)
            log.info("uploaded %s early to %s", path, uri)

    def _loop(self) -> None:
        while not self._stop.wait(self.poll):
            self.scan()

    def start(self) -> EagerUploader:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def still_valid(self, t: Transfer) -> bool:
        """Whether ``t`` was already uploaded with exactly this content."""
        done = self.uploaded.get(t.src)
        if done is None or done[1] != t.dst:
            return False
        return done[0] == self.reader.signature(t.src)
