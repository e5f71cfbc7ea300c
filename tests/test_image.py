"""The Dockerfile's steps, performed in a fresh venv (no Docker engine runs here)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import lits
import pytest
from conftest import clean_env

ROOT = Path(__file__).resolve().parents[1]


def _dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def test_dockerfile_runs_as_non_root_with_flyte_copilot_entrypoint() -> None:
    text = _dockerfile()
    user = re.search(r"^USER\s+(\S+)", text, re.M)
    assert user and not user.group(1).startswith(("root", "0:", "0 ")) and user.group(1) != "0"
    assert re.search(r'^ENTRYPOINT \["/bin/flyte-copilot"\]', text, re.M)
    # The base is an ARG (scripts/test-image passes a local one), python:*-slim by default.
    assert re.search(r"^ARG BASE=python:3\.\d+-slim$", text, re.M)
    assert re.search(r"^FROM \$\{BASE\}$", text, re.M)
    # The install runs in a builder stage (BASE by default) and only /opt/copilot is kept.
    assert re.search(r"^ARG BUILDER=\$\{BASE\}$", text, re.M)
    assert re.search(r"^COPY --from=build /opt/copilot /opt/copilot$", text, re.M)


def test_dockerfile_version_label_matches_the_package() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    version = re.search(r'^version = "(.+)"', pyproject, re.M)
    label = re.search(r"^ARG VERSION=(\S+)$", _dockerfile(), re.M)
    assert version and label and label[1] == version[1]


@pytest.mark.slow
def test_image_install_steps_in_a_fresh_venv(installed_image: Path, tmp_path: Path) -> None:
    """scripts/install-image (what the Dockerfile runs) gives a working, read-only install."""
    exe = installed_image / "bin" / "flyte-copilot"
    assert (installed_image / "bin" / "copilot").resolve() == exe.resolve()
    assert not os.access(installed_image / "opt" / "bin", os.W_OK) or os.geteuid() == 0
    # The installed command works on its own (a file:// download), outside the repo.
    inputs = tmp_path / "inputs.pb"
    inputs.write_bytes(lits.literal_map({"n": lits.integer(7)}).SerializeToString())
    run = subprocess.run(
        [str(exe), "download", "-f", str(inputs), "-o", str(tmp_path / "in")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env(),
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "in" / "n").read_text() == "7"
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and "copilot, version" in version.stdout
    # Every store Flyte runs on is reachable from the image: obstore (S3, Azure Blob)
    # and gcsfs (GCS); the fsspec engine's s3fs and adlfs are left out for size, and
    # so is what nothing imports (protovalidate, pip).
    python = installed_image / "opt" / "bin" / "python"
    gone = ("s3fs", "adlfs", "botocore", "protovalidate", "protobuf_ext", "pip")
    probe = (
        "import importlib.util as u; import obstore, gcsfs; "
        f"print('ok', [m for m in {gone!r} if u.find_spec(m)])"
    )
    imports = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=60)
    assert imports.stdout.strip() == "ok []", imports.stderr
    # What copilot imports is compiled (the install is read-only); what nothing
    # imports is not: redis's RedisJSON commands, say.
    site = next((installed_image / "opt" / "lib").glob("python3*/site-packages"))
    assert list((site / "copilot" / "storage" / "__pycache__").glob("obstore_engine.*.pyc"))
    assert list((site / "click" / "__pycache__").glob("core.*.pyc"))
    assert not list((site / "redis" / "commands" / "json" / "__pycache__").glob("*.pyc"))
    assert not list(site.rglob("*.pyi"))
