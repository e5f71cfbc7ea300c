"""Start-up imports only what the command needs (what makes a 3-primitive download
cost little more than ``import s3fs``): each command runs in a fresh interpreter
and reports the modules it ended with."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lits
import pytest
from conftest import S3, clean_env

# Runs the CLI as the console script does, then prints every top-level module and
# every copilot module loaded, whatever the exit code.
# (copilot leaves through os._exit, so the report hooks that, not atexit.)
_PROBE = """
import os, sys
leave = os._exit
def report(code):
    names = sorted(set(sys.modules))
    sys.stderr.write("MODULES " + " ".join(names) + "\\n")
    sys.stderr.flush()
    leave(code)
os._exit = report
sys.argv = ["copilot", *sys.argv[1:]]
from copilot.cli import main
main()
"""

#: Store backends and their HTTP stacks: imported only by a URI that needs one.
BACKENDS = ("s3fs", "botocore", "aiobotocore", "aiohttp", "gcsfs", "adlfs", "azure")
#: The sidecar's half of copilot: a download never needs it.
SIDECAR_ONLY = ("copilot.outputs", "copilot.watchers", "copilot.literals.from_files")


def _modules(args: list[str], env: dict[str, str] | None = None) -> set[str]:
    res = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        env=env or clean_env(),
        timeout=60,
    )
    lines = [line for line in res.stderr.splitlines() if line.startswith("MODULES ")]
    assert lines, res.stderr[-2000:]
    return set(lines[-1].split()[1:])


def _tops(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def _inputs(tmp_path: Path) -> Path:
    items = {"a": lits.integer(1), "b": lits.string("two"), "c": lits.floating(3.0)}
    path = tmp_path / "inputs.pb"
    path.write_bytes(lits.literal_map(items).SerializeToString())
    return path


def test_help_imports_no_store_protobuf_or_event_loop() -> None:
    tops = _tops(_modules(["--help"]))
    unwanted = {"fsspec", "flyteidl2", "google", "asyncio", "yaml", *BACKENDS}
    assert tops.isdisjoint(unwanted), sorted(tops & unwanted)


def test_a_local_download_imports_no_fsspec_no_event_loop_and_no_sidecar_code(
    tmp_path: Path,
) -> None:
    """file:// is plain os calls: fsspec and asyncio (~50 ms) are left unloaded,
    with a Dir copied and its progress counted too."""
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "x.txt").write_text("x")
    items = {"a": lits.integer(1), "d": lits.blob(str(tree), multipart=True)}
    inputs = tmp_path / "inputs.pb"
    inputs.write_bytes(lits.literal_map(items).SerializeToString())
    mods = _modules(["download", "-f", f"file://{inputs}", "-o", str(tmp_path / "in")])
    assert (tmp_path / "in" / "a").read_text() == "1"
    assert (tmp_path / "in" / "d" / "sub" / "x.txt").read_text() == "x"
    unwanted = {"fsspec", "asyncio", *BACKENDS}
    assert _tops(mods).isdisjoint(unwanted), sorted(_tops(mods) & unwanted)
    assert mods.isdisjoint(SIDECAR_ONLY), sorted(mods & set(SIDECAR_ONLY))


@pytest.mark.parametrize("fmt", ["JSON", "YAML"])
def test_yaml_is_imported_only_for_yaml_metadata(tmp_path: Path, fmt: str) -> None:
    inputs = _inputs(tmp_path)
    mods = _modules(["download", "-f", f"file://{inputs}", "-o", str(tmp_path / fmt), "-m", fmt])
    assert ("yaml" in _tops(mods)) == (fmt == "YAML")


@pytest.mark.parametrize(
    ("engine", "loaded", "absent"),
    [
        # The native engine: no Python HTTP stack at all.
        ("auto", "obstore", {"s3fs", "botocore", "aiohttp", "fsspec", "gcsfs", "adlfs", "azure"}),
        ("fsspec", "s3fs", {"obstore", "gcsfs", "adlfs", "azure"}),
    ],
)
def test_an_s3_download_imports_its_engine_only_and_no_sidecar_code(
    s3: S3, tmp_path: Path, engine: str, loaded: str, absent: set[str]
) -> None:
    # A File too: its transfer reports progress, which on the native engine must
    # not pull in fsspec (its callbacks module) on the event loop's thread.
    s3.put("startup/reads.fq", b"ACGT\n")
    items = {"b": lits.string("two"), "f": lits.blob(s3.uri("startup/reads.fq"))}
    s3.put("startup/inputs.pb", lits.literal_map(items).SerializeToString())
    uri = s3.uri("startup/inputs.pb")
    flags = [*s3.stow_flags(), f"--storage.engine={engine}"]
    mods = _modules([*flags, "download", "-f", uri, "-o", str(tmp_path / "in")])
    assert (tmp_path / "in" / "b").read_text() == "two"
    assert (tmp_path / "in" / "f").read_bytes() == b"ACGT\n"
    assert loaded in _tops(mods)
    assert _tops(mods).isdisjoint(absent), sorted(_tops(mods) & absent)
    assert mods.isdisjoint(SIDECAR_ONLY), sorted(mods & set(SIDECAR_ONLY))
