"""S4: start-up, the cost every pod pays twice."""

from __future__ import annotations

import shutil

import lits

from benchmarks.harness import FSSPEC, Bench, engine_row
from benchmarks.measure import COPILOT, PY, measure, repeat


def s4_startup(b: Bench) -> None:
    runs = max(b.runs, 5)
    py_pass = repeat(lambda: measure([PY, "-c", "pass"]), runs)
    mine = repeat(lambda: measure([COPILOT, "--help"]), runs)
    b.row("S4", "copilot --help", mine, py_pass, "python -c pass", "<=0.25 s")
    local = b.work / "s4"
    local.mkdir(exist_ok=True)
    items = {"a": lits.integer(1), "b": lits.string("two"), "c": lits.floating(3.0)}
    (local / "inputs.pb").write_bytes(lits.literal_map(items).SerializeToString())
    mine = repeat(
        lambda: measure(
            [COPILOT, "download", "-f", f"file://{local / 'inputs.pb'}", "-o", str(local / "in")]
        ),
        runs,
    )
    b.row(
        "S4",
        "download 3 primitives, file://",
        mine,
        py_pass,
        "python -c pass",
        f"<={3 * py_pass[0] + 0.1:.3f} s",
    )
    uri = b.put_inputs("s4/inputs.pb", items)
    mine = repeat(lambda: b.download(uri, local / "in-s3"), runs)
    b.row("S4", "download 3 primitives, s3://", mine, py_pass, "python -c pass",
          "<=0.5 s under --limits")  # fmt: skip
    engine_row(b, "S4", "download 3 primitives, s3://", mine,
               lambda: b.download(uri, local / "in-s3", FSSPEC), "context")  # fmt: skip
    # What obstore itself needs to read that document: its import, a client and one
    # GET.  copilot's own share (flags, protobuf, writing the files) is what is left.
    cat = repeat(lambda: b.obstore("obstore.get(store, 's4/inputs.pb').bytes()"), runs)
    b.row("S4", "download 3 primitives, s3://", mine, cat, "obstore: import, client, one GET",
          "context")  # fmt: skip
    shutil.rmtree(local)
