"""copilot's benchmark (``scripts/bench``): one module per scenario over a shared runner.

:mod:`~benchmarks.measure` times one command and its peak RSS,
:mod:`~benchmarks.servers` starts the S3 servers, :mod:`~benchmarks.harness`
holds what the scenarios share (the bucket, copilot's invocations, the rows
against each baseline), :mod:`~benchmarks.report` writes docs/BENCHMARKS.md;
``s1_large_file`` … ``s9_faster_server`` are the scenarios, and ``python -m
benchmarks`` (what ``scripts/bench`` runs) the command line.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The test helpers build the Flyte literals the scenarios store (tests/lits.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
