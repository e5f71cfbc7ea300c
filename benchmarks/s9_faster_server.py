"""S9: S2's small-object Dir and S1's large File again, on rclone's S3 server (a
faster one than moto), both engines, the peers and the ceiling.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import lits

from benchmarks.files import clear, make_small_tree, make_tree, random_file, sha256_of
from benchmarks.harness import FSSPEC, Bench, Peers, best_ceiling, ceiling, ceiling_row, engine_row
from benchmarks.measure import STEP_LOG, Sample, limits, repeat, repeat_with_step
from benchmarks.servers import rclone_server


def s9_faster_server(main: Bench, work: Path, big: int, size_mb: int) -> None:
    """S2's small-object Dir again, on rclone's S3 server (both engines, the peers,
    the ceiling), S1's large File both ways on both engines (moto's own speed
    bounds S1), and a Dir of ``big`` small files both ways on both engines, once
    each (minutes on the fsspec engine): memory must not grow with the file count."""
    served = work / "s9-served"
    bucket = served / main.bucket
    # Every object is written straight into the served directory before the server
    # starts: rclone caches its listings, and its S3 PUT is not what is measured.
    files, small, name = 2000, "s9-small", "s9-big"
    make_tree(bucket / small / "tree", files, 4096)
    make_small_tree(bucket / name / "tree", big)
    large = bucket / "s9-large" / "large.bin"
    large.parent.mkdir(parents=True)
    random_file(large, size_mb)
    hashed = lits.blob(f"s3://{main.bucket}/s9-large/large.bin")
    hashed.hash = sha256_of(large)  # checked while streaming, as in S1
    (large.parent / "inputs.pb").write_bytes(lits.literal_map({"big": hashed}).SerializeToString())
    for tree in (small, name):
        uri = f"s3://{main.bucket}/{tree}/tree"
        (bucket / tree / "inputs.pb").write_bytes(
            lits.literal_map({"d": lits.blob(uri, multipart=True)}).SerializeToString()
        )
    with rclone_server(served) as endpoint:
        b = Bench(endpoint, work / "s9", main.runs)
        b.rows, b.over = main.rows, main.over  # one table
        b.work.mkdir()
        peers = Peers(b)
        print(f"  rclone S3 server at {endpoint}", flush=True)
        name = small
        inputs = b.uri(f"{name}/inputs.pb")
        dest = b.work / f"{name}-in"
        what = f"download Dir {files} x 4 KiB, rclone server"
        mine, step = repeat_with_step(lambda: b.download(inputs, dest, *STEP_LOG), b.runs)
        engine_row(b, "S9", what, mine, lambda: b.download(inputs, dest, FSSPEC, *STEP_LOG),
                   "<=0.40 (2.5x)")  # fmt: skip
        peers.rows(
            "S9", what, mine,
            lambda: peers.s5("cp", b.uri(f"{name}/tree/*"), str(b.fresh("s9-s5")) + "/"),
            lambda: peers.rc("copy", f"moto:{b.bucket}/{name}/tree", str(b.fresh("s9-rc"))),
            "<=1.10",
        )  # fmt: skip
        ceiling_row(
            b,
            "S9",
            what,
            mine,
            best_ceiling(b, "get-many", f"{name}/tree/", levels="16,32,64"),
            "objects",
            step,
        )
        clear(b.work, "s9-s5-*", "s9-rc-*", f"{name}-in-*")
        out = b.work / f"{name}-out"
        out.mkdir()
        shutil.copytree(bucket / name / "tree", out / "d")
        what = f"sidecar Dir {files} x 4 KiB, rclone server"
        dir_type = {"d": lits.blob_type(multipart=True)}
        mine, step = repeat_with_step(
            lambda: b.sidecar(out, dir_type, f"{name}/up/", *STEP_LOG), b.runs
        )
        engine_row(b, "S9", what, mine,
                   lambda: b.sidecar(out, dir_type, f"{name}/up/", FSSPEC, *STEP_LOG),
                   "<=0.40 (2.5x)")  # fmt: skip
        peers.rows(
            "S9", what, mine,
            lambda: peers.s5("cp", str(out / "d") + "/*",
                             b.uri(f"{name}/s5-{b.fresh('n').name}/")),
            lambda: peers.rc("copy", str(out / "d"),
                             f"moto:{b.bucket}/{name}/rc-{b.fresh('n').name}", "--no-check-dest"),
            "<=1.10",
        )  # fmt: skip
        got = best_ceiling(b, "put-many", f"{name}/ceiling-up/", str(files), "4096",
                            levels="16,32,64")  # fmt: skip
        ceiling_row(b, "S9", what, mine, got, "objects", step)
        shutil.rmtree(out)

        # The large File both ways, each engine's runs alternating with copilot's.
        inputs, dest = b.uri("s9-large/inputs.pb"), b.work / "s9-large-in"

        def down() -> Sample:
            return b.download(inputs, dest)

        # rclone's S3 server (gofakes3) answers a ranged GET with 200 and the range's
        # bytes (206 is fixed upstream in johannesboyne/gofakes3#121, not in rclone
        # 1.75.2); obstore refuses a non-206 answer to a range, so copilot's default
        # engine falls back to one whole GET here, while botocore takes the ranges.
        what = f"download File {size_mb} MiB, rclone server (one GET: 200 to ranges)"
        mine = repeat(down, b.runs)
        engine_row(b, "S9", what, mine, lambda: b.download(inputs, dest, FSSPEC),
                   "<=0.67 (1.5x), <=80 MB", down)  # fmt: skip
        parts = f"{16 << 20},{64 << 20},{size_mb << 20}"
        got = ceiling(b, "get-one", "s9-large/large.bin", parts, levels="1,4,8,16")
        ceiling_row(b, "S9", what, mine, got, "bytes")
        clear(b.work, "s9-large-in-*")
        out = b.work / "s9-large-out"
        out.mkdir()
        shutil.copyfile(large, out / "big")

        def up() -> Sample:
            return b.sidecar(out, {"big": lits.blob_type()}, "s9-large/up/")

        what = f"sidecar File {size_mb} MiB, rclone server"
        mine = repeat(up, b.runs)
        engine_row(b, "S9", what, mine,
                   lambda: b.sidecar(out, {"big": lits.blob_type()}, "s9-large/up/", FSSPEC),
                   "<=0.67 (1.5x), <=80 MB", up)  # fmt: skip
        got = ceiling(b, "put-one", "s9-large/ceiling.bin", str(size_mb << 20),
                      f"{8 << 20},{16 << 20}", levels="2,4,8,16")  # fmt: skip
        ceiling_row(b, "S9", what, mine, got, "bytes")
        shutil.rmtree(out)

        # The big Dir both ways, once per engine (the fsspec engine's run takes minutes).
        name = "s9-big"
        inputs = b.uri(f"{name}/inputs.pb")
        out = b.work / f"{name}-out"
        for direction in ("download", "sidecar"):
            what = f"{direction} Dir {big:,} x 100-300 B, 100 folders"
            if direction == "sidecar":
                shutil.copytree(bucket / name / "tree", out / "d")

            def run(engine: str, direction: str = direction) -> Sample:
                extra = [FSSPEC] if engine == "fsspec" else []
                if direction == "download":
                    return b.download(inputs, b.work / f"{name}-in", *extra)
                return b.sidecar(out, dir_type, f"{name}/up-{engine}/", *extra)

            native = run("obstore")  # once each: the fsspec engine's run takes minutes
            clear(b.work, f"{name}-in-*")
            mine = (native.seconds, native.rss_mb)
            if (limited := limits()) is not None and not limited.has_s3fs:
                b.row("S9", what, mine, (0.0, 0.0), "fsspec engine: s3fs not in the image",
                      "<=110 MB")  # fmt: skip
            else:
                ref = run("fsspec")
                clear(b.work, f"{name}-in-*")
                fsspec_said = f"copilot --storage.engine fsspec ({ref.rss_mb:.0f} MB)"
                b.row("S9", what, mine, (ref.seconds, ref.rss_mb), fsspec_said, "<=110 MB")
            if direction == "sidecar":
                shutil.rmtree(out)
