"""Path safety, in one place: names from data never leave their directory.

Both directions use these checks.  ``download`` builds paths from names that
come from the data (variable names, map keys, object keys under a Dir, blob
basenames): each must be one plain path component.  The sidecar reads what
the container wrote: nothing may lead out of the output dir (a symlink whose
target is elsewhere) or block the reader (a FIFO), so anything but regular
files and directories is named and refused.
"""

from __future__ import annotations

import stat

from copilot.errors import DataError


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
