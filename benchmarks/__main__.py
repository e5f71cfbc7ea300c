"""copilot's benchmark: copilot against a baseline measured side by side, same run, same server.

Run through ``scripts/bench`` (which sets up the venv).  moto's S3 server runs
in its own process on loopback.  Every figure is the median of ``--runs`` runs
after one warm-up; copilot's peak RSS is the largest seen over those runs
(``wait4`` on the process).  The table is printed and written, with the
machine, versions and command, to docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import Bench, Peers
from benchmarks.measure import ROOT, RSS_LIMIT_MB, Limited, limit_to, start
from benchmarks.report import NOTES_HEADING, write_report
from benchmarks.s1_large_file import s1_large_file
from benchmarks.s2_many_files import s2_all
from benchmarks.s3_local import s3_local
from benchmarks.s4_startup import s4_startup
from benchmarks.s5_scale import s5_scale
from benchmarks.s6_exit_to_outputs import s6_exit_to_outputs
from benchmarks.s7_cloud import s7_cloud_large_file
from benchmarks.s8_image import s8_image
from benchmarks.s9_faster_server import s9_faster_server
from benchmarks.servers import moto_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=512, help="S1 and S9 file size (MiB)")
    parser.add_argument(
        "--files", default="2000,10000", help="S2 Dir sizes (comma-separated); S3 uses the first"
    )
    parser.add_argument("--runs", type=int, default=3, help="measured runs per figure")
    parser.add_argument("--cloud-size-mb", type=int, default=256, help="S7 file size (MiB)")
    parser.add_argument(
        "--only",
        default="S1,S2,S3,S4,S5,S6,S7,S9",
        help="scenarios to run (S8, the image, needs podman and scripts/test-image's image)",
    )
    parser.add_argument("--image", default="localhost/copilot:test", help="S8's image")
    parser.add_argument(
        "--big-dir", type=int, default=100_000, help="S9's big Dir: files (100-300 B each)"
    )
    parser.add_argument("--s5-ints", type=int, default=10_000, help="S5 smaller list[int] size")
    parser.add_argument("--s5-files", type=int, default=1000, help="S5 smaller list[File] size")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/BENCHMARKS.md")
    parser.add_argument(
        "--limits",
        action="store_true",
        help="run every command in --image under Flyte's copilot budget (--cpus 0.5 "
        "--memory 128m); the report goes to docs/BENCHMARKS-limits.md",
    )
    args = parser.parse_args()
    only = {s.strip().upper() for s in args.only.split(",")}
    started = time.perf_counter()
    start()  # before this process grows: see benchmarks/spawn.py
    with tempfile.TemporaryDirectory(prefix="copilot-bench-") as tmp, moto_server() as endpoint:
        b = Bench(endpoint, Path(tmp), args.runs)
        b.sizes = [int(n) for n in args.files.split(",")]
        if args.limits:
            limit_to(Limited(args.image, Path(tmp)))
            skipped = only & {"S6", "S7", "S8"}
            only -= skipped
            if skipped:
                print(f"--limits: {', '.join(sorted(skipped))} not run (S1-S5 only)", flush=True)
        peers = Peers(b)
        print(f"moto S3 at {endpoint}; work dir {tmp}", flush=True)
        steps = [
            ("S4", lambda: s4_startup(b)),
            ("S6", lambda: s6_exit_to_outputs(b)),
            ("S3", lambda: s3_local(b, b.sizes[0])),
            ("S2", lambda: s2_all(b, peers)),
            ("S1", lambda: s1_large_file(b, args.size_mb, peers)),
            ("S5", lambda: s5_scale(b, args.s5_ints, args.s5_files)),
            ("S7", lambda: s7_cloud_large_file(b, args.cloud_size_mb)),
            ("S8", lambda: s8_image(b, args.image)),
            ("S9", lambda: s9_faster_server(b, Path(tmp), args.big_dir, args.size_mb)),
        ]
        for name, step in steps:
            if name in only:
                print(f"{name} ...", flush=True)
                try:
                    step()
                except (RuntimeError, OSError) as exc:
                    # One scenario that fails (a server that stalls, a tool that
                    # breaks) is a row saying so, not the end of an hour's run.
                    reason = str(exc).strip().splitlines()[-1][:160]
                    print(f"  {name} failed: {reason}", flush=True)
                    b.rows.append(dict(scenario=name, what="(scenario failed)", copilot_s=0.0,
                                       baseline=reason.replace("|", "/"), baseline_s=0.0,
                                       ratio=0.0, rss_mb=0.0, target=""))  # fmt: skip
        rows = b.rows
        over = b.over
    target = ROOT / "docs" / ("BENCHMARKS-limits.md" if args.limits else "BENCHMARKS.md")
    previous = target
    before = previous.read_text().splitlines() if previous.exists() else []
    kept = [
        line for line in before if line.startswith("| S") and line.split("|")[1].strip() not in only
    ]
    # Each scenario's source: this run for the ones run, the previous report's
    # line for the ones kept.
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    command = " ".join(["scripts/bench", *sys.argv[1:]])
    source = {
        line.split(":", 1)[0][2:]: line for line in before if line.startswith("- S") and ":" in line
    }
    for scenario in sorted({r["scenario"] for r in rows}):
        source[scenario] = f"- {scenario}: `{command}` ({stamp})"
    scenarios = sorted({r["scenario"] for r in rows} | {k.split("|")[1].strip() for k in kept})
    sources = [source[sc] for sc in scenarios if sc in source]
    report = write_report(rows, args, time.perf_counter() - started, kept, sources)
    if NOTES_HEADING in before:
        # Hand-written measurements behind the code's constants stay below the table.
        report += "\n" + "\n".join(before[before.index(NOTES_HEADING) :]).rstrip() + "\n"
    print()
    print(report)
    if over:
        print(f"copilot peak RSS over {RSS_LIMIT_MB} MB in {len(over)} row(s):")
        for line in over:
            print(f"  {line}")
    if not args.no_write:
        target.write_text(report)
        print(json.dumps({"written": str(target.relative_to(ROOT))}))


if __name__ == "__main__":
    main()
