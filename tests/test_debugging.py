"""A person at a terminal: typos are errors with the nearest valid name, bad arguments
exit 2 before anything is written, and nothing that goes wrong says "internal error"."""

from __future__ import annotations

import json
from pathlib import Path

import lits
import pytest
from conftest import clean_env, run_copilot

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _inputs(tmp_path: Path, **values) -> str:
    path = tmp_path / "inputs.pb"
    path.write_bytes(lits.literal_map(values).SerializeToString())
    return str(path)


def _vm(tmp_path: Path) -> str:
    path = tmp_path / "vm.pb"
    path.write_bytes(lits.variable_map({"n": lits.simple(lits.T.INTEGER)}).SerializeToString())
    return str(path)


# -- configuration typos ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            "storage:\n  tpye: stow\n",
            "copilot: error: storage: unknown key 'tpye' (did you mean type?); valid keys: ",
        ),
        (
            "logger:\n  levle: 4\n",
            "copilot: error: logger: unknown key 'levle' (did you mean level?); valid keys: ",
        ),
        (
            "storge:\n  type: stow\n",
            "copilot: error: --config: unknown section 'storge' (did you mean storage?); ",
        ),
        (
            "storage:\n  type: s4\n",
            "copilot: error: storage.type: unknown type 's4'; valid types: s3, minio, stow, ",
        ),
        (
            "storage:\n  type: stow\n  stow:\n    kind: s3\n    config:\n      regoin: x\n",
            "copilot: error: storage.stow.config: unknown key 'regoin' for kind s3 "
            "(did you mean region?)",
        ),
    ],
)
def test_config_file_typos_are_errors(config: str, expected: str, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(config)
    res = run_copilot(["--config", str(path), "inspect", _vm(tmp_path)])
    assert res.returncode == 2
    assert res.stderr.startswith(expected), res.stderr
    assert len(res.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        ("--storage.type=s4", "storage.type: unknown type 's4'"),
        ("--logger.level=9", "logger.level: expected an integer 0-5 (3 warn, 4 info, 5 debug)"),
        ("--logger.level=loud", "--logger.level: expected an integer, found 'loud'"),
    ],
)
def test_flag_values_out_of_range_are_errors(flag: str, expected: str, tmp_path: Path) -> None:
    res = run_copilot([flag, "inspect", _vm(tmp_path)])
    assert res.returncode == 2
    assert res.stderr.startswith(f"copilot: error: {expected}")


def test_a_flyte_config_file_with_other_storage_keys_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "admin:\n  endpoint: dns:///flyte\n"  # another component's section: ignored
        "storage:\n  type: stow\n  container: b\n  cache:\n    max_size_mbs: 0\n"
        "  limits:\n    maxDownloadMBs: 10\n  defaultHttpClient:\n    timeout: 10s\n"
        "logger:\n  level: 3\n  show-source: false\n  formatter:\n    type: text\n"
    )
    res = run_copilot(["--config", str(path), "inspect", _vm(tmp_path)])
    assert res.returncode == 0, res.stderr


def test_a_missing_config_file_is_a_warning_but_a_glob_is_silent(tmp_path: Path) -> None:
    missing = tmp_path / "storage.yaml"
    res = run_copilot(["--config", str(missing), "inspect", _vm(tmp_path)])
    assert res.returncode == 0
    assert f"--config {missing}: no such file; continuing without it" in res.stderr
    res = run_copilot(["--config", str(tmp_path / "none" / "*.yaml"), "inspect", _vm(tmp_path)])
    assert res.returncode == 0
    assert "no such file" not in res.stderr


# -- task files ------------------------------------------------------------------------------


def _task(tmp_path: Path, text: str | bytes) -> str:
    path = tmp_path / "task.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: t\ncommand: [ls]\ninputz: {a: int}\n",
            "task file {p}: unknown field 'inputz' (did you mean inputs?); valid fields: name, ",
        ),
        (
            "name: t\ncommand: [ls\n  x: : y\n",
            "task file {p}:3:4: not valid YAML (expected ',' or ']', but got ':' ",
        ),
        (b"name: t\xff\ncommand: [ls]\n", "task file {p}: not UTF-8 text (byte 0xff at offset 7)"),
    ],
)
def test_task_file_mistakes_name_the_place(
    text: str | bytes, expected: str, tmp_path: Path
) -> None:
    path = _task(tmp_path, text)
    for command in (["run", path], ["pod", path, "--prefix", "s3://b/r"]):
        res = run_copilot(command, env=clean_env(COPILOT_HOME=str(tmp_path / "home")))
        assert res.returncode == 2
        assert res.stderr.startswith("copilot: error: " + expected.format(p=path)), res.stderr
        assert len(res.stderr.splitlines()) == 1
    assert not (tmp_path / "home").exists()


# -- download and sidecar ----------------------------------------------------------------------


def test_download_into_a_path_under_a_file_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    target = tmp_path / "afile" / "in"
    res = run_copilot(["download", "-f", _inputs(tmp_path, n=lits.integer(1)), "-o", str(target)])
    assert res.returncode == 2
    assert res.stderr == (
        f"copilot: error: --to-local-dir {target}: cannot create the directory (Not a directory)\n"
    )


def test_download_into_a_non_empty_dir_reports_what_was_there(tmp_path: Path) -> None:
    dest = tmp_path / "in"
    dest.mkdir()
    (dest / "stale.txt").write_text("from an earlier run")
    (dest / "n").write_text("99")
    res = run_copilot(["download", "-f", _inputs(tmp_path, n=lits.integer(1)), "-o", str(dest)])
    assert res.returncode == 0, res.stderr
    assert (dest / "n").read_text() == "1"
    assert f"input dir {dest}: 1 entry already there, not among the inputs: stale.txt" in (
        res.stderr
    )


def test_sidecar_without_an_interface_says_there_is_nothing_to_upload(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    prefix = tmp_path / "prefix"
    res = run_copilot(
        ["sidecar", "--exit-watcher-type", "noop", "-o", str(prefix), "-x", str(tmp_path / "raw"),
         "-f", str(out)]
    )  # fmt: skip
    assert res.returncode == 0
    assert "no --interface given: no outputs declared, nothing to upload" in res.stderr
    assert not prefix.exists()


# -- one exit-code contract --------------------------------------------------------------------


def _bad_arguments(tmp_path: Path) -> dict[str, list[str]]:
    prefix = str(tmp_path / "prefix")
    inputs = _inputs(tmp_path, n=lits.integer(1))
    return {
        "download": ["download", "-f", inputs, "-o", str(tmp_path / "in"), "-p", prefix,
                     "-i", "notbase64"],
        "sidecar": ["sidecar", "--exit-watcher-type", "noop", "-o", prefix,
                    "-x", str(tmp_path / "raw"), "-f", str(tmp_path), "-i", "notbase64"],
        "run": ["run", str(EXAMPLES / "script_runner.yaml"), "-i", "a=abc", "-i", "b=1"],
        "pod": ["pod", str(EXAMPLES / "greeting.yaml"), "--prefix", "s3://b/r", "-i", "name"],
        "inspect": ["inspect", inputs, "--as", "Bogus"],
        "interface encode": ["interface", "encode", str(tmp_path / "missing.yaml")],
        "interface decode": ["interface", "decode", "x!!"],
        "unknown flag": ["download", "--frm-remote", inputs],
    }  # fmt: skip


@pytest.mark.parametrize(
    "command",
    ["download", "sidecar", "run", "pod", "inspect", "interface encode", "interface decode",
     "unknown flag"],
)  # fmt: skip
def test_bad_arguments_exit_2_before_anything_is_written(command: str, tmp_path: Path) -> None:
    args = _bad_arguments(tmp_path)[command]
    home = tmp_path / "home"
    res = run_copilot(args, env=clean_env(COPILOT_HOME=str(home)))
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr
    assert not (tmp_path / "prefix").exists()  # no error document
    assert not (tmp_path / "in").exists()
    assert not home.exists()


# -- copilot run tells you where things are ----------------------------------------------------


def test_run_names_its_directory_and_the_inspect_command(tmp_path: Path) -> None:
    env = clean_env(COPILOT_HOME=str(tmp_path))
    res = run_copilot(["run", str(EXAMPLES / "greeting.yaml"), "-i", "name=Ada"], env=env)
    assert res.returncode == 0, res.stderr
    note = [ln for ln in res.stderr.splitlines() if ln.startswith("copilot run: run ")]
    assert len(note) == 1 and note[0].split()[4:6] == ["kept", "at"]
    run_uri = note[0].split()[6]
    assert run_uri.endswith("/" + note[0].split()[3])  # the run id
    assert run_uri.startswith(f"file://{tmp_path}/store/runs/echo_and_return_greeting/")
    assert f"; outputs: copilot inspect {run_uri}/outputs.pb; logs: copilot runs logs " in note[0]
    shown = run_copilot(["inspect", f"{run_uri}/outputs.pb"], env=env)
    assert json.loads(shown.stdout) == {"greeting": "Hello, my name is Ada."}
    quiet = run_copilot(["run", str(EXAMPLES / "greeting.yaml"), "-q"], env=env)
    assert "kept at" not in quiet.stderr


def test_run_outputs_come_in_declared_order(tmp_path: Path) -> None:
    task = _task(
        tmp_path,
        "name: t\noutputs:\n  zeta: int\n  alpha: str\n  mid: int\n"
        "command: [/bin/sh, -c, 'echo 1 > /var/outputs/zeta; echo a > /var/outputs/alpha;"
        " echo 2 > /var/outputs/mid']\n",
    )
    res = run_copilot(["run", task, "-q"], env=clean_env(COPILOT_HOME=str(tmp_path)))
    assert res.returncode == 0, res.stderr
    assert list(json.loads(res.stdout)) == ["zeta", "alpha", "mid"]


def test_run_refuses_a_memory_store(tmp_path: Path) -> None:
    res = run_copilot(
        ["run", str(EXAMPLES / "greeting.yaml"), "--store", "memory://runs"],
        env=clean_env(COPILOT_HOME=str(tmp_path / "home")),
    )
    assert res.returncode == 2
    assert res.stderr.startswith("copilot: error: --store memory://: nothing in it outlives")
    assert not (tmp_path / "home").exists()


@pytest.mark.slow  # botocore's connect back-off: about 2 s
def test_an_unreachable_store_says_it_is_retrying(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    res = run_copilot(
        ["--storage.stow.kind=s3", "--storage.stow.config",
         f"endpoint=http://127.0.0.1:{port},access_key_id=a,secret_key=b,region=us-east-1",
         "download", "-f", "s3://bucket/run/inputs.pb", "-o", str(tmp_path / "in"),
         "--retries", "2", "--retry-for", "0s"]
    )  # fmt: skip
    assert res.returncode != 0
    retry = [ln for ln in res.stderr.splitlines() if "attempt 1 of 2 failed" in ln]
    assert len(retry) == 1, res.stderr
    assert "s3://bucket/run/inputs.pb" in retry[0] and "retrying in" in retry[0]


def test_inspect_on_a_directory_names_it(tmp_path: Path) -> None:
    res = run_copilot(["inspect", str(tmp_path)])
    assert res.returncode == 2
    assert (
        res.stderr == f"copilot: error: inspect {tmp_path}: is a directory; give a document file\n"
    )


def test_run_with_a_workdir_under_a_file_stores_nothing(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    home = tmp_path / "home"
    res = run_copilot(
        ["run", str(EXAMPLES / "greeting.yaml"), "--workdir", str(tmp_path / "afile" / "w")],
        env=clean_env(COPILOT_HOME=str(home)),
    )
    assert res.returncode == 2
    assert res.stderr.startswith(f"copilot: error: --workdir: cannot create {tmp_path}/afile/w/")
    assert res.stderr.rstrip().endswith("(Not a directory)")
    assert not home.exists()
