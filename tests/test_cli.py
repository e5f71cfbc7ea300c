"""The command line as users meet it: help, bad arguments, lazy backends."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import lits
import pytest
from conftest import clean_env, record, run_copilot


def test_no_subcommand_prints_help_and_fails() -> None:
    res = run_copilot([])
    assert res.returncode != 0
    assert "download" in res.stderr + res.stdout
    assert "Usage" in res.stderr + res.stdout


def test_help_lists_storage_flags() -> None:
    res = run_copilot(["--help"])
    assert res.returncode == 0
    assert "--storage.stow.config" in res.stdout
    assert "--err-output-name" in res.stdout
    # The stow keys, per kind, straight from the table that also checks them.
    from copilot.config import STOW_KEYS

    text = " ".join(res.stdout.split())
    for kind, keys in STOW_KEYS.items():
        assert f"{kind}: {keys[0]}," in text or f"{kind}: {keys[0]}" in text
        for key in keys:
            assert key in text


def test_invalid_enum_names_the_allowed_values(tmp_path: Path) -> None:
    res = run_copilot(["download", "-f", "x", "-o", str(tmp_path), "--format", "XML"])
    assert res.returncode == 2
    assert "XML" in res.stderr
    for allowed in ("JSON", "YAML", "PROTO"):
        assert allowed in res.stderr
    assert "Traceback" not in res.stderr


def test_lower_case_enum_is_accepted(tmp_path: Path) -> None:
    src = tmp_path / "inputs.pb"
    src.write_bytes(lits.literal_map({"a": lits.integer(1)}).SerializeToString())
    res = run_copilot(["download", "-f", str(src), "-o", str(tmp_path / "in"), "-m", "yaml"])
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "in" / "inputs.yaml").read_text() == "a: 1\n"


def test_bad_duration_is_a_usage_error(tmp_path: Path) -> None:
    res = run_copilot(["download", "-f", "x", "-o", str(tmp_path), "--timeout", "ten minutes"])
    assert res.returncode == 2
    assert "Go syntax" in res.stderr


def test_missing_required_flag_is_one_line(tmp_path: Path) -> None:
    res = run_copilot(["download", "-o", str(tmp_path)])
    assert res.returncode == 2
    assert res.stderr.strip() == "copilot: error: download: --from-remote is required"


def test_unknown_storage_flag_is_reported() -> None:
    res = run_copilot(["--storage.bogus", "download"])
    assert res.returncode == 2
    assert "unknown flag --storage.bogus" in res.stderr


def test_file_store_download_never_imports_s3_backends(tmp_path: Path) -> None:
    """A file:// run must not pay for s3fs / aiobotocore imports."""
    src = tmp_path / "inputs.pb"
    (tmp_path / "blob.txt").write_text("local blob")
    src.write_bytes(
        lits.literal_map(
            {"a": lits.integer(1), "f": lits.blob(str(tmp_path / "blob.txt"))}
        ).SerializeToString()
    )
    # copilot leaves through os._exit: the report hooks that.
    probe = (
        "import os, sys\n"
        "leave = os._exit\n"
        "def report(code):\n"
        "    print('LOADED', sorted(m for m in sys.modules if m.split('.')[0] in "
        "('s3fs', 'aiobotocore', 'botocore', 'aiohttp', 'obstore')), flush=True)\n"
        "    leave(code)\n"
        "os._exit = report\n"
        "from copilot.cli import main\n"
        f"main(['download', '-f', 'file://{src}', '-o', '{tmp_path / 'in'}'])\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=clean_env()
    )
    record(res.stdout, res.stderr)
    assert res.returncode == 0, res.stderr
    assert "LOADED []" in res.stdout
    assert (tmp_path / "in" / "f").read_text() == "local blob"


def test_progress_on_a_terminal_and_a_summary_without_one(tmp_path: Path) -> None:
    """A TTY gets a byte-level progress line; a pipe gets only the JSON summary line."""
    import json as _json
    import os
    import pty

    blob = tmp_path / "big.bin"
    blob.write_bytes(os.urandom(1 << 20))
    items = {f"f{i}": lits.blob(str(blob)) for i in range(40)}
    src = tmp_path / "inputs.pb"
    src.write_bytes(lits.literal_map(items).SerializeToString())
    base = ["--logger.level=4", "--logger.formatter.type=json", "download", "-f", str(src)]

    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [*_copilot(), *base, "-o", str(tmp_path / "tty"), "--concurrency", "1"],
        stdout=subprocess.DEVNULL,
        stderr=secondary,
        env={**clean_env(), "COPILOT_PROGRESS_DELAY": "0"},
    )
    os.close(secondary)
    shown = _read_all(primary)
    assert proc.wait(timeout=60) == 0
    assert "\rdownload:" in shown and "40/40 files" in shown and "MiB" in shown
    # Done of the total, and the time left: the sizes came with the copies.
    assert "40.0 MiB of 40.0 MiB, 40/40 files" in shown and ", ETA 0:00:00" in shown

    began = time.monotonic()
    res = run_copilot([*base, "-o", str(tmp_path / "pipe")])
    wall = time.monotonic() - began
    assert res.returncode == 0, res.stderr
    assert "\r" not in res.stderr
    summary = [_json.loads(line) for line in res.stderr.splitlines() if line.startswith("{")]
    done = [s for s in summary if s["msg"].startswith("downloaded")]
    assert done and done[0]["files"] == 40 and done[0]["bytes"] == 40 << 20
    # The step's own clock: a float inside the call's wall time, not a placeholder.
    assert isinstance(done[0]["seconds"], float) and 0 < done[0]["seconds"] <= wall


def _copilot() -> list[str]:
    from conftest import copilot_exe

    return [copilot_exe()]


class _Captured(Exception):
    pass


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], 32),
        (["--concurrency-per-cpu", "3"], "3x"),
        (["--concurrency-per-cpu", "0"], "4x"),
        (["--concurrency-per-cpu", "-2"], "4x"),
        (["--concurrency-per-cpu", "100000"], 1024),
        (["--concurrency-per-cpu", "3", "--concurrency", "5"], 5),
        (["--concurrency", "7", "--concurrency-per-cpu", "3"], 7),
    ],
)
@pytest.mark.parametrize("command", ["download", "sidecar"])
def test_concurrency_per_cpu_maps_onto_concurrency(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, command: str, args: list[str], expected
) -> None:
    """Upstream's --concurrency-per-cpu (flyte PR #7730), with an explicit --concurrency winning."""
    import importlib
    import os

    from click.testing import CliRunner

    import copilot.cli

    seen: list[int] = []

    def capture(settings, label, concurrency):
        seen.append(concurrency)
        raise _Captured

    monkeypatch.setattr(importlib.import_module(f"copilot.cli.{command}"), "_step_store", capture)
    common = ["-f", "in.pb", "-o", str(tmp_path)]
    if command == "sidecar":
        common = ["-f", str(tmp_path), "-o", str(tmp_path / "meta")]
    CliRunner().invoke(copilot.cli.main_group, [command, *common, *args])
    cpus = len(os.sched_getaffinity(0))
    if isinstance(expected, str):
        expected = min(1024, cpus * int(expected[:-1]))
    assert seen == [expected]


def test_a_bug_leaves_its_traceback_on_stderr_and_one_line_in_the_document(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An internal error is reported as one, with its traceback at the default log level."""
    from click.testing import CliRunner

    import copilot.literals.to_files
    from copilot.cli import main_group

    def broken(self, inputs):
        raise KeyError("a bug")

    monkeypatch.setattr(copilot.literals.to_files.InputWriter, "lay_out", broken)
    src = tmp_path / "inputs.pb"
    src.write_bytes(lits.literal_map({"a": lits.integer(1)}).SerializeToString())
    prefix = tmp_path / "meta"
    result = CliRunner().invoke(
        main_group,
        ["download", "-f", str(src), "-o", str(tmp_path / "in"), "--to-output-prefix", str(prefix)],
    )
    assert result.exit_code == 0  # recorded in the document, as upstream
    assert "Traceback (most recent call last)" in result.stderr
    assert "KeyError: 'a bug'" in result.stderr
    doc = lits.read_error_document((prefix / "error.pb").read_bytes())
    assert doc.message == "internal error: KeyError: 'a bug'"


@pytest.mark.parametrize(
    "where",
    [
        ["--storage.type=s3", "interface", "encode", "{f}"],
        ["interface", "--storage.type=s3", "encode", "{f}"],
        ["interface", "encode", "{f}", "--storage.type=s3"],
        ["interface", "encode", "{f}", "--storage.type", "s3", "--logger.level=4"],
    ],
)
def test_global_flags_stand_anywhere_in_a_nested_group(where: list[str], tmp_path: Path) -> None:
    f = tmp_path / "task.yaml"
    f.write_text("outputs:\n  n: int\n")
    res = run_copilot([a.replace("{f}", str(f)) for a in where])
    assert res.returncode == 0, res.stderr
    assert "interface: " in res.stdout


def test_a_progress_line_shows_done_of_total_rate_and_time_left() -> None:
    import io

    from copilot.progress import Progress

    shown = Progress("upload", stream=io.StringIO(), enabled=True, delay=0)
    shown.expect(2, 4 << 20)
    shown.advance(1 << 20, files=1)
    line = shown.line(shown.started + 1.0)
    assert line == "upload: 1.0 MiB of 4.0 MiB, 1/2 files, 1.0 MiB/s, ETA 0:00:03"
    # A size not known yet (a download before its first response): no total, no ETA.
    shown.expect(1, None)
    assert "of" not in shown.line(shown.started + 1.0).split(",")[0]
    assert "ETA" not in shown.line(shown.started + 1.0)
    shown.sized(1, 2 << 20)
    shown.sized(1, 2 << 20)  # told again (a retried download): counted once
    assert shown.line(shown.started + 1.0).startswith("upload: 1.0 MiB of 6.0 MiB, 1/3 files")


def test_stage_shows_its_upload_on_a_terminal(s3, tmp_path: Path) -> None:
    """``copilot stage`` (and ``copilot run``'s steps) show the transfer line too."""
    import os
    import pty

    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 << 20))
    task = tmp_path / "t.yaml"
    task.write_text("name: t\ninputs: {f: File}\noutputs: {}\ncommand: ['true']\n")
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [*_copilot(), *s3.stow_flags(), "stage", str(task), "--prefix", s3.uri("runs/p"),
         "-i", f"f={big}"],
        stdout=subprocess.DEVNULL, stderr=secondary,
        env={**s3.env(), "COPILOT_PROGRESS_DELAY": "0"},
    )  # fmt: skip
    os.close(secondary)
    shown = _read_all(primary)
    assert proc.wait(timeout=60) == 0, shown
    assert "\rupload inputs: 3.0 MiB of 3.0 MiB, 1/1 files" in shown, shown


def _read_all(primary: int) -> str:
    """Everything written to a pty until its other end is closed."""
    import os

    chunks = []
    while True:
        try:
            data = os.read(primary, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks).decode()
