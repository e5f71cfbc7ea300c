"""The container engine behind ``copilot run --docker``.

Docker when its daemon answers, otherwise podman (which needs no daemon and no
socket); ``--engine`` picks one.  Both take the same ``run`` / ``stop``
arguments, so the rest of copilot only sees :class:`Engine`.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from copilot.errors import UsageError

ENGINES = ("docker", "podman")
#: How long ``<engine> info`` may take to say whether the engine works.
PROBE_TIMEOUT = 30.0
#: Seconds a container has between SIGTERM and SIGKILL when copilot stops it.
STOP_GRACE = 2


@dataclass(frozen=True)
class Engine:
    """A container engine command on PATH."""

    name: str
    path: str

    def run_argv(
        self,
        image: str,
        argv: Sequence[str],
        *,
        container: str,
        mounts: Sequence[tuple[str, str, bool]] = (),
        env: Mapping[str, str] | None = None,
    ) -> list[str]:
        """``run`` for a command in ``image``; ``mounts`` are (host, container, read_only)."""
        cmd = [self.path, "run", "--rm", "--name", container]
        for host, inside, read_only in mounts:
            cmd += ["-v", f"{host}:{inside}" + (":ro" if read_only else "")]
        cmd += [f"--env={k}={v}" for k, v in (env or {}).items()]
        # The task's own command replaces the image's entrypoint, as in a pod.
        if argv:
            cmd += ["--entrypoint", argv[0], image, *argv[1:]]
        else:
            cmd.append(image)
        return cmd

    def stop(self, container: str, grace: int = STOP_GRACE) -> None:
        """SIGTERM the container, SIGKILL after ``grace`` seconds; quiet if it is gone
        (the caller checks that it ended, and removes it if not)."""
        self._quietly(["stop", "--time", str(grace), container], grace + PROBE_TIMEOUT)

    def remove(self, container: str) -> None:
        """Kill and remove the container whatever its state; quiet if it is gone."""
        self._quietly(["rm", "--force", "--time", "0", container], PROBE_TIMEOUT)

    def _quietly(self, args: list[str], timeout: float) -> None:
        """Run an engine command whose output and outcome do not matter."""
        try:
            subprocess.run(
                [self.path, *args],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pass


def _answers(path: str) -> str:
    """Why the engine at ``path`` cannot run containers ('' when it can)."""
    try:
        probe = subprocess.run(
            [path, "info"], capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return f"'{path} info' did not answer within {PROBE_TIMEOUT:.0f} s"
    except OSError as exc:
        return f"cannot start {path}: {exc.strerror}"
    if probe.returncode == 0:
        return ""
    lines = [ln.strip() for ln in probe.stderr.splitlines() if ln.strip()]
    return f"'{path} info' failed" + (f": {lines[-1]}" if lines else "")


def find_engine(
    choice: str = "auto",
    *,
    which: Callable[[str], str | None] = shutil.which,
    answers: Callable[[str], str] = _answers,
) -> Engine:
    """The engine to use: ``choice`` itself, or (``auto``) the first of docker and
    podman that answers.  A missing or silent engine is a :class:`UsageError`
    naming what was tried."""
    names = ENGINES if choice == "auto" else (choice,)
    if choice != "auto" and choice not in ENGINES:
        raise UsageError(f"--engine: expected one of auto, {', '.join(ENGINES)}; got {choice!r}")
    tried = []
    for name in names:
        path = which(name)
        if path is None:
            tried.append(f"{name}: not on PATH")
            continue
        why = answers(path)
        if not why:
            return Engine(name, path)
        tried.append(f"{name}: {why}")
    raise UsageError("--docker: no container engine can run the task (" + "; ".join(tried) + ")")
