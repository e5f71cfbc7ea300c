"""What a new user trips on in the first hour (issue 26): each one line and an exit code."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import clean_env, copilot_exe, run_copilot

from copilot import __version__
from copilot.cli import main_group

ROOT = Path(__file__).resolve().parents[1]
GREETING = str(ROOT / "examples" / "greeting.yaml")


@pytest.mark.parametrize(
    "args",
    [
        ["interface", "encode", GREETING],
        ["--help"],
        ["--version"],
        ["run", "--help"],
    ],
    ids=["command", "help", "version", "command-help"],
)
def test_output_into_a_closed_pipe_exits_quietly(args: list[str]) -> None:
    """``copilot ... | head -1``: the reader is gone before anything is written; the
    process says nothing and exits 141 (128 + SIGPIPE), as Unix tools do."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write fails: deterministic, whatever the timing
    try:
        ran = subprocess.run(
            [copilot_exe(), *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=clean_env(),
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert ran.returncode == 141, ran.stderr
    assert ran.stderr == b"", ran.stderr.decode()


def test_version_as_a_command_matches_the_flag() -> None:
    flag = run_copilot(["--version"])
    command = run_copilot(["version"])
    assert command.returncode == flag.returncode == 0
    assert command.stdout == flag.stdout == f"copilot, version {__version__}\n"


def test_interface_decode_reads_a_base64_value_or_a_document_from_stdin(tmp_path: Path) -> None:
    encoded = run_copilot(["interface", "encode", GREETING, "--only", "interface"]).stdout
    by_value = run_copilot(["interface", "decode", encoded.strip()])
    runner = CliRunner()
    from_stdin = runner.invoke(main_group, ["interface", "decode", "-"], input=encoded)
    assert by_value.returncode == 0 and from_stdin.exit_code == 0, from_stdin.output
    assert from_stdin.stdout == by_value.stdout and "name" in by_value.stdout
    # An inputs.pb's bytes on stdin give the types its literals carry.
    import lits

    doc = lits.literal_map({"n": lits.integer(3)}).SerializeToString()
    (tmp_path / "inputs.pb").write_bytes(doc)
    from_file = run_copilot(["interface", "decode", str(tmp_path / "inputs.pb")])
    piped = runner.invoke(main_group, ["interface", "decode", "-"], input=doc)
    assert piped.exit_code == 0 and piped.stdout == from_file.stdout, piped.output
    # Neither: one line, exit 2.
    bad = runner.invoke(main_group, ["interface", "decode", "-"], input=b"\x00\x01 not it")
    assert bad.exit_code != 0 and "Traceback" not in bad.output


def test_a_misspelt_key_in_an_input_spec_is_refused_with_a_guess(tmp_path: Path) -> None:
    task = tmp_path / "task.yaml"
    task.write_text(
        "image: python:3.12-slim\ncommand: [echo]\n"
        "inputs:\n  n: {type: int, defualt: 3}\noutputs: {}\n"
    )
    ran = run_copilot(["run", str(task), "-i", "n=1"])
    assert ran.returncode == 2, ran.stderr
    line = ran.stderr.strip().splitlines()[-1]
    assert "inputs.n" in line and "'defualt'" in line and "did you mean default?" in line


def test_an_input_given_twice_warns_and_the_last_counts(caplog) -> None:
    from copilot.task import parse_assignments

    with caplog.at_level("WARNING", logger="copilot"):
        given = parse_assignments(["name=Ada", "n=1", "name=Grace", "n=1"])
    assert given == {"name": "Grace", "n": "1"}
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "-i name given twice" in warned[0] and "'Grace'" in warned[0]


def test_a_too_big_primitive_says_how_to_raise_the_limit_and_run_takes_it(tmp_path: Path) -> None:
    task = tmp_path / "big.yaml"
    task.write_text(
        "name: big\ninputs: {}\noutputs: {s: str}\n"
        "command: [/bin/sh, -c,"
        " 'head -c 2000 /dev/zero | tr \"\\\\0\" a > $COPILOT_OUTPUT_DIR/s']\n"
    )
    env = clean_env(COPILOT_HOME=str(tmp_path / "home"))
    small = run_copilot(["run", str(task), "--max-primitive-bytes", "1000", "-q"], env=env)
    assert small.returncode == 1, small.stderr
    assert "2000 bytes" in small.stderr and "--max-primitive-bytes" in small.stderr
    big = run_copilot(["run", str(task), "--max-primitive-bytes", "4000", "-q"], env=env)
    assert big.returncode == 0, big.stderr
    assert '"s": "' + "a" * 2000 + '"' in big.stdout


def test_a_sidecar_watching_a_directory_that_is_not_there_says_so_and_gives_up(
    tmp_path: Path,
) -> None:
    """The documented chain's failure path once left the file watcher waiting
    silently for ever: a missing directory is a warning at once, and the wait for a
    marker in it is bounded by --timeout, then recorded in error.pb."""
    from flyteidl2.core import execution_pb2

    task = tmp_path / "task.yaml"
    task.write_text("inputs: {}\noutputs: {n: int}\n")
    missing = tmp_path / "work" / "outputs"
    prefix = tmp_path / "run"
    ran = run_copilot(
        [
            "sidecar", "--exit-watcher-type", "file", "-f", str(missing),
            "-o", f"file://{prefix}/", "--interface-file", str(task), "--timeout", "1s",
        ]
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    warning = next(line for line in ran.stderr.splitlines() if "did not exist" in line)
    assert str(missing) in warning and "at most 1s" in warning and "_SUCCESS or _ERROR" in warning
    doc = execution_pb2.ErrorDocument.FromString((prefix / "error.pb").read_bytes())
    assert "no _SUCCESS or _ERROR in" in doc.error.message and "after 1s" in doc.error.message
    assert doc.error.kind == execution_pb2.ContainerError.RECOVERABLE


def test_a_directory_that_exists_is_waited_on_without_a_bound(tmp_path: Path) -> None:
    from copilot.cancel import CancelToken
    from copilot.watchers import FileWatcher

    out = tmp_path / "out"
    out.mkdir()
    watcher = FileWatcher(str(out), CancelToken(), missing_dir_wait=0.01)
    assert watcher.missing_since is None and watcher._deadline(("_SUCCESS",)) is None


@pytest.mark.slow  # a server started and stopped by a script
def test_the_local_s3_server_script_prints_what_to_export(tmp_path: Path) -> None:
    """``eval "$(scripts/s3-server)"``: the docs' S3, on loopback, in one command."""
    import signal
    import sys

    import boto3

    env = clean_env(COPILOT_VENV=str(Path(sys.executable).parent.parent), TMPDIR=str(tmp_path))
    ran = subprocess.run(
        [str(ROOT / "scripts" / "s3-server")],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    exported = dict(
        item.split("=", 1)
        for line in ran.stdout.splitlines()
        if line.startswith("export ")
        for item in line[len("export ") :].split()
    )
    pid = int(exported["COPILOT_S3_SERVER_PID"])
    try:
        assert exported["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
        client = boto3.client(
            "s3",
            endpoint_url=exported["AWS_ENDPOINT_URL"],
            aws_access_key_id=exported["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=exported["AWS_SECRET_ACCESS_KEY"],
            region_name=exported["AWS_DEFAULT_REGION"],
        )
        names = {b["Name"] for b in client.list_buckets()["Buckets"]}
        assert {"bucket", "my-bucket"} <= names
    finally:
        os.kill(pid, signal.SIGTERM)
    # Nothing of the server's is left behind once it is stopped: no log file.
    for _ in range(200):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    assert not list(tmp_path.iterdir()), list(tmp_path.iterdir())


@pytest.mark.slow  # a server started and stopped by a script
def test_the_local_s3_server_script_installs_only_moto(tmp_path: Path) -> None:
    """Where ``scripts/demo`` made the venv (no moto in it), ``scripts/s3-server``
    installs moto's server alone, pinned, not the whole ``scripts/setup`` (every
    extra, npm, apt-get).  pip is stood in for: the install it is asked for is recorded
    and served by this venv's moto."""
    import signal
    import sys

    real = Path(sys.executable)
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    calls = tmp_path / "calls"
    (venv / "bin" / "python").write_text(
        "#!/bin/sh\n"
        f'case "$*" in *"pip install"*) echo "$*" >> {calls};'
        f" ln -s {real.parent / 'moto_server'} {venv / 'bin' / 'moto_server'}; exit 0;; esac\n"
        f'exec {real} "$@"\n'
    )
    (venv / "bin" / "python").chmod(0o755)
    env = clean_env(COPILOT_VENV=str(venv), TMPDIR=str(tmp_path))
    ran = subprocess.run(
        [str(ROOT / "scripts" / "s3-server")],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    pid = int(ran.stdout.split("COPILOT_S3_SERVER_PID=")[1].split()[0])
    os.kill(pid, signal.SIGTERM)
    (installed,) = calls.read_text().splitlines()
    assert installed.endswith("-c constraints.txt moto[server]"), installed


REPORT_TASK = (
    "name: report\ninputs: {n: int}\noutputs: {report: File, n2: int}\n"
    "command: [/bin/sh, -c, 'head -c 100000 /dev/urandom > $COPILOT_OUTPUT_DIR/report;"
    " echo {{.inputs.n}} > $COPILOT_OUTPUT_DIR/n2']\n"
)


def _report_run(tmp_path: Path, *extra: str, n: int = 1):
    task = tmp_path / "report.yaml"
    task.write_text(REPORT_TASK)
    env = clean_env(COPILOT_HOME=str(tmp_path / "home"))
    return run_copilot(["run", str(task), "-i", f"n={n}", "-q", *extra], env=env)


def test_run_record_names_the_run_and_a_file_output_is_kept_once(tmp_path: Path) -> None:
    import json

    ran = _report_run(tmp_path, "-o", "record")
    assert ran.returncode == 0, ran.stderr
    record = json.loads(ran.stdout)
    assert record["task"] == "report" and record["exit_code"] == 0 and record["error"] is None
    assert record["run_uri"].endswith("/runs/report/" + record["run_id"])
    assert record["outputs"]["n2"] == 1
    stored = Path(record["outputs"]["report"].removeprefix("file://"))
    produced = Path(record["workdir"]) / "outputs" / "report"
    # One file with two names: the store's copy is a hard link to the work dir's.
    assert os.path.samefile(stored, produced) and stored.stat().st_nlink == 2
    # A failure is a record too, with the error and no outputs.
    (tmp_path / "report.yaml").write_text(REPORT_TASK.replace("echo", "exit 5; echo"))
    env = clean_env(COPILOT_HOME=str(tmp_path / "home"))
    failed = run_copilot(
        ["run", str(tmp_path / "report.yaml"), "-i", "n=1", "-q", "-o", "record"], env=env
    )
    doc = json.loads(failed.stdout)
    assert failed.returncode == 5 and doc["exit_code"] == 5 and doc["status"] == 5
    assert doc["error"].startswith("the command exited with status 5") and doc["outputs"] == {}


def test_run_rm_removes_the_work_dir_and_keeps_the_outputs(tmp_path: Path) -> None:
    import json

    ran = _report_run(tmp_path, "--rm", "-o", "record")
    record = json.loads(ran.stdout)
    assert ran.returncode == 0 and record["workdir"] is None
    assert not (tmp_path / "home" / "work" / record["run_id"]).exists()
    stored = Path(record["outputs"]["report"].removeprefix("file://"))
    assert stored.stat().st_size == 100000 and stored.stat().st_nlink == 1


def test_runs_lists_and_cleans_by_age_task_and_status(tmp_path: Path) -> None:
    import json

    home = tmp_path / "home"
    env = clean_env(COPILOT_HOME=str(home))
    for n in (1, 2):
        assert _report_run(tmp_path, n=n).returncode == 0
    (tmp_path / "g.yaml").write_text("name: other\ninputs: {}\noutputs: {}\ncommand: [true]\n")
    unquoted = run_copilot(["run", str(tmp_path / "g.yaml"), "-q"], env=env)
    assert unquoted.returncode == 2 and "command[0]: expected a string, found a boolean" in (
        unquoted.stderr
    )
    (tmp_path / "g.yaml").write_text("name: other\ninputs: {}\noutputs: {}\ncommand: ['true']\n")
    assert run_copilot(["run", str(tmp_path / "g.yaml"), "-q"], env=env).returncode == 0
    # An old, failed run (its id says when it started).
    old = home / "store" / "runs" / "report" / "20200101-000000-abcdef"
    old.mkdir(parents=True)
    (old / "error.pb").write_bytes(b"")
    listed = json.loads(run_copilot(["runs", "-o", "json"], env=env).stdout)
    assert [r["task"] for r in listed][0] == "report" and listed[0]["status"] == "failed"
    assert sorted(r["task"] for r in listed) == ["other", "report", "report", "report"]
    assert all(r["bytes"] > 0 for r in listed if r["task"] == "report" and r["workdir"])
    table = run_copilot(["runs"], env=env).stdout.splitlines()
    assert table[0].split() == ["TASK", "RUN", "ID", "WHEN", "STATUS", "SIZE"]
    assert len(table) == 5
    # Nothing is removed without saying which runs.
    bare = run_copilot(["runs", "clean"], env=env)
    assert bare.returncode == 2 and "--older-than" in bare.stderr
    dry = run_copilot(["runs", "clean", "--older-than", "30d", "-n"], env=env)
    assert "would remove report/20200101-000000-abcdef (failed)" in dry.stdout and old.exists()
    aged = run_copilot(["runs", "clean", "--older-than", "30d"], env=env)
    assert aged.returncode == 0 and "removed 1 of 4 runs" in aged.stderr and not old.exists()
    by_task = run_copilot(["runs", "clean", "--task", "report"], env=env)
    assert "removed 2 of 3 runs, freed " in by_task.stderr
    assert [r["task"] for r in json.loads(run_copilot(["runs", "-o", "json"], env=env).stdout)] == [
        "other"
    ]
    assert not (home / "work").exists() or len(list((home / "work").iterdir())) == 1
    bad = run_copilot(["runs", "clean", "--older-than", "soon"], env=env)
    assert bad.returncode == 2 and "expected an age" in bad.stderr


def test_dry_run_shows_the_command_and_the_layout_and_touches_nothing(tmp_path: Path) -> None:
    import json

    home = tmp_path / "home"
    env = clean_env(COPILOT_HOME=str(home))
    script = ROOT / "examples" / "script_runner.yaml"
    ran = run_copilot(["run", str(script), "-i", "a=2", "-i", "b=3", "--dry-run"], env=env)
    assert ran.returncode == 0, ran.stderr
    plan = json.loads(ran.stdout)
    work = plan["workdir"]
    assert work.startswith(str(home / "work")) and plan["run_uri"].endswith(plan["run_id"])
    assert plan["command"][-1] == (f"python3 {work}/inputs/script.py 2 3 > {work}/outputs/result")
    assert plan["inputs"]["a"] == {"value": 2, "path": f"{work}/inputs/a"}
    (upload,) = plan["uploads"]
    assert upload["from"] == str(ROOT / "examples" / "add.py")
    assert plan["inputs"]["script.py"]["value"] == upload["to"]
    assert plan["outputs"] == {"result": f"{work}/outputs/result"}
    assert not home.exists(), "a dry run wrote something"
    # Bad input is still refused, before anything.
    bad = run_copilot(["run", str(script), "-i", "a=x", "-i", "b=3", "--dry-run"], env=env)
    assert bad.returncode == 2 and not home.exists()


def test_stage_uploads_local_inputs_and_writes_the_document_a_pod_reads(s3, tmp_path: Path) -> None:
    import lits

    script = tmp_path / "add.py"
    script.write_text("import sys; print(sum(map(int, sys.argv[1:])))\n")
    task = ROOT / "examples" / "script_runner.yaml"
    prefix = s3.uri("runs/r1")
    flags = s3.stow_flags()
    staged = run_copilot(
        [*flags, "stage", str(task), "--prefix", prefix, "-i", "a=2", "-i", "b=3",
         "-i", f"script.py={script}"]
    )  # fmt: skip
    assert staged.returncode == 0, staged.stderr
    assert staged.stdout.strip() == f"{prefix}/inputs.pb"
    lm = lits.L.LiteralMap.FromString(s3.get("runs/r1/inputs.pb"))
    assert lm.literals["a"].scalar.primitive.integer == 2
    blob = lm.literals["script.py"].scalar.blob.uri
    assert (
        blob.startswith(f"{prefix}/data/") and s3.get(blob.split("/", 3)[3]) == script.read_bytes()
    )
    # copilot pod now finds the inputs it renders the command from.
    pod = run_copilot([*flags, "pod", str(task), "--prefix", prefix, "-o", "json"])
    assert pod.returncode == 0, pod.stderr
    assert "{{" not in pod.stdout and " 2 3 " in pod.stdout
    # A local prefix is not where a pod reads.
    local = run_copilot(["stage", str(task), "--prefix", f"file://{tmp_path}/r", "-i", "a=1"])
    assert local.returncode == 2 and "object store" in local.stderr


def test_many_inputs_from_a_file_with_i_winning(tmp_path: Path, monkeypatch) -> None:
    import json

    monkeypatch.chdir(ROOT)  # the file's paths are relative to here, as -i's are
    values = tmp_path / "values.yaml"
    values.write_text("script.py: examples/add.py\na: 2\nb: '40'\n")
    env = clean_env(COPILOT_HOME=str(tmp_path / "home"))
    task = "examples/script_runner.yaml"
    ran = run_copilot(["run", task, "--inputs", str(values), "-q"], env=env)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {"result": 42}
    over = run_copilot(["run", task, "--inputs", str(values), "-i", "b=3"], env=env)
    assert json.loads(over.stdout) == {"result": 5}
    assert "-i b replaces the value --inputs gives" in over.stderr
    values.write_text("- a\n- b\n")
    bad = run_copilot(["run", task, "--inputs", str(values)], env=env)
    assert bad.returncode == 2 and "expected a mapping of input name -> value" in bad.stderr


def test_shell_completion_works_as_the_readme_shows() -> None:
    readme = (ROOT / "README.md").read_text()
    assert 'eval "$(_COPILOT_COMPLETE=bash_source copilot)"' in readme
    env = clean_env(_COPILOT_COMPLETE="bash_source")
    script = subprocess.run(
        [copilot_exe()], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert script.returncode == 0 and "complete " in script.stdout, script.stderr
    env = clean_env(_COPILOT_COMPLETE="bash_complete", COMP_WORDS="copilot ru", COMP_CWORD="1")
    words = subprocess.run(
        [copilot_exe()], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert {"plain,run", "plain,runs"} <= set(words.stdout.split()), words.stdout


def test_the_readme_says_how_to_reach_copilot_and_which_image_a_pod_pulls() -> None:
    """After scripts/demo, copilot is in .venv; the image the README builds and pushes
    is the one it passes to copilot pod --image, named like pod's own default."""
    import re

    readme = (ROOT / "README.md").read_text()
    assert "source .venv/bin/activate" in readme
    assert "source .venv/bin/activate" in (ROOT / "scripts" / "demo").read_text()
    built = re.search(r"docker build -t (\S+) \.", readme)
    pushed = re.search(r"docker push (\S+)", readme)
    shown = re.search(r"copilot pod .*\n.*--image (\S+)", readme)
    assert built and pushed and shown
    assert built[1] == pushed[1] == shown[1]
    assert built[1].endswith(f"/copilot:{__version__}")
    help_text = run_copilot(["pod", "--help"]).stdout
    assert f"copilot:{__version__}" in help_text  # the default the README's tag replaces
