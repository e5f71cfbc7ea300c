"""Console entry point: the one place that owns process-wide state.

SIGTERM's handler goes in first, then everything else is loaded.  Library
callers (and the CLI run in-process) leave handlers, the root logger and the
environment as they found them.
"""

from __future__ import annotations


def main() -> None:
    import os

    from copilot import _signals

    _signals.install()
    # gcsfs chooses its filesystem class when imported: its experimental
    # zonal-bucket class costs imports and a gRPC lookup per bucket.
    # copilot takes the plain class either way (storage/gcs.py); in its own
    # process it also skips the import, unless the user asked for the feature.
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    from copilot.cli import main as cli_main

    cli_main()
