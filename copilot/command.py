"""The task's command as a process: started, its output streamed to the terminal
and kept in the run's logs, stopped with the run on Ctrl-C, and its failure
said in one line (``copilot run``'s, locally or through a container engine)."""

from __future__ import annotations

import collections
import os
import re
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any, NamedTuple

from copilot.engine import STOP_GRACE
from copilot.errors import SYSTEM, USER, CopilotError

if TYPE_CHECKING:
    from copilot.engine import Engine


class Container(NamedTuple):
    """Where ``--docker`` runs the command."""

    engine: Engine
    name: str
    image: str


#: The last lines of the command's stderr kept for its failure's message.
STDERR_TAIL_LINES = 20


def run_command(
    argv: list[str],
    env: dict[str, str],
    logs: str,
    show: bool,
    container: Container | None,
) -> tuple[int, list[str]]:
    """Run ``argv`` to its end; returns its exit status (128 + N for signal N) and
    the last lines of its stderr.

    Its stdout and stderr go to ``logs/stdout`` and ``logs/stderr`` (and, when
    ``show``, to this process's stderr).  Raises the ``OSError`` of a command that
    cannot be started, and ``KeyboardInterrupt`` once the command (or its
    container) is stopped.
    """
    tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env
    )
    sink = sys.stderr if show else None
    readers = [
        threading.Thread(
            target=_stream,
            args=(proc.stdout, sink, None, os.path.join(logs, "stdout")),
            daemon=True,
        ),
        threading.Thread(
            target=_stream,
            args=(proc.stderr, sink, tail, os.path.join(logs, "stderr")),
            daemon=True,
        ),
    ]
    for t in readers:
        t.daemon = True
        t.start()
    try:
        status = proc.wait()
    except KeyboardInterrupt:
        # Ctrl-C: the container (or command) must not outlive copilot.
        if container is not None:
            container.engine.stop(container.name)
            try:
                proc.wait(timeout=STOP_GRACE + 10)
            except subprocess.TimeoutExpired:
                # The stop did not take (an engine busy or slow to answer): remove
                # the container outright and drop the client attached to it.
                container.engine.remove(container.name)
                proc.kill()
        else:
            proc.terminate()
        proc.wait()
        raise
    for t in readers:
        t.join()
    return (128 - status if status < 0 else status), list(tail)


def _stream(pipe: Any, sink: Any, tail: collections.deque | None, keep: str) -> None:
    """Copy the command's output as it comes: to ``sink`` (the terminal, unless
    quiet), to the run's log file ``keep``, and its last lines to ``tail``."""
    with open(keep, "wb", buffering=0) as kept:  # on disk as it comes: a run can be watched
        for raw in iter(pipe.readline, b""):
            kept.write(raw)
            if sink is not None:
                sink.write(raw.decode("utf-8", "replace"))
                sink.flush()
            if tail is not None:
                tail.append(raw.decode("utf-8", "replace").rstrip("\n"))
    pipe.close()


#: The error document's code when the command itself failed.
COMMAND_FAILED = "CommandFailed"
#: What docker and podman exit with when they could not run the container at all.
ENGINE_FAILED = 125


def command_failure(status: int, tail: list[str], image: str | None) -> CopilotError:
    """The failure of a command that exited with ``status``: the user's, unless the
    container engine could not start it (an image that cannot be pulled)."""
    last = next((line.strip() for line in reversed(tail) if line.strip()), "")
    said = f": {last}" if last else ""
    if image is not None and status == ENGINE_FAILED:
        pulled = re.search(r"pull|manifest|initializing source|not found|unauthorized", last, re.I)
        what = f"the image {image} could not be pulled" if pulled else "the container engine failed"
        return CopilotError(f"{what} (status {status}){said}", origin=SYSTEM)
    return CopilotError(f"the command exited with status {status}{said}", origin=USER)


def stderr_file_tail(outdir: str) -> list[str]:
    """The last lines of ``<outdir>/_stderr``: a Flyte SDK shell task sends its
    script's stderr there rather than to the container's."""
    try:
        with open(os.path.join(outdir, "_stderr"), "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 8192))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return []
    return text.splitlines()[-STDERR_TAIL_LINES:]
