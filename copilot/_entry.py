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
    _fewer_malloc_arenas()
    # gcsfs chooses its filesystem class when imported: its experimental
    # zonal-bucket class costs imports and a gRPC lookup per bucket.
    # copilot takes the plain class either way (storage/gcs.py); in its own
    # process it also skips the import, unless the user asked for the feature.
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    from copilot.cli import main as cli_main

    cli_main()


#: glibc's ``M_ARENA_MAX`` (malloc.h).
_M_ARENA_MAX = -8


def _fewer_malloc_arenas() -> None:
    """Two malloc arenas instead of up to eight per CPU, before any thread exists.

    Each arena reserves 64 MiB of address space; with the engine's threads that
    reserve is what a container with an address-space limit (``ulimit -v``) runs
    out of first: under ``prlimit --as=200MiB`` threads failed to start without
    this, and a 10,000-file Dir went up with it (at 150 MiB too).  Resident
    memory is not changed; the ``ctypes`` import adds little to start-up.
    A ``MALLOC_ARENA_MAX`` the user set wins; not glibc: nothing to do.
    """
    import os

    if "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.mallopt(_M_ARENA_MAX, 2)
    except (OSError, AttributeError):
        pass  # musl and others have no mallopt
