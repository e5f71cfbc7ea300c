"""The Dockerfile's steps, performed in a fresh venv (no Docker engine runs here)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import lits
from conftest import clean_env

ROOT = Path(__file__).resolve().parents[1]


def _dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def test_dockerfile_runs_as_non_root_with_flyte_copilot_entrypoint() -> None:
    text = _dockerfile()
    user = re.search(r"^USER\s+(\S+)", text, re.M)
    assert user and not user.group(1).startswith(("root", "0:", "0 ")) and user.group(1) != "0"
    assert re.search(r'^ENTRYPOINT \["/bin/flyte-copilot"\]', text, re.M)
    assert re.search(r"^FROM python:3\.\d+-slim", text, re.M)


def test_image_install_steps_in_a_fresh_venv(tmp_path: Path) -> None:
    text = _dockerfile()
    m = re.search(r"/src/scripts/install-image (\S+) (\S+) (\S+)", text)
    assert m, "the Dockerfile no longer installs with scripts/install-image"
    # The same COPY set as the image: only what the Dockerfile copies is used.
    src = tmp_path / "src"
    (src / "scripts").mkdir(parents=True)
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        *parts, dest = line.split()
        for part in parts:
            source = ROOT / part
            target = src / Path(dest).relative_to("/src")
            if dest.endswith("/"):
                target = target / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, target)
    prefix, bindir = tmp_path / "opt" / "copilot", tmp_path / "bin"
    res = subprocess.run(
        [str(src / "scripts" / "install-image"), str(src), str(prefix), str(bindir)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "copilot, version" in res.stdout
    exe = bindir / "flyte-copilot"
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
    assert (bindir / "copilot").resolve() == exe.resolve()
