"""The runs ``copilot run`` keeps on this machine: listing them and removing them.

Each run on the embedded store leaves its documents and outputs under
``<home>/store/runs/<task>/<run id>/`` and its input and output dirs under
``<home>/work/<run id>/`` (:func:`copilot.run.cache_dir` is ``<home>``).  Sizes
count each file once, however many names it has (an output is a hard link
between the two).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass

#: A run's status, from the documents its prefix holds.
SUCCEEDED, FAILED, INCOMPLETE = "succeeded", "failed", "incomplete"


@dataclass
class KeptRun:
    task: str
    run_id: str
    started: float  # seconds since the epoch, from the run id
    status: str
    store_dir: str
    workdir: str | None  # None once removed (``copilot run --rm``)

    def paths(self) -> list[str]:
        return [p for p in (self.store_dir, self.workdir) if p]


def _started(run_id: str, fallback: str) -> float:
    try:
        return time.mktime(time.strptime(run_id[:15], "%Y%m%d-%H%M%S"))
    except ValueError:
        return os.stat(fallback).st_mtime


def kept_runs(home: str) -> list[KeptRun]:
    """Every run under ``home``, oldest first."""
    root = os.path.join(home, "store", "runs")
    runs = []
    for task in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        task_dir = os.path.join(root, task)
        if not os.path.isdir(task_dir):
            continue
        for run_id in sorted(os.listdir(task_dir)):
            store_dir = os.path.join(task_dir, run_id)
            if not os.path.isdir(store_dir):
                continue
            if os.path.exists(os.path.join(store_dir, "outputs.pb")):
                status = SUCCEEDED
            elif os.path.exists(os.path.join(store_dir, "error.pb")):
                status = FAILED
            else:
                status = INCOMPLETE
            work = os.path.join(home, "work", run_id)
            runs.append(
                KeptRun(
                    task=task,
                    run_id=run_id,
                    started=_started(run_id, store_dir),
                    status=status,
                    store_dir=store_dir,
                    workdir=work if os.path.isdir(work) else None,
                )
            )
    return sorted(runs, key=lambda r: (r.started, r.run_id))


def disk_usage(paths: Iterable[str], seen: set[tuple[int, int]] | None = None) -> int:
    """Bytes of the files under ``paths``, each file counted once (hard links)."""
    seen = set() if seen is None else seen
    total = 0
    for top in paths:
        for dirpath, _dirs, files in os.walk(top):
            for name in files:
                try:
                    st = os.lstat(os.path.join(dirpath, name))
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_size
    return total


def select(
    runs: list[KeptRun],
    *,
    older_than: float | None = None,
    task: str | None = None,
    status: str | None = None,
    everything: bool = False,
    now: float | None = None,
) -> list[KeptRun]:
    """The runs matching every criterion given; an incomplete run younger than a
    day is left out unless asked for by status or ``everything`` (it may still
    be running)."""
    now = time.time() if now is None else now
    chosen = []
    for run in runs:
        if older_than is not None and now - run.started < older_than:
            continue
        if task is not None and run.task != task:
            continue
        if status is not None and run.status != status:
            continue
        young = run.status == INCOMPLETE and now - run.started < 86400
        if young and status is None and not everything:
            continue
        chosen.append(run)
    return chosen


def remove(runs: list[KeptRun]) -> int:
    """Remove the runs' store and work dirs; returns the bytes freed."""
    freed = disk_usage(p for run in runs for p in run.paths())
    for run in runs:
        for path in run.paths():
            shutil.rmtree(path, ignore_errors=True)
        parent = os.path.dirname(run.store_dir)
        try:
            os.rmdir(parent)  # the task's folder, once its last run is gone
        except OSError:
            pass
    return freed


def human_size(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    size, unit = n / 1000, "kB"
    for bigger in ("MB", "GB"):
        if size < 1000:
            break
        size, unit = size / 1000, bigger
    return f"{size:.1f} {unit}"
