"""Starts the benchmark's measured commands from a small process.

Linux carries a process's peak-RSS mark across fork and exec: a child started by
the benchmark (which holds large literals and boto3) would report the
benchmark's own peak as its ``ru_maxrss``.  This helper is started once, before
the benchmark grows, with ``python -S`` (standard library only, ~10 MB), and
starts every measured command itself, so the peak it reports is the command's.

Protocol: one JSON request per line on stdin (``argv``, ``cwd``, ``env``, and
optionally ``sigterm_after``: wait until the child catches SIGTERM, sleep that
long, send it, and time from the signal to the exit); one JSON answer per line
on stdout (``seconds``, ``rss_kb``, ``code``, ``stderr``).
"""

import json
import os
import signal
import subprocess
import sys
import time


def caught_sigterm(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    except OSError:
        return True
    return False


def run(req: dict) -> dict:
    start = time.perf_counter()
    proc = subprocess.Popen(
        req["argv"],
        cwd=req.get("cwd"),
        env=req["env"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    if req.get("sigterm_after") is not None:
        deadline = time.monotonic() + 10
        while not caught_sigterm(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(req["sigterm_after"])
        start = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
    err = proc.stderr.read() if proc.stderr else b""  # until the child closes it
    _, status, usage = os.wait4(proc.pid, 0)
    return {
        "seconds": time.perf_counter() - start,
        "rss_kb": usage.ru_maxrss,
        "code": os.waitstatus_to_exitcode(status),
        "stderr": err[-2000:].decode(errors="replace"),
    }


def main() -> None:
    for line in sys.stdin:
        sys.stdout.write(json.dumps(run(json.loads(line))) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
