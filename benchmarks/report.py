"""The report: the table with the machine, versions and command, as docs/BENCHMARKS.md."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import tempfile
import time

from benchmarks.harness import fs_type
from benchmarks.measure import RSS_LIMIT_MB, Limited


def versions() -> dict[str, str]:
    from importlib.metadata import version

    out = {"python": platform.python_version()}
    for pkg in (
        "flyte-copilot",
        "s3fs",
        "gcsfs",
        "adlfs",
        "azure-storage-blob",
        "fsspec",
        "aiobotocore",
        "flyteidl2",
        "protobuf",
        "moto",
    ):
        with contextlib.suppress(Exception):
            out[pkg] = version(pkg)
    return out


#: Where the hand-written part of a report begins (kept as it is by every run).
NOTES_HEADING = "## Tuning measurements"


def write_report(
    rows: list[dict],
    args: argparse.Namespace,
    seconds: float,
    kept: list[str],
    sources: list[str],
) -> str:
    limits = (
        [
            f"With `--limits`: every command (copilot on either engine, the s3fs baselines, "
            "s5cmd, rclone) "
            f"ran inside `{args.image}` under `--cpus {Limited.CPUS} --memory {Limited.MEMORY}` "
            "(Flyte's budget for a copilot container, no swap), timed and measured by a "
            "launcher inside the container, so the engine's own start-up is not counted; "
            "the ceiling ran outside, unlimited.",
            "",
        ]
        if args.limits
        else []
    )
    lines = [
        "# Benchmarks" + (" under Flyte's copilot limits" if args.limits else ""),
        "",
        *limits,
        "Written by `scripts/bench` (the latest run). Every time is the median of "
        "`--runs` runs after one warm-up (see the command below; kept rows come from "
        "earlier runs), measured as the wall time of a whole process "
        "(start-up included); copilot and its baseline run in the same session against the "
        "same server on loopback, in its own process: moto (S3) for S1-S6, fake-gcs-server "
        "and Azurite for S7, rclone's S3 server (Go, several times moto's requests per "
        "second) for S9. copilot runs on its default engine (obstore for S3 and Azure, "
        "gcsfs for GCS); `copilot --storage.engine fsspec` rows are the same copilot on "
        "the reference engine (s3fs). The ceiling is a bare client with no files "
        "(aiobotocore; in S9 also obstore, the faster counted); each ceiling has a "
        "second row against the same program as a whole (its import, client and listing "
        "added), and in S9's small-file rows a third: copilot's own step time (the "
        "seconds of its summary log line, from the same runs: everything after its "
        "interpreter's start and imports) against that whole program. In S1, S3 and S7 "
        "copilot's runs alternate "
        "with each "
        "baseline's (the row shows those pairs) because the server shares the client's "
        "two cores and the machine drifts over a run. RSS is copilot's "
        "peak resident memory (`wait4`, from a small launcher process, so the benchmark's own "
        "memory is not counted); over 110 MB is flagged (Flyte gives copilot 128 MiB). "
        "A ratio below 1 means copilot was faster. "
        "S8 is the image scripts/test-image builds, started by podman "
        "(`--only S8`; its RSS is podman's client).",
        "",
        f"- command: `{' '.join(['scripts/bench', *sys.argv[1:]])}`",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
        f"{platform.system()} {platform.release()}; files written to "
        f"{fs_type(tempfile.gettempdir())} ({tempfile.gettempdir()}, TMPDIR)",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()),
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; took {seconds:.0f} s",
        "",
        "| scenario | what | copilot | baseline | baseline time | ratio | copilot RSS | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    if kept:
        lines[-3:-3] = [
            "- scenarios not run this time keep their rows (and their source below) "
            "from the previous report",
            "",
            "Where each scenario's rows come from:",
            "",
            *sources,
        ]
        lines.extend(kept)
    for r in rows:
        lines.append(
            f"| {r['scenario']} | {r['what']} | {r['copilot_s']:.3f} s | {r['baseline']} | "
            f"{r['baseline_s']:.3f} s | {r['ratio']:.2f} | {r['rss_mb']:.0f} MB"
            f"{' (over ' + str(RSS_LIMIT_MB) + ')' if r['rss_mb'] > RSS_LIMIT_MB else ''} | "
            f"{r['target']} |"
        )
    return "\n".join(lines) + "\n"
