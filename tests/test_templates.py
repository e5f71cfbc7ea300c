"""Flyte's command templates as `copilot run` renders them (in-process, fast).

Expected texts come from Flyte's own template tests (flyteplugins
pluginmachinery/core/template) where those exist, and from Go's fmt rules.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import lits
import msgpack
import pytest
from click.testing import CliRunner

from copilot.cli import main_group
from copilot.templates import TemplateError, check, go_float, render, retry_key

RUN = {
    "input": "s3://b/run/inputs.pb",
    "inputprefix": "s3://b/run",
    "outputprefix": "s3://b/run/out",
    "rawoutputdataprefix": "s3://custom-bucket",
    "perretryuniquekey": "per_retry_unique_key",
    "tasktemplatepath": lambda: "s3://b/run/task.pb",
    "prevcheckpointprefix": '""',
    "checkpointoutputprefix": "s3://custom-bucket/_flytecheckpoints",
    "namespace": "test-namespace",
}


def _render(text: str, **inputs) -> str:
    return render(text, lits.literal_map(inputs), RUN, "command[0]")


@pytest.mark.parametrize(
    "form",
    [
        "{{.inputs.x}}",
        "{{$inputs.x}}",
        "{{ .Inputs.x }}",
        "{{.INPUTS.x}}",
        "{{   $Inputs.x\t}}",
    ],
)
def test_every_input_form(form: str) -> None:
    assert _render(f"--n {form}!", x=lits.integer(15)) == "--n 15!"


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ("{{ .Input }}", "s3://b/run/inputs.pb"),
        ("{{$input}}", "s3://b/run/inputs.pb"),
        ("{{.InputPrefix}}", "s3://b/run"),
        ("{{ .OutputPrefix }}", "s3://b/run/out"),
        ("{{ $RawOutputDataPrefix }}", "s3://custom-bucket"),
        ("{{ .rawOutputDataPrefix }}", "s3://custom-bucket"),
        ("{{ .PerretryuNIqueKey }}", "per_retry_unique_key"),
        ("{{.TaskTemplatePath}}", "s3://b/run/task.pb"),
        ("{{.PrevCheckpointPrefix}}", '""'),
        ("{{.CheckpointOutputPrefix}}", "s3://custom-bucket/_flytecheckpoints"),
        ("{{.Namespace}}", "test-namespace"),
    ],
)
def test_run_wide_names(form: str, expected: str) -> None:
    assert _render(f"a {form} b") == f"a {expected} b"


def test_values_are_not_rendered_again() -> None:
    assert _render("{{.inputs.s}}", s=lits.string("{{.OutputPrefix}}")) == "{{.OutputPrefix}}"


@pytest.mark.parametrize(
    ("lit", "expected"),
    [
        (lits.integer(-42), "-42"),
        (lits.boolean(True), "true"),
        (lits.boolean(False), "false"),
        (lits.string("Hello, my name is Flyte."), "Hello, my name is Flyte."),
        (lits.timestamp("1900-01-01T01:01:01.000000001Z"), "1900-01-01T01:01:01.000000001Z"),
        (lits.timestamp("2024-01-02T03:04:05Z"), "2024-01-02T03:04:05Z"),
        (lits.floating(1.5), "1.5"),
        (lits.collection(lits.string("a"), lits.string("b")), "[a,b]"),
        (
            lits.collection(
                lits.collection(lits.string("a"), lits.string("b")),
                lits.collection(lits.integer(1), lits.integer(2)),
            ),
            "[[a,b],[1,2]]",
        ),
        (lits.blob("s3://b/raw/f.txt"), "s3://b/raw/f.txt"),
        (lits.blob("s3://b/raw/d", multipart=True), "s3://b/raw/d"),
        (
            lits.collection(lits.blob("s3://b/r/1.fq"), lits.blob("s3://b/r/2.fq")),
            "[s3://b/r/1.fq,s3://b/r/2.fq]",
        ),
        (lits.schema("s3://b/schema"), "s3://b/schema"),
        (
            lits.binary(msgpack.packb({"a": 1, "b": True, "c": 1.1, "d": "string"})),
            "map[a:1 b:true c:1.1 d:string]",
        ),
        (
            lits.binary(msgpack.packb({"z": [1, "x", None], "a": {"k": 2.0e7}})),
            "map[a:map[k:2e+07] z:[1 x <nil>]]",
        ),
    ],
)
def test_values_render_as_flyte_renders_them(lit, expected: str) -> None:
    assert _render("{{.inputs.v}}", v=lit) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, "1"),
        (0.1, "0.1"),
        (123456.0, "123456"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (1e21, "1e+21"),
        (0.0001, "0.0001"),
        (1e-5, "1e-05"),
        (-2.5e-7, "-2.5e-07"),
        (1e100, "1e+100"),
        (0.0, "0"),
        (-0.0, "-0"),
        (float("nan"), "NaN"),
        (float("inf"), "+Inf"),
        (float("-inf"), "-Inf"),
    ],
)
def test_go_float_verb_v(value: float, expected: str) -> None:
    assert go_float(value) == expected


def test_duration_renders_in_go_syntax_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="copilot"):
        assert _render("{{.inputs.d}}", d=lits.duration_ns(3723 * 10**9)) == "1h2m3s"
    assert "protobuf text" in caplog.text


@pytest.mark.parametrize(
    ("lit", "what"),
    [
        (lits.mapping(a=lits.integer(1)), "a map"),
        (lits.union(lits.integer(1), lits.simple(lits.T.INTEGER)), "a union"),
        (lits.none(), "none"),
        (lits.generic({"a": 1}), "a protobuf Struct"),
        (lits.structured_dataset("s3://b/ds"), "a structured dataset"),
        (lits.binary(b"\x01\x02", tag="pickle"), "binary data tagged 'pickle'"),
        (lits.collection(lits.integer(1), lits.mapping(a=lits.integer(1))), "a map"),
    ],
)
def test_what_flyte_cannot_render_is_an_error(lit, what: str) -> None:
    with pytest.raises(TemplateError) as info:
        _render("x {{.inputs.v}}", v=lit)
    assert f"Flyte cannot render {what}" in info.value.message
    assert "input 'v'" in info.value.message


@pytest.mark.parametrize(
    "text",
    ["{{ .wrongOutputDataPrefix }}", "{{ .Inputs.blah blah }}", "{{$}}", "{{.Inputs.}}"],
)
def test_unknown_or_malformed_templates_are_errors(text: str) -> None:
    for call in (lambda: _render(text, blah=lits.integer(1)), lambda: check(text, ["blah"], "c")):
        with pytest.raises(TemplateError, match="unknown template"):
            call()


def test_an_input_the_task_does_not_have_is_an_error() -> None:
    with pytest.raises(TemplateError, match="names input 'nope', but the task has a, b"):
        check("{{.inputs.nope}}", ["b", "a"], "arguments[1]")


def test_text_that_is_not_a_template_is_left_alone() -> None:
    for text in ("${{input}}", "{{input}}", "echo {} }}{{", "awk '{print $1}'"):
        assert _render(text) == text


def test_retry_key_is_sanitized_as_flyte_does() -> None:
    assert retry_key("run-20261128-101010-ab12cd") == "run_20261128_101010_ab12cd"
    assert retry_key("9abc.d") == "aabc_d"


def test_copilot_run_renders_templates_from_the_stored_inputs(tmp_path: Path) -> None:
    """End to end in-process: a File renders as its stored URI, as under Flyte."""
    task = tmp_path / "task.yaml"
    task.write_text(
        "name: templated\n"
        "inputs: {f: File, xs: 'list[int]', cfg: struct}\n"
        "outputs: {line: str}\n"
        "command: [/bin/sh, -c]\n"
        "arguments:\n"
        "  - >-\n"
        "    printf '%s|%s|%s|%s|%s|%s' '{{ $Inputs.f }}' '{{.inputs.xs}}' '{{.inputs.cfg}}'\n"
        "    '{{.OutputPrefix}}' '{{.RawOutputDataPrefix}}' '{{.PerRetryUniqueKey}}'\n"
        "    > /var/outputs/line\n"
    )
    (tmp_path / "data.txt").write_text("payload")
    home = tmp_path / "home"
    result = CliRunner().invoke(
        main_group,
        [
            "run",
            str(task),
            "-q",
            "-i",
            f"f={tmp_path / 'data.txt'}",
            "-i",
            "xs=[3, 4]",
            "-i",
            "cfg={b: x, a: 1}",
        ],
        env={"COPILOT_HOME": str(home)},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout)["line"]
    file_uri, xs, cfg, out_prefix, raw, key = line.split("|")
    assert file_uri.startswith("file://" + str(home / "store"))
    assert Path(file_uri[len("file://") :]).read_text() == "payload"
    assert (xs, cfg) == ("[3,4]", "map[a:1 b:x]")
    assert out_prefix.startswith("file://" + str(home / "store" / "runs" / "templated"))
    assert raw == out_prefix + "/raw"
    assert key.startswith("run_") and key.replace("_", "").isalnum()
    assert Path(out_prefix[len("file://") :], "outputs.pb").exists()


def test_copilot_run_refuses_an_unknown_template_before_storing_anything(tmp_path: Path) -> None:
    task = tmp_path / "task.yaml"
    task.write_text("name: bad\ninputs: {}\noutputs: {}\ncommand: [echo, '{{.Nope}}']\n")
    home = tmp_path / "home"
    result = CliRunner().invoke(main_group, ["run", str(task)], env={"COPILOT_HOME": str(home)})
    assert result.exit_code == 2
    assert "unknown template {{.Nope}}" in result.stderr
    assert not (home / "store").exists()
