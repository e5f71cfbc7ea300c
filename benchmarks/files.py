"""The local files and trees the scenarios transfer, and their clean-up."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def random_file(path: Path, size_mb: int) -> None:
    """A file of ``size_mb`` MiB: one random MiB, repeated (quick to write)."""
    with open(path, "wb") as fh:
        chunk = os.urandom(1 << 20)
        for _ in range(size_mb):
            fh.write(chunk)


def sha256_of(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def make_tree(root: Path, files: int, size: int) -> None:
    for i in range(files):
        d = root / f"d{i % 20:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}.bin").write_bytes(os.urandom(size))


def remove(path: Path) -> None:
    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def clear(work: Path, *patterns: str) -> None:
    """Remove what matches ``patterns`` in the work dir (a scenario's last outputs)."""
    for pattern in patterns:
        for p in work.glob(pattern):
            remove(p)


def make_small_tree(root: Path, files: int, folders: int = 100) -> None:
    """``files`` objects of 100-300 bytes in ``folders`` folders (the issue's shape)."""
    import random

    rng = random.Random(9)
    for i in range(files):
        d = root / f"d{i % folders:03d}"
        if i < folders:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:06d}.txt").write_bytes(os.urandom(rng.randint(100, 300)))
