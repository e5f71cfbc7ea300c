"""The runs ``copilot run`` keeps (issue 37): every one listed and removable, its
age in UTC, a final status for every ending, and its command's logs kept."""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from conftest import clean_env, copilot_exe, run_copilot, run_copilot_process

from copilot.errors import ErrorInfo

TASK = """\
name: chatty
inputs: {}
outputs: {n: int}
command: [sh, -c, 'echo out-line; echo err-line >&2; echo 7 > /var/outputs/n']
"""


def _task(tmp_path: Path, text: str = TASK, name: str = "chatty.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _runs(env: dict[str, str]) -> list[dict]:
    listed = run_copilot(["runs", "-o", "json"], env=env)
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)


def _error(store: Path) -> ErrorInfo:
    from flyteidl2.core import execution_pb2

    doc = execution_pb2.ErrorDocument.FromString((store / "error.pb").read_bytes())
    return ErrorInfo(code=doc.error.code, message=doc.error.message)


def test_run_ids_and_ages_are_utc_whatever_the_time_zone(tmp_path: Path) -> None:
    """A run made in New York and looked at in Tokyo minutes later is minutes old."""
    home = tmp_path / "home"
    made = run_copilot_process(
        ["run", _task(tmp_path), "-q"],
        env=clean_env(COPILOT_HOME=str(home), TZ="America/New_York"),
    )
    assert made.returncode == 0, made.stderr
    tokyo = clean_env(COPILOT_HOME=str(home), TZ="Asia/Tokyo")
    dry = run_copilot_process(["runs", "clean", "--older-than", "8h", "-n"], env=tokyo)
    assert dry.returncode == 0 and "would free 0 B (0 of 1 runs)" in dry.stderr, dry.stderr
    (run,) = json.loads(run_copilot_process(["runs", "-o", "json"], env=tokyo).stdout)
    assert run["when"].endswith("Z")
    when = datetime.datetime.fromisoformat(run["when"].replace("Z", "+00:00"))
    age = datetime.datetime.now(datetime.timezone.utc) - when
    assert datetime.timedelta(0) <= age < datetime.timedelta(minutes=10), run["when"]


def test_a_store_runs_work_dir_is_listed_and_cleaned(tmp_path: Path) -> None:
    """``--store`` elsewhere: the work dir under $COPILOT_HOME is still the run's, so
    ``runs`` lists it and ``runs clean --all`` removes it (not what was stored)."""
    home = tmp_path / "home"
    env = clean_env(COPILOT_HOME=str(home))
    elsewhere = tmp_path / "elsewhere"
    ran = run_copilot(["run", _task(tmp_path), "--store", str(elsewhere), "-q"], env=env)
    assert ran.returncode == 0, ran.stderr
    (run,) = _runs(env)
    assert run["task"] == "chatty" and run["status"] == "succeeded" and run["bytes"] > 0
    assert run["store"].removeprefix("file://").startswith(f"{elsewhere}/runs/chatty/")
    dry = run_copilot(["runs", "clean", "--all", "-n"], env=env)
    assert f"its work dir only, not {run['store']}" in dry.stdout
    cleaned = run_copilot(["runs", "clean", "--all"], env=env)
    assert "removed 1 of 1 runs" in cleaned.stderr
    assert not list((home / "work").iterdir())
    assert list(elsewhere.glob("runs/chatty/*/outputs.pb")), "the store's copy was touched"
    assert _runs(env) == []


def test_a_command_that_cannot_start_ends_the_run_failed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = clean_env(COPILOT_HOME=str(home))
    task = _task(tmp_path, TASK.replace("[sh, -c,", "[copilot-no-such-command, -c,"))
    ran = run_copilot(["run", task, "-q"], env=env)
    assert ran.returncode == 127, ran.stderr
    assert "cannot start the command 'copilot-no-such-command'" in ran.stderr
    (run,) = _runs(env)
    assert run["status"] == "failed"
    assert "cannot start the command" in _error(Path(run["store"])).message
    assert "copilot inspect file://" in ran.stderr and "/error.pb" in ran.stderr
    cleaned = run_copilot(["runs", "clean", "--status", "failed"], env=env)
    assert "removed 1 of 1 runs" in cleaned.stderr and _runs(env) == []


def test_ctrl_c_ends_the_run_interrupted(tmp_path: Path) -> None:
    home = tmp_path / "home"
    task = _task(tmp_path, TASK.replace("echo out-line;", "echo out-line; sleep 60;"))
    proc = subprocess.Popen(
        [copilot_exe(), "run", task],
        env=clean_env(COPILOT_HOME=str(home)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The command has started once its first line is in the run's log.
        for _ in range(600):
            logs = list(home.glob("work/*/logs/stdout"))
            if logs and logs[0].read_text():
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the command never started")
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    (run,) = _runs(clean_env(COPILOT_HOME=str(home)))
    assert run["status"] == "interrupted"
    error = _error(Path(run["store"]))
    assert error.code == "Interrupted" and "interrupted (Ctrl-C)" in error.message
    assert (Path(run["store"]) / "logs" / "stdout").read_text() == "out-line\n"


def test_a_runs_logs_are_kept_and_shown_again(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = clean_env(COPILOT_HOME=str(home))
    ran = run_copilot(["run", _task(tmp_path), "-q"], env=env)
    assert ran.returncode == 0 and "out-line" not in ran.stderr
    (run,) = _runs(env)
    assert (Path(run["store"]) / "logs" / "stderr").read_text() == "err-line\n"
    shown = run_copilot(["runs", "logs", "latest"], env=env)
    assert shown.returncode == 0
    assert shown.stdout == "out-line\n" and shown.stderr == "err-line\n"
    by_id = run_copilot(["runs", "logs", run["run_id"][:17], "--stream", "stderr"], env=env)
    assert by_id.stdout == "" and by_id.stderr == "err-line\n"
    unknown = run_copilot(["runs", "logs", "19990101"], env=env)
    assert unknown.returncode == 2 and "no kept run is '19990101'" in unknown.stderr
    # Without the work dir (--rm), the store's copy is shown.
    removed = run_copilot(["run", _task(tmp_path), "-q", "--rm"], env=env)
    assert removed.returncode == 0
    again = run_copilot(["runs", "logs", "latest"], env=env)
    assert again.stdout == "out-line\n"


def test_cleaning_a_task_that_has_no_runs_says_so(tmp_path: Path) -> None:
    env = clean_env(COPILOT_HOME=str(tmp_path / "home"))
    assert run_copilot(["run", _task(tmp_path), "-q"], env=env).returncode == 0
    nosuch = run_copilot(["runs", "clean", "--task", "nosuch"], env=env)
    assert nosuch.returncode == 2
    assert "no kept run is of that task (tasks: chatty)" in nosuch.stderr


def test_a_local_input_is_stored_under_its_own_name_not_its_local_path(tmp_path: Path) -> None:
    """``-i script.py=/home/<user>/…/add.py``: the run's store gets
    ``data/script.py/add.py``; nothing of the local path, which may be a shared bucket's."""
    home = tmp_path / "home"
    env = clean_env(COPILOT_HOME=str(home))
    local = tmp_path / "private-folder" / "add.py"
    local.parent.mkdir()
    local.write_text("print(1)\n")
    task = _task(
        tmp_path,
        "name: files\ninputs: {script.py: File, more: 'list[File]'}\noutputs: {}\n"
        "command: [cat, '{{.inputs.script.py}}']\n",
    )
    twin = tmp_path / "other" / "add.py"
    twin.parent.mkdir()
    twin.write_text("print(2)\n")
    ran = run_copilot(
        ["run", task, "-i", f"script.py={local}", "-i", f"more=[{local}, {twin}]", "--dry-run"],
        env=env,
    )
    assert ran.returncode == 0, ran.stderr
    plan = json.loads(ran.stdout)
    stored = sorted(u["to"].split("/data/", 1)[1] for u in plan["uploads"])
    assert stored == ["more/1/add.py", "more/add.py", "script.py/add.py"]
    assert not any("private-folder" in u["to"] or "other" in u["to"] for u in plan["uploads"])
    assert plan["inputs"]["script.py"]["value"].endswith("/data/script.py/add.py")


IMAGED = TASK.replace("name: chatty\n", "name: chatty\nimage: alpine:3.18\n")


def test_a_tasks_image_is_shown_and_running_without_it_is_said(tmp_path: Path) -> None:
    env = clean_env(COPILOT_HOME=str(tmp_path / "home"))
    task = _task(tmp_path, IMAGED)
    ran = run_copilot(["run", task], env=env)
    assert ran.returncode == 0
    assert "the task names the image alpine:3.18; its command runs on this machine" in ran.stderr
    plan = json.loads(run_copilot(["run", task, "--dry-run"], env=env).stdout)
    assert plan["image"] == "alpine:3.18" and plan["in_container"] is False
    assert "without --docker it runs here" in plan["notes"][0]


def test_a_docker_dry_run_shows_the_plan_where_no_engine_answers(tmp_path: Path) -> None:
    """No docker or podman on PATH: the plan is still shown, with the engine's
    command line and a note; nothing is run or written."""
    empty = tmp_path / "bin"
    empty.mkdir()
    env = clean_env(COPILOT_HOME=str(tmp_path / "home"), PATH=str(empty))
    ran = run_copilot(["run", _task(tmp_path, IMAGED), "--dry-run", "--docker"], env=env)
    assert ran.returncode == 0, ran.stderr
    plan = json.loads(ran.stdout)
    assert plan["command"][:2] == ["docker", "run"] and "alpine:3.18" in plan["command"]
    assert plan["in_container"] is True
    assert "no container engine can run the task" in plan["notes"][0]
    assert not (tmp_path / "home").exists()


def test_an_output_not_written_names_the_tasks_path_and_what_was_written(tmp_path: Path) -> None:
    env = clean_env(COPILOT_HOME=str(tmp_path / "home"))
    task = _task(tmp_path, TASK.replace("/var/outputs/n'", "/var/outputs/nn'"))
    ran = run_copilot(["run", task, "-q"], env=env)
    assert ran.returncode == 1
    said = "output 'n': expected int at /var/outputs/n, found nothing there; the command wrote 'nn'"
    line = next(x for x in ran.stderr.splitlines() if "error document:" in x)
    assert said in line and "/work/" not in line
    (run,) = _runs(env)
    assert said in _error(Path(run["store"])).message


def test_a_number_too_big_for_its_type_is_said_to_be_out_of_range(tmp_path: Path) -> None:
    env = clean_env(COPILOT_HOME=str(tmp_path / "home"))
    script = str(Path(__file__).resolve().parents[1] / "examples" / "script_runner.yaml")
    big = run_copilot(
        ["run", script, "-i", "a=99999999999999999999", "-i", "b=1", "--dry-run"], env=env
    )
    assert big.returncode == 2
    assert "input 'a': 99999999999999999999 is out of range for a 64-bit integer" in big.stderr


def test_a_pod_with_nothing_staged_says_how_to_stage(tmp_path: Path) -> None:
    script = str(Path(__file__).resolve().parents[1] / "examples" / "script_runner.yaml")
    prefix = f"file://{tmp_path}/runs/x"
    ran = run_copilot(["pod", script, "--prefix", prefix], env=clean_env())
    assert ran.returncode == 2
    assert f"{prefix}/inputs.pb does not exist: stage the inputs first (copilot stage" in ran.stderr
    assert "with -i" in ran.stderr


def test_a_command_too_long_to_start_ends_the_run_failed_and_says_why(tmp_path: Path) -> None:
    """An input rendered into the command beyond what exec takes (E2BIG): failed,
    with error.pb and the way out, not a run that looks alive."""
    home = tmp_path / "home"
    env = clean_env(COPILOT_HOME=str(home))
    task = _task(
        tmp_path,
        "name: long\ninputs: {s: str}\noutputs: {}\ncommand: [echo, '{{.inputs.s}}']\n",
        "long.yaml",
    )
    ran = run_copilot(["run", task, "-q", "-i", "s=" + "x" * (3 << 20)], env=env)
    assert ran.returncode == 126, ran.stderr
    said = "cannot start the command 'echo': Argument list too long (an input rendered"
    assert said in ran.stderr
    (run,) = _runs(env)
    assert run["status"] == "failed" and said in _error(Path(run["store"])).message
