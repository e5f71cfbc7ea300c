"""Running the sidecar the way Kubernetes does: started first, told to finish by SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import lits
from conftest import clean_env, copilot_exe, record
from flyteidl2.core import interface_pb2, literals_pb2

if TYPE_CHECKING:
    from stores import Remote


def typed_interface(outputs: dict, inputs: dict | None = None) -> interface_pb2.TypedInterface:
    return interface_pb2.TypedInterface(
        inputs=lits.variable_map(inputs or {}), outputs=lits.variable_map(outputs)
    )


def noop_sidecar_args(
    s3: Remote, outdir, *extra: str, flags=None, prefix: str = "meta/", raw: str = "raw/"
) -> list[str]:
    """`copilot ... sidecar` arguments for a run that does not wait (the noop watcher)."""
    return [
        *(s3.stow_flags() if flags is None else flags),
        "sidecar",
        "--exit-watcher-type",
        "noop",
        "-o",
        s3.uri(prefix),
        "-x",
        s3.uri(raw),
        "-f",
        str(outdir),
        *extra,
    ]


class _Documents:
    """What a finished sidecar left in the store."""

    s3: Remote
    prefix: str

    def outputs(self) -> literals_pb2.LiteralMap:
        lm = literals_pb2.LiteralMap()
        lm.ParseFromString(self.s3.get(self.prefix + "outputs.pb"))
        return lm

    def has_outputs(self) -> bool:
        return self.s3.exists(self.prefix + "outputs.pb")

    def error(self):
        return lits.read_error_document(self.s3.get(self.prefix + "error.pb"))

    def has_error(self) -> bool:
        return self.s3.exists(self.prefix + "error.pb")


def _sidecar_args(
    s3: Remote,
    outdir: Path,
    outputs: dict,
    extra: tuple[str, ...],
    prefix: str,
    raw: str,
    watcher: str,
) -> list[str]:
    return [
        *s3.stow_flags(),
        "sidecar",
        "--timeout",
        "1h0m0s",
        "--to-raw-output",
        s3.uri(raw),
        "--to-output-prefix",
        s3.uri(prefix),
        "--from-local-dir",
        str(outdir),
        "--interface",
        lits.b64(typed_interface(outputs)),
        "--exit-watcher-type",
        watcher,
        *extra,
    ]


class FinishedSidecar(_Documents):
    """A sidecar run to the end in this process with the noop watcher (nothing to wait for)."""

    def __init__(
        self,
        s3: Remote,
        outdir: Path,
        outputs: dict,
        *extra: str,
        prefix: str = "meta/",
        raw: str = "raw/",
    ) -> None:
        from conftest import run_copilot

        self.s3 = s3
        self.prefix = prefix
        outdir.mkdir(parents=True, exist_ok=True)
        self.result = run_copilot(_sidecar_args(s3, outdir, outputs, extra, prefix, raw, "noop"))


class Sidecar(_Documents):
    """A `copilot sidecar` subprocess against a bucket on one of the test stores."""

    def __init__(
        self,
        s3: Remote,
        outdir: Path,
        outputs: dict,
        *extra: str,
        prefix: str = "meta/",
        raw: str = "raw/",
        watcher: str = "signal",
    ) -> None:
        self.s3 = s3
        self.prefix = prefix
        outdir.mkdir(parents=True, exist_ok=True)
        args = [copilot_exe(), *_sidecar_args(s3, outdir, outputs, extra, prefix, raw, watcher)]
        self._early: list[str] = []  # log lines read before the end (wait_for_log)
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
        )

    def wait_for_log(self, fragment: str) -> None:
        """Read the process's log until a line holds ``fragment`` (the suite's hang
        guard bounds the wait): an event the process signals, not a sleep."""
        assert self.proc.stderr is not None
        while True:
            line = self.proc.stderr.readline()
            if not line:
                raise AssertionError(f"exited without logging {fragment!r}: {self._early}")
            self._early.append(line)
            if fragment in line:
                return

    def wait_ready(self, seconds: float = 10) -> None:
        """Wait until the process catches SIGTERM (its handler is the first thing it installs).

        A signal sent before the interpreter has even started would kill any
        program; in a pod the main container cannot finish that fast.
        """
        wait_catches_sigterm(self.proc.pid, seconds)

    def terminate_and_wait(self, timeout: float = 120) -> subprocess.CompletedProcess:
        self.wait_ready()
        self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float = 120) -> subprocess.CompletedProcess:
        out, err = self.proc.communicate(timeout=timeout)
        err = "".join(self._early) + err
        record(out, err)
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, out, err)


def wait_catches_sigterm(pid: int, seconds: float = 10) -> None:
    """Poll /proc/<pid>/status until SIGTERM is in the caught-signals mask."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return
        for line in status.splitlines():
            if line.startswith("SigCgt:") and int(line.split()[1], 16) & (
                1 << (signal.SIGTERM - 1)
            ):
                return
        time.sleep(0.005)
    raise AssertionError(f"process {pid} never installed a SIGTERM handler")


def run_main(script: str, *args: str) -> None:
    """The "main container": a separate process that writes the output files."""
    res = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
