"""S5: ten times more elements (lists and maps of ints, lists of Files), both
directions, beside the file system's own floor for as many files.
"""

from __future__ import annotations

import os
import shutil
from functools import partial

import lits

from benchmarks.harness import Bench
from benchmarks.measure import PY, Sample, measure, repeat

#: The file system's own cost of S5's layout, without copilot: ``{d}`` is created and
#: filled with ``{n}`` one-line files (what a download does per element), or read
#: back with lstat/open/read/close (what a sidecar does).
FLOOR_CREATE = (
    "import os, sys\n"
    "d, n = sys.argv[1], int(sys.argv[2])\n"
    "os.mkdir(d)\n"
    "flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW\n"
    "for i in range(n):\n"
    "    fd = os.open(os.path.join(d, str(i)), flags, 0o644)\n"
    "    os.write(fd, b'%d' % i)\n"
    "    os.close(fd)\n"
)


FLOOR_READ = (
    "import os, sys\n"
    "d = sys.argv[1]\n"
    "for name in os.listdir(d):\n"
    "    p = os.path.join(d, name)\n"
    "    fd = os.open(p, os.O_RDONLY)\n"
    "    os.read(fd, os.lstat(p).st_size + 1)\n"
    "    os.close(fd)\n"
)


def s5_scale(b: Bench, small: int, files_small: int) -> None:
    """10x more elements: lists and maps of ints, lists of Files, both directions,
    with the file system's own floor for the same number of files beside them."""
    results = {}
    int_type = lits.simple(lits.T.INTEGER)
    shapes = {
        "int": (
            lambda n: lits.collection(*[lits.integer(i) for i in range(n)]),
            lits.list_of(int_type),
        ),
        "map": (
            lambda n: lits.mapping_of({str(i): lits.integer(i) for i in range(n)}),
            lits.dict_of(int_type),
        ),
    }
    for n in (small, small * 10):
        for shape, (build, out_type) in shapes.items():
            uri = b.put_inputs(f"s5/{shape}{n}.pb", {"xs": build(n)})
            dest = b.work / f"s5-{shape}{n}"
            results[(f"down-{shape}", n)] = repeat(partial(b.download, uri, dest), b.runs)
            out = b.work / f"s5-out-{shape}{n}"
            (out / "xs").mkdir(parents=True)
            for i in range(n):
                (out / "xs" / str(i)).write_text(str(i))
            results[(f"up-{shape}", n)] = repeat(
                partial(b.sidecar, out, {"xs": out_type}, f"s5/up-{shape}{n}/"), b.runs
            )
            if shape == "int":
                results[("floor-read", n)] = repeat(
                    partial(measure, [PY, "-c", FLOOR_READ, str(out / "xs")]), b.runs
                )
            shutil.rmtree(out)
        results[("floor-create", n)] = repeat(partial(_floor_create, b, n), b.runs)
    for n in (files_small, files_small * 10):
        tree = b.work / f"s5-files{n}"
        tree.mkdir()
        for i in range(n):
            (tree / str(i)).write_bytes(b"%d\n" % i)
        b.s3fs(f"fs.put({str(tree)!r}, {b.uri(f's5/files{n}')!r}, recursive=True)", setup=True)
        items = lits.collection(*[lits.blob(b.uri(f"s5/files{n}/{i}")) for i in range(n)])
        uri = b.put_inputs(f"s5/files{n}.pb", {"fs": items})
        dest = b.work / f"s5-fin{n}"
        results[("down-file", n)] = repeat(partial(b.download, uri, dest), b.runs)
        out = b.work / f"s5-fout{n}"
        out.mkdir()
        os.replace(tree, out / "fs")
        results[("up-file", n)] = repeat(
            partial(b.sidecar, out, {"fs": lits.list_of(lits.blob_type())}, f"s5/fup{n}/"),
            b.runs,
        )
        shutil.rmtree(out)
    rows = [
        ("down-int", small, "download list[int]", "<=4x time, <=110 MB"),
        ("floor-create", small, "floor: create that many files", "context"),
        ("up-int", small, "sidecar list[int]", "<=4x time, <=110 MB"),
        ("floor-read", small, "floor: read that many files", "context"),
        ("down-map", small, "download dict[str, int]", "<=4x time, <=110 MB"),
        ("up-map", small, "sidecar dict[str, int]", "<=4x time, <=110 MB"),
        ("down-file", files_small, "download list[File]", "<=8x time, <=110 MB"),
        ("up-file", files_small, "sidecar list[File]", "<=8x time, <=110 MB"),
    ]
    for kind, base_n, label, target in rows:
        big = results[(kind, base_n * 10)]
        if kind.startswith("floor"):
            # The row is about the file system, not copilot: its RSS is not flagged.
            big = (big[0], 0.0)
        b.row("S5", f"{label} {base_n * 10} vs {base_n}", big, results[(kind, base_n)],
              f"same with {base_n}", target)  # fmt: skip


def _floor_create(b: Bench, n: int) -> Sample:
    """FLOOR_CREATE into a new directory each run."""
    return measure([PY, "-c", FLOOR_CREATE, str(b.fresh(f"s5-floor{n}")), str(n)])
