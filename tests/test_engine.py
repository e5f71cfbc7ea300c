"""Choosing and driving the container engine for ``copilot run --docker`` (fast, no engine
needed; tests/test_container.py runs the real one)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import clean_env, run_copilot

from copilot.engine import Engine, _answers, find_engine
from copilot.errors import UsageError

EXAMPLE = str(Path(__file__).resolve().parents[1] / "examples" / "greeting.yaml")


def _which(present: set[str]):
    return lambda name: f"/usr/bin/{name}" if name in present else None


def _answering(working: set[str]):
    return lambda path: "" if os.path.basename(path) in working else f"'{path} info' failed: down"


def test_auto_prefers_docker_when_its_daemon_answers() -> None:
    engine = find_engine(
        which=_which({"docker", "podman"}), answers=_answering({"docker", "podman"})
    )
    assert engine == Engine("docker", "/usr/bin/docker")


def test_auto_falls_back_to_podman_when_docker_does_not_answer() -> None:
    engine = find_engine(which=_which({"docker", "podman"}), answers=_answering({"podman"}))
    assert engine == Engine("podman", "/usr/bin/podman")


def test_no_engine_names_what_each_one_answered() -> None:
    with pytest.raises(UsageError) as err:
        find_engine(which=_which({"docker"}), answers=_answering(set()))
    assert err.value.message == (
        "--docker: no container engine can run the task "
        "(docker: '/usr/bin/docker info' failed: down; podman: not on PATH)"
    )


def test_a_chosen_engine_is_used_alone() -> None:
    with pytest.raises(UsageError, match=r"\(podman: not on PATH\)"):
        find_engine("podman", which=_which({"docker"}), answers=_answering({"docker"}))
    with pytest.raises(UsageError, match="--engine: expected one of auto, docker, podman"):
        find_engine("nerdctl", which=_which({"docker"}), answers=_answering({"docker"}))


def test_answers_reports_the_engines_last_stderr_line(tmp_path: Path) -> None:
    fake = tmp_path / "docker"
    fake.write_text(
        "#!/bin/sh\necho 'Client: Docker Engine' >&2\n"
        "echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock.' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    assert _answers(str(fake)) == (
        f"'{fake} info' failed: Cannot connect to the Docker daemon at unix:///var/run/docker.sock."
    )
    ok = tmp_path / "podman"
    ok.write_text("#!/bin/sh\nexit 0\n")
    ok.chmod(0o755)
    assert _answers(str(ok)) == ""
    assert _answers(str(tmp_path / "missing")).startswith("cannot start")


def test_run_argv_mounts_dirs_and_replaces_the_entrypoint() -> None:
    argv = Engine("podman", "/usr/bin/podman").run_argv(
        "alpine:3.18",
        ["/bin/sh", "-c", "echo hi > /var/outputs/x"],
        container="copilot-run-1",
        mounts=[("/w/in", "/var/inputs", True), ("/w/out", "/var/outputs", False)],
        env={"A": "1"},
    )
    assert argv == [
        "/usr/bin/podman", "run", "--rm", "--name", "copilot-run-1",
        "-v", "/w/in:/var/inputs:ro", "-v", "/w/out:/var/outputs",
        "--env=A=1", "--entrypoint", "/bin/sh", "alpine:3.18", "-c", "echo hi > /var/outputs/x",
    ]  # fmt: skip


def test_run_docker_without_any_engine_is_a_usage_error(tmp_path: Path) -> None:
    env = clean_env(PATH=str(tmp_path), COPILOT_HOME=str(tmp_path / "home"))
    res = run_copilot(["run", EXAMPLE, "--docker"], env=env)
    assert res.returncode == 2
    assert res.stderr == (
        "copilot: error: --docker: no container engine can run the task "
        "(docker: not on PATH; podman: not on PATH)\n"
    )
    # Nothing was stored for a run that could not start.
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize("flag", [["--image", "alpine"], ["--engine", "podman"]])
def test_engine_options_need_docker(flag: list[str], tmp_path: Path) -> None:
    res = run_copilot(["run", EXAMPLE, *flag], env=clean_env(COPILOT_HOME=str(tmp_path)))
    assert res.returncode == 2
    assert res.stderr == f"copilot: error: {flag[0]} only applies with --docker\n"
