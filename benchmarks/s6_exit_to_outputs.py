"""S6: from the SIGTERM a sidecar gets when the main container ends to ``outputs.pb``."""

from __future__ import annotations

import shutil
import statistics

import lits

from benchmarks.harness import Bench
from benchmarks.measure import COPILOT, measure


def s6_exit_to_outputs(b: Bench) -> None:
    from flyteidl2.core import interface_pb2

    outs = {f"v{i}": lits.simple(lits.T.INTEGER) for i in range(10)}
    iface = lits.b64(interface_pb2.TypedInterface(outputs=lits.variable_map(outs)))
    samples = []
    for run in range(b.runs + 1):
        out = b.work / f"s6-{run}"
        out.mkdir()
        for i in range(10):
            (out / f"v{i}").write_text(str(i))
        argv = [COPILOT, *b.flags(), "sidecar", "-o", b.uri(f"s6/{run}/"),
                "-x", b.uri("s6/raw"), "-f", str(out), "-i", iface]  # fmt: skip
        # 1.5 s: a main container that runs a while, the sidecar has settled
        sample = measure(argv, sigterm_after=1.5)
        b.s3.head_object(Bucket=b.bucket, Key=f"s6/{run}/outputs.pb")
        if run:
            samples.append(sample)
        shutil.rmtree(out)
    mine = (statistics.median(s.seconds for s in samples), max(s.rss_mb for s in samples))
    b.row("S6", "SIGTERM -> outputs.pb, 10 primitives", mine, (0.5, 0.0), "target 0.5 s", "<=0.5 s")
