"""S1: one large File down and up, against s3fs, obstore, s5cmd, rclone and the ceiling."""

from __future__ import annotations

import os
import shutil

import lits

from benchmarks.files import clear, random_file, sha256_of
from benchmarks.harness import FSSPEC, Bench, Peers, baseline_row, ceiling, ceiling_row, engine_row
from benchmarks.measure import Sample, repeat


def s1_large_file(b: Bench, size_mb: int, peers: Peers) -> None:
    src = b.work / "large.bin"
    random_file(src, size_mb)
    b.s3.upload_file(str(src), b.bucket, "s1/large.bin")
    # The input literal carries the file's SHA-256, as the sidecar writes it: the
    # download checks it while streaming (issue 14); the S1 targets hold with it.
    hashed = lits.blob(b.uri("s1/large.bin"))
    hashed.hash = sha256_of(src)
    inputs = b.put_inputs("s1/inputs.pb", {"big": hashed})
    dest = b.work / "s1-in"

    def down() -> Sample:
        return b.download(inputs, dest)

    # Each baseline's runs alternate with copilot's (the rows show those pairs):
    # one 512 MiB transfer takes seconds, and the shared machine drifts meanwhile.
    mine = repeat(down, b.runs)
    what = f"download File {size_mb} MiB"
    engine_row(b, "S1", what, mine, lambda: b.download(inputs, dest, FSSPEC),
               "<=0.67 (1.5x), <=80 MB", down)  # fmt: skip
    baseline_row(
        b, "S1", what, mine,
        lambda: b.s3fs(f"fs.get_file({b.uri('s1/large.bin')!r}, {str(b.fresh('s1-base'))!r})"),
        "s3fs get_file", "<=1.10, <=150 MB", down,
    )  # fmt: skip
    peers.rows(
        "S1",
        what,
        mine,
        lambda: peers.s5("cp", b.uri("s1/large.bin"), str(b.fresh("s1-s5"))),
        lambda: peers.rc("copyto", f"moto:{b.bucket}/s1/large.bin", str(b.fresh("s1-rc"))),
        "<=1.0",
        down,
    )
    clear(b.work, "s1-s5-*", "s1-rc-*")
    # Ranges of 16 and 64 MiB, and the whole object in one GET (moto reads the whole
    # object for every ranged GET, so fewer ranges can win there).
    parts = f"{16 << 20},{64 << 20},{size_mb << 20}"
    got = ceiling(b, "get-one", "s1/large.bin", parts, levels="1,4,8,16")
    ceiling_row(b, "S1", what, mine, got, "bytes")
    unchecked = repeat(lambda: b.download(inputs, dest, "--no-verify-inputs"), b.runs)
    b.row("S1", f"download File {size_mb} MiB: hash checked vs not", mine, unchecked,
          "--no-verify-inputs", "~1.0")  # fmt: skip
    out = b.work / "s1-out"
    out.mkdir(exist_ok=True)
    os.replace(src, out / "big")

    def up() -> Sample:
        return b.sidecar(out, {"big": lits.blob_type()}, "s1/up/")

    mine = repeat(up, b.runs)
    what = f"sidecar File {size_mb} MiB"
    engine_row(b, "S1", what, mine,
               lambda: b.sidecar(out, {"big": lits.blob_type()}, "s1/up/", FSSPEC),
               "<=0.67 (1.5x), <=80 MB", up)  # fmt: skip
    baseline_row(
        b, "S1", what, mine,
        lambda: b.s3fs(f"fs.put_file({str(out / 'big')!r}, {b.uri('s1/base/large.bin')!r})"),
        "s3fs put_file", "<=1.10, <=150 MB", up,
    )  # fmt: skip
    peers.rows(
        "S1",
        what,
        mine,
        lambda: peers.s5("cp", str(out / "big"), b.uri(f"s1/s5-up/{b.fresh('n').name}")),
        lambda: peers.rc(
            "copyto", str(out / "big"), f"moto:{b.bucket}/s1/rc-up/{b.fresh('n').name}"
        ),
        "<=1.0",
        up,
    )
    got = ceiling(
        b, "put-one", "s1/ceiling.bin", str(size_mb << 20), f"{8 << 20},{16 << 20}",
        levels="2,4,8,16",
    )  # fmt: skip
    ceiling_row(b, "S1", what, mine, got, "bytes")
    plain = repeat(
        lambda: b.sidecar(out, {"big": lits.blob_type()}, "s1/up/", "--hash-outputs", "none"),
        b.runs,
    )
    b.row("S1", f"sidecar File {size_mb} MiB: hashed vs not", mine, plain,
          "--hash-outputs none", "~1.0")  # fmt: skip
    shutil.rmtree(out)
    clear(b.work, "s1-in-*", "s1-base-*")
