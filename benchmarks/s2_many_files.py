"""S2: a Dir of many small objects down and up, against s3fs (batched and one at a
time), s5cmd, rclone and the ceiling.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

import lits

from benchmarks.files import clear, make_tree
from benchmarks.harness import FSSPEC, Bench, Peers, baseline_row, ceiling, ceiling_row, engine_row
from benchmarks.measure import repeat


def s2_all(b: Bench, peers: Peers) -> None:
    for files in b.sizes:
        s2_many_files(b, files, peers)


def s2_many_files(b: Bench, files: int, peers: Peers) -> None:
    """A Dir of ``files`` 4 KiB objects down and up: s3fs (batched and one at a time:
    only at the first size, they take minutes beyond), s5cmd, rclone, the ceiling."""
    first = files == min(b.sizes)
    name = f"s2-{files}"
    tree = b.work / f"{name}-tree"
    make_tree(tree, files, 4096)
    b.s3fs(f"fs.put({str(tree)!r}, {b.uri(name + '/tree')!r}, recursive=True)", setup=True)
    inputs = b.put_inputs(
        f"{name}/inputs.pb", {"d": lits.blob(b.uri(f"{name}/tree"), multipart=True)}
    )
    dest = b.work / f"{name}-in"
    what = f"download Dir {files} x 4 KiB"
    mine = repeat(lambda: b.download(inputs, dest), b.runs)
    engine_row(b, "S2", what, mine, lambda: b.download(inputs, dest, FSSPEC), "<=0.40 (2.5x)")
    if first:
        _s3fs_rows(
            b,
            what,
            mine,
            "get",
            lambda: (
                f"fs.get({b.uri(name + '/tree') + '/'!r}, "
                f"{str(b.fresh('s2-base')) + '/'!r}, recursive=True)"
            ),
            lambda: (
                "import os\n"
                f"for p in fs.find({b.uri(name + '/tree')!r}):\n"
                f"    d = os.path.join({str(b.fresh('s2-serial'))!r}, p.split('/tree/', 1)[1])\n"
                "    os.makedirs(os.path.dirname(d), exist_ok=True)\n"
                "    fs.get_file(p, d)\n"
            ),
        )
    peers.rows(
        "S2",
        what,
        mine,
        lambda: peers.s5("cp", b.uri(f"{name}/tree/*"), str(b.fresh("s2-s5")) + "/"),
        lambda: peers.rc("copy", f"moto:{b.bucket}/{name}/tree", str(b.fresh("s2-rc"))),
        "<=1.0",
    )
    got = ceiling(b, "get-many", f"{name}/tree/", levels="16,32,64")
    ceiling_row(b, "S2", what, mine, got, "objects")
    clear(b.work, "s2-base-*", "s2-serial-*", "s2-s5-*", "s2-rc-*", f"{name}-in-*")

    out = b.work / f"{name}-out"
    out.mkdir(exist_ok=True)
    os.replace(tree, out / "d")
    what = f"sidecar Dir {files} x 4 KiB"
    dir_type = {"d": lits.blob_type(multipart=True)}
    mine = repeat(lambda: b.sidecar(out, dir_type, f"{name}/up/"), b.runs)
    engine_row(b, "S2", what, mine, lambda: b.sidecar(out, dir_type, f"{name}/up/", FSSPEC),
               "<=0.40 (2.5x)")  # fmt: skip
    if first:
        _s3fs_rows(
            b,
            what,
            mine,
            "put",
            lambda: f"fs.put({str(out / 'd')!r}, {b.uri(name + '/base-up')!r}, recursive=True)",
            lambda: (
                "import os\n"
                f"root = {str(out / 'd')!r}\n"
                "for dp, _, fns in os.walk(root):\n"
                "    for f in fns:\n"
                "        p = os.path.join(dp, f)\n"
                f"        fs.put_file(p, {b.uri(name + '/serial-up/')!r}"
                " + os.path.relpath(p, root))\n"
            ),
        )
    peers.rows(
        "S2",
        what,
        mine,
        lambda: peers.s5("cp", str(out / "d") + "/*", b.uri(f"{name}/s5-up-{b.fresh('n').name}/")),
        lambda: peers.rc(
            "copy",
            str(out / "d"),
            f"moto:{b.bucket}/{name}/rc-up-{b.fresh('n').name}",
            "--no-check-dest",
        ),  # fmt: skip
        "<=1.0",
    )
    got = ceiling(b, "put-many", f"{name}/ceiling-up/", str(files), "4096", levels="16,32,64")
    ceiling_row(b, "S2", what, mine, got, "objects")
    if first:
        plain = repeat(
            lambda: b.sidecar(out, dir_type, f"{name}/up/", "--hash-outputs", "none"), b.runs
        )
        b.row("S2", f"{what}: hashed vs not", mine, plain, "--hash-outputs none", "~1.0")
    shutil.rmtree(out)


def _s3fs_rows(
    b: Bench,
    what: str,
    mine: tuple[float, float],
    verb: str,
    batched: Callable[[], str],
    serial: Callable[[], str],
) -> None:
    """S2's s3fs baselines: its batched call, and one object at a time (the code
    is built per run, so every run gets fresh paths)."""
    baseline_row(b, "S2", what, mine, lambda: b.s3fs(batched()),
                 f"s3fs {verb} (batched)", "<=1.0")  # fmt: skip
    baseline_row(b, "S2", what, mine, lambda: b.s3fs(serial()),
                 "one at a time", ">=3x faster")  # fmt: skip
