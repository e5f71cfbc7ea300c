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


def inside(path: str, root: str) -> str | None:
    """``path``'s real location if it lies in the real directory ``root``, else None
    (links resolved: a link inside that points out is outside)."""
    real = os.path.realpath(path)
    return real if within(real, root) else None


def _refusal(label: str, path: str, exc: OSError) -> DataError:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        why = "a symlink took the place of a file or directory on its path after it was checked"
    elif exc.errno == errno.ENOENT:
        why = "it disappeared after it was checked"
    else:
        return DataError(f"{label}: cannot read {short_path(path)}: {exc.strerror}", origin=USER)
    return DataError(f"{label}: {short_path(path)}: {why}; refused", origin=USER)


def _open_beneath(root: str, path: str) -> int:
    """Open ``path`` (a real path in ``root``) from ``root`` down, no link followed."""
    rel = path[len(root.rstrip("/")) + 1 :] if path != root else ""
    parts = [p for p in rel.split("/") if p]
    if not parts:
        raise IsADirectoryError(errno.EISDIR, "is the directory itself", path)
    top = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            below = os.open(part, _DIR_FLAGS, dir_fd=top)
            os.close(top)
            top = below
        return os.open(parts[-1], _FILE_FLAGS, dir_fd=top)
    finally:
        os.close(top)


def open_source(path: str, root: str | None, label: str) -> tuple[int, os.stat_result]:
    """Open a regular file to read it, once; returns the descriptor and its ``fstat``.

    With ``root`` (a real directory), ``path`` must be a real path inside it and is
    opened one component at a time from there without following any link, so
    nothing swapped in after a check is read.  Without it (files a person named
    on this machine, ``copilot run``'s inputs) links are followed.  Either way a
    FIFO, socket or device is refused without blocking, and so is a directory.
    """
    try:
        if root is not None:
            if not within(path, root):
                raise DataError(
                    f"{label}: {short_path(path)} is outside the output directory; refused",
                    origin=USER,
                )
            fd = _open_beneath(root, path)
        else:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise _refusal(label, path, exc) from None
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
    return fd, st
