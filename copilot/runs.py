"""The runs ``copilot run`` keeps on this machine: their record, listing them and
removing them.

Each run on the embedded store leaves its documents, outputs and logs under
``<home>/store/runs/<task>/<run id>/``; every run (``--store`` ones too) keeps
its input and output dirs, its logs and a record (``run.json``: task, run id,
where it is stored, status) under ``<home>/work/<run id>/``
(:func:`copilot.run.cache_dir` is ``<home>``).  Sizes count each file once,
however many names it has (an output is a hard link between the two).
"""

from __future__ import annotations

import calendar
import json
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass

from copilot.errors import DataError, UsageError

#: A run's status, from the documents its prefix holds (or, for a run stored
#: elsewhere, its record); an incomplete run may still be running.
SUCCEEDED, FAILED, INTERRUPTED, INCOMPLETE = "succeeded", "failed", "interrupted", "incomplete"
STATUSES = (SUCCEEDED, FAILED, INTERRUPTED, INCOMPLETE)
#: The error document's code for a run stopped by Ctrl-C.
INTERRUPTED_CODE = "Interrupted"
#: A run's record in its work dir, and the folder its logs are kept in.
RECORD = "run.json"
LOGS = "logs"


@dataclass
class KeptRun:
    task: str
    run_id: str
    started: float  # seconds since the epoch, from the run id
    status: str
    #: The run's folder in the embedded store (None: stored elsewhere, ``store``).
    store_dir: str | None
    workdir: str | None  # None once removed (``copilot run --rm``)
    #: Where the run is stored: the embedded store's folder or ``--store``'s URI.
    store: str = ""

    def paths(self) -> list[str]:
        """What removing the run removes: never anything outside this machine."""
        return [p for p in (self.store_dir, self.workdir) if p]

    def logs(self) -> str | None:
        """The folder the command's stdout and stderr are kept in, if any is left."""
        for top in (self.store_dir, self.workdir):
            if top and os.path.isdir(os.path.join(top, LOGS)):
                return os.path.join(top, LOGS)
        return None


def write_record(workdir: str, **fields: str) -> None:
    """Add ``fields`` to the run's record (replaced whole: never half written)."""
    record = read_record(workdir)
    record.update(fields)
    path = os.path.join(workdir, RECORD)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(record, fh, indent=2)
    os.replace(tmp, path)


def read_record(workdir: str) -> dict[str, str]:
    """The run's record, or nothing (a work dir from before records, or none)."""
    try:
        with open(os.path.join(workdir, RECORD), encoding="utf-8") as fh:
            record = json.load(fh)
    except (OSError, ValueError):
        return {}
    return (
        {k: v for k, v in record.items() if isinstance(v, str)} if isinstance(record, dict) else {}
    )


def _status(store_dir: str) -> str:
    if os.path.exists(os.path.join(store_dir, "outputs.pb")):
        return SUCCEEDED
    error = os.path.join(store_dir, "error.pb")
    if not os.path.exists(error):
        return INCOMPLETE
    from flyteidl2.core import execution_pb2

    from copilot.protobuf import parse_message

    try:
        with open(error, "rb") as fh:
            code = parse_message(execution_pb2.ErrorDocument, fh.read(), error).error.code
    except (OSError, DataError):  # an unreadable document is still a failure
        code = ""
    return INTERRUPTED if code == INTERRUPTED_CODE else FAILED


def _started(run_id: str, fallback: str) -> float:
    """When the run started: its id begins with the UTC time it was made."""
    try:
        return calendar.timegm(time.strptime(run_id[:15], "%Y%m%d-%H%M%S"))
    except ValueError:
        return os.stat(fallback).st_mtime


def kept_runs(home: str) -> list[KeptRun]:
    """Every run under ``home``, oldest first: those in the embedded store, and
    every other work dir (a ``--store`` run's, or one whose store folder is gone)."""
    root = os.path.join(home, "store", "runs")
    work_root = os.path.join(home, "work")
    runs = []
    for task in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        task_dir = os.path.join(root, task)
        if not os.path.isdir(task_dir):
            continue
        for run_id in sorted(os.listdir(task_dir)):
            store_dir = os.path.join(task_dir, run_id)
            if not os.path.isdir(store_dir):
                continue
            work = os.path.join(work_root, run_id)
            runs.append(
                KeptRun(
                    task=task,
                    run_id=run_id,
                    started=_started(run_id, store_dir),
                    status=_status(store_dir),
                    store_dir=store_dir,
                    workdir=work if os.path.isdir(work) else None,
                    store=store_dir,
                )
            )
    known = {r.run_id for r in runs}
    for run_id in sorted(os.listdir(work_root)) if os.path.isdir(work_root) else []:
        work = os.path.join(work_root, run_id)
        if run_id in known or not os.path.isdir(work):
            continue
        record = read_record(work)
        runs.append(
            KeptRun(
                task=record.get("task", "?"),
                run_id=run_id,
                started=_started(run_id, work),
                status=_recorded_status(record),
                store_dir=None,
                workdir=work,
                store=record.get("run_uri", ""),
            )
        )
    return sorted(runs, key=lambda r: (r.started, r.run_id))


def _recorded_status(record: dict[str, str]) -> str:
    status = record.get("status", "")
    return status if status in STATUSES else INCOMPLETE


def find_run(runs: list[KeptRun], wanted: str) -> KeptRun:
    """The run ``wanted`` names: its id, a unique start of it, or ``task/run id``;
    ``latest`` is the newest."""
    if wanted == "latest" and runs:
        return runs[-1]
    task, _, run_id = wanted.rpartition("/")
    found = [r for r in runs if r.run_id.startswith(run_id) and task in ("", r.task)]
    exact = [r for r in found if r.run_id == run_id]
    if len(exact) == 1 or len(found) == 1:
        return (exact or found)[0]
    if not found:
        raise UsageError(f"no kept run is {wanted!r} (copilot runs lists them)")
    ids = ", ".join(r.run_id for r in found[:5])
    raise UsageError(f"{wanted!r} names more than one run ({ids}); give more of the id")


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
        if run.store_dir:
            try:
                os.rmdir(os.path.dirname(run.store_dir))  # the task's, once its last run goes
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
