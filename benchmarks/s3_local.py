"""S3: a Dir downloaded through ``file://``, against ``cp -r``."""

from __future__ import annotations

import lits

from benchmarks.files import make_tree
from benchmarks.harness import Bench
from benchmarks.measure import COPILOT, measure, side_by_side


def s3_local(b: Bench, files: int) -> None:
    store = b.work / "s3-store"
    make_tree(store / "tree", files, 4096)
    lm = lits.literal_map({"d": lits.blob(str(store / "tree"), multipart=True)})
    (store / "inputs.pb").write_bytes(lm.SerializeToString())
    # Alternated: the file system's write-back of one command's files must not land
    # on the other's runs only.
    mine, base = side_by_side(
        lambda: measure(
            [
                COPILOT,
                "download",
                "-f",
                f"file://{store / 'inputs.pb'}",
                "-o",
                str(b.fresh("s3-in")),
                "-m",
                "PROTO",
            ]
        ),
        lambda: measure(["cp", "-r", str(store / "tree"), str(b.fresh("s3-cp"))]),
        b.runs,
    )
    b.row("S3", f"download Dir {files} x 4 KiB via file://", mine, base, "cp -r", "<=1.5")
