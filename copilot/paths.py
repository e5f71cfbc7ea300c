"""Containment, in one place: names from data never leave their directory.

Both directions use these checks.  ``download`` builds paths from names that
come from the data (variable names, map keys, object keys under a Dir, blob
basenames): each must be one plain path component.  The sidecar reads what
the container wrote, and the container is not trusted: nothing may lead out
of the output dir (a symlink whose target is elsewhere, a path in a
whole-outputs document, a ``file://`` URI) or block the reader (a FIFO), so
anything but regular files and directories is named and refused.

Checking a path and then opening it by name leaves a gap a running container
can use (swap a checked file for a symlink to a secret).  So every file the
sidecar reads is opened once, by :func:`open_source`: one component at a time
from the output dir, no link followed, and the open descriptor's ``fstat``
checked; the bytes are then read from that descriptor only.
"""

from __future__ import annotations

import errno
import os
import stat

from copilot.errors import USER, DataError

#: How a directory on the way to a file is opened: a link there is refused.
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
#: How the file itself is opened: no link followed, and a FIFO does not block.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK


def safe_name(name: str, what: str, label: str) -> str:
    """Return ``name`` if it is one plain path component, else raise naming it."""
    bad = None
    if name in ("", ".", ".."):
        bad = "is empty or a dot name" if not name else f"is {name!r}"
    elif "/" in name or "\\" in name:
        bad = "contains a path separator"
    elif "\x00" in name:
        bad = "contains a NUL byte"
    elif len(name.encode("utf-8", "surrogatepass")) > 255:
        bad = f"is {len(name)} characters long (a file name holds at most 255 bytes)"
    if bad:
        shown = name if len(name) <= 80 else name[:77] + "..."
        raise DataError(
            f"{label}: {what} {shown!r} {bad}; it cannot be used as a file name "
            "inside the input directory"
        )
    return name


def safe_relpath(rel: str, label: str) -> str:
    """Check every component of a relative object path (``a/b/c``)."""
    if rel.startswith("/"):
        raise DataError(f"{label}: object path {rel!r} is absolute")
    for part in rel.split("/"):
        safe_name(part, "object path component", label)
    return rel


def kind_of_mode(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


def short_path(path: str, limit: int = 160) -> str:
    """A path fit for a one-line message (deeply nested ones are elided in the middle)."""
    if len(path) <= limit:
        return path
    return path[: limit // 2] + "…" + path[-limit // 2 :]


def within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _outside(label: str, path: str) -> DataError:
    return DataError(
        f"{label}: {short_path(path)} is outside the output directory; refused", origin=USER
    )


#: Errors of the machine, not of the file: passed on as they are (worth a retry).
_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN)


#: How often a path is resolved again when a link on it changed in the middle.
_RESOLVE_TRIES = 5


def real_path(path: str, label: str = "") -> str:
    """``os.path.realpath``, safe against a link swapped while it is resolved.

    ``realpath`` looks (``lstat``) and then reads the link (``readlink``): a link
    replaced by a file in between (a container's process swapping its outputs)
    makes ``readlink`` fail with EINVAL, or ENOENT if it was removed, which
    ``realpath`` lets out.  The path is resolved again; one that keeps changing
    is refused as the container's doing.  What is read is opened without
    following links anyway (:class:`Beneath`): this only says where to look.
    """
    for _ in range(_RESOLVE_TRIES):
        try:
            return os.path.realpath(path)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOENT):
                raise
    raise DataError(
        f"{label or 'output'}: {short_path(path)} kept changing while it was resolved; refused",
        origin=USER,
    )


def _refusal(label: str, path: str, exc: OSError) -> BaseException:
    if exc.errno in _RESOURCES:
        return exc
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        why = "a symlink took the place of a file or directory on its path after it was checked"
    elif exc.errno == errno.ENOENT:
        why = "it disappeared after it was checked"
    else:
        return DataError(f"{label}: cannot read {short_path(path)}: {exc.strerror}", origin=USER)
    return DataError(f"{label}: {short_path(path)}: {why}; refused", origin=USER)


class Beneath:
    """Opens files beneath one real directory ``root``, one component at a time,
    following no link.

    It keeps the last directory it went through open (and remembers the real
    paths of directories it resolved), so 100,000 list elements in one directory
    cost one ``openat`` each, not a walk from the top.  A directory replaced by a
    link after that is still refused: a remembered real path is only where to
    start looking, and every step down from ``root`` is taken without following.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self._dir: tuple[str, int] | None = None
        self._real: dict[str, str] = {}

    def _real_dir(self, path: str) -> str:
        real = self._real.get(path)
        if real is None:
            real = real_path(path)
            if len(self._real) > 4096:
                self._real.clear()
            self._real[path] = real
        return real

    def resolve(self, path: str) -> str | None:
        """``path``'s real location if it lies in ``root``, else None (links resolved)."""
        parent, name = os.path.split(path)
        real = os.path.join(self._real_dir(parent), name) if name else self._real_dir(parent)
        if name and os.path.islink(real):
            real = real_path(real)
        return real if within(real, self.root) else None

    def _directory(self, key: str, real: str) -> int:
        """The real directory ``real`` opened from ``root`` down, kept as ``key``."""
        self.close()
        parts = [p for p in real[len(self.root.rstrip("/")) + 1 :].split("/") if p]
        top = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for part in parts:
                below = os.open(part, _DIR_FLAGS, dir_fd=top)
                os.close(top)
                top = below
        except BaseException:
            os.close(top)
            raise
        self._dir = (key, top)
        return top

    def open(
        self, path: str, label: str, *, real: bool = False, follow: bool = True
    ) -> tuple[int, os.stat_result]:
        """Open the regular file at ``path`` (inside ``root``; ``real``: a real path
        already); returns the descriptor and its ``fstat``.  A link inside ``root``
        is resolved first and its target opened the same way; a FIFO, socket,
        device or directory is refused without blocking, and so is a link on the
        way that was not there when it looked."""
        parent, _, name = path.rpartition("/")
        kept = self._dir
        try:
            if kept is not None and kept[0] == parent:
                directory = kept[1]
            else:
                real_parent = (parent or "/") if real else self._real_dir(parent or "/")
                if not name or not within(real_parent, self.root):
                    raise _outside(label, path)
                directory = self._directory(parent, real_parent)
            fd = os.open(name, _FILE_FLAGS, dir_fd=directory)
        except OSError as exc:
            self.close()  # a directory on the way may have changed: start again next time
            if exc.errno == errno.ELOOP and follow:
                # A link where a file or directory was: where does it lead now?
                target = real_path(path, label)
                if not within(target, self.root):
                    raise _outside(label, path) from None
                return self.open(target, label, real=True, follow=False)
            raise _refusal(label, path, exc) from None
        return fd, _regular(fd, path, label)

    def close_name(self, path: str) -> str | None:
        """A name beside the missing ``path`` close to its own (``reslt`` for
        ``result``): the likely typo.  The directory is opened from ``root`` down
        with no link followed, like a file, so a swap cannot list another one;
        only its first thousand names are read."""
        import difflib

        folder, want = os.path.split(path)
        try:
            real = self._real_dir(folder)
            if not within(real, self.root):
                return None
            with os.scandir(self._directory(folder, real)) as it:
                names = [e.name for _, e in zip(range(1000), it, strict=False)]
        except (OSError, DataError):  # a hint is not worth an error of its own
            self.close()
            return None
        close = difflib.get_close_matches(want, names, n=1, cutoff=0.6)
        return close[0] if close else None

    def close(self) -> None:
        if self._dir is not None:
            os.close(self._dir[1])
            self._dir = None

    def __enter__(self) -> Beneath:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:  # a reader dropped without close(): its directory goes with it
            self.close()
        except Exception:
            pass


class Openers:
    """A :class:`Beneath` per directory, for one run of uploads; closed together."""

    def __init__(self) -> None:
        self._by_root: dict[str, Beneath] = {}

    def beneath(self, root: str) -> Beneath:
        opener = self._by_root.get(root)
        if opener is None:
            opener = self._by_root[root] = Beneath(root)
        return opener

    def __enter__(self) -> Openers:
        return self

    def __exit__(self, *exc: object) -> None:
        for opener in self._by_root.values():
            opener.close()


def _regular(fd: int, path: str, label: str) -> os.stat_result:
    """``fd``'s ``fstat`` if it is a regular file; else it is closed and refused."""
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            what = "a directory" if stat.S_ISDIR(st.st_mode) else kind_of_mode(st.st_mode)
            raise DataError(
                f"{label}: {short_path(path)} is {what}, not a regular file; refused", origin=USER
            )
    except BaseException:
        os.close(fd)
        raise
    return st


def open_source(
    path: str, root: str | None, label: str, beneath: Beneath | None = None
) -> tuple[int, os.stat_result]:
    """Open a regular file to read it, once; returns the descriptor and its ``fstat``.

    With ``root`` (a real directory), ``path`` must be a real path inside it and is
    opened one component at a time from there without following any link
    (:class:`Beneath`; pass one to reuse the directory it keeps open), so nothing
    swapped in after a check is read.  Without it (files a person named on this
    machine, ``copilot run``'s inputs) links are followed.  Either way a FIFO,
    socket or device is refused without blocking, and so is a directory.
    """
    if root is not None:
        if beneath is not None and beneath.root == root:
            return beneath.open(path, label, real=True, follow=False)
        with Beneath(root) as once:
            return once.open(path, label, real=True, follow=False)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise _refusal(label, path, exc) from None
    return fd, _regular(fd, path, label)
