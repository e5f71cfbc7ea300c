"""The examples in README.md and docs/*.md, executed, so the docs cannot drift.

What runs, in order, per document, in a fresh directory standing for the
checkout (holding a copy of examples/) with moto as S3 (``AWS_ENDPOINT_URL``;
buckets ``bucket`` and ``my-bucket``) and ``COPILOT_HOME`` elsewhere.  A doc
must leave that directory as it found it: a page that writes files of its own
says to work in a scratch directory (a block under ``<!-- test: scratch -->``),
and is run from one, with ``$checkout`` naming the checkout:

- every ```console block: each ``$ command`` (``\\`` continues a line) runs in
  bash and must exit 0; the lines after it are its expected stdout, where a
  line ``...`` stands for any lines and ``...`` inside a line for any text;
- every ```python block runs as a script, exactly its text, and must end (a
  block that hangs fails at its timeout);
- a block under ``<!-- test: file NAME -->`` is written to NAME first
  (``<!-- test: file NAME mode=755 -->`` makes it executable).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ACCESS_KEY, SECRET_KEY, clean_env, record

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(
    r"(?:<!-- test: (?P<marker>[^>]*?) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)```", re.S
)


@dataclass
class Step:
    kind: str  # "console", "python" or "file"
    body: str
    line: int
    arg: str = ""


def steps_of(path: Path) -> list[Step]:
    text = path.read_text()
    found = []
    for m in BLOCK.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        marker, lang, body = m["marker"] or "", m["lang"], m["body"]
        if marker.startswith("file "):
            found.append(Step("file", body, line, marker[5:].strip()))
        elif marker == "scratch":
            found.append(Step("scratch", body, line))
        elif lang == "console":
            found.append(Step("console", body, line))
        elif lang == "python":
            found.append(Step("python", body, line))
    return found


def _commands(body: str) -> list[tuple[str, list[str]]]:
    """(command, expected stdout lines) pairs of a console block."""
    out: list[tuple[str, list[str]]] = []
    lines = body.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            raise AssertionError(f"console block: output before any command: {lines[i]!r}")
        command = lines[i][2:]
        while command.endswith("\\") and i + 1 < len(lines):
            i += 1
            command = command + "\n" + lines[i]  # bash continues the line
        i += 1
        expected = []
        while i < len(lines) and not lines[i].startswith("$ "):
            expected.append(lines[i])
            i += 1
        out.append((command, expected))
    return out


def _line_matches(pattern: str, line: str) -> bool:
    parts = [re.escape(p) for p in pattern.split("...")]
    return re.fullmatch(".*".join(parts), line) is not None


def matches(expected: list[str], actual: list[str]) -> bool:
    """``expected`` against ``actual``: a line ``...`` takes any lines (lazily)."""
    if not expected:
        return not actual
    head, rest = expected[0], expected[1:]
    if head == "...":
        return any(matches(rest, actual[k:]) for k in range(len(actual) + 1))
    return bool(actual) and _line_matches(head, actual[0]) and matches(rest, actual[1:])


@pytest.fixture
def sandbox(s3_endpoint: str, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )
    for bucket in ("bucket", "my-bucket"):
        try:
            client.create_bucket(Bucket=bucket)
        except client.exceptions.BucketAlreadyOwnedByYou:
            for obj in client.list_objects_v2(Bucket=bucket).get("Contents", []):
                client.delete_object(Bucket=bucket, Key=obj["Key"])
    work = tmp_path / "work"
    shutil.copytree(ROOT / "examples", work / "examples")
    env = clean_env(
        AWS_ENDPOINT_URL=s3_endpoint,
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION="us-east-1",
        COPILOT_HOME=str(tmp_path / "home"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    return work, env


@pytest.mark.slow  # whole sessions of commands: several seconds per document
@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_the_examples_in_the_docs_run_as_shown(
    doc: Path, sandbox: tuple[Path, dict[str, str]]
) -> None:
    checkout, env = sandbox
    before = _tree(checkout)
    work = checkout
    name = doc.relative_to(ROOT).as_posix()
    for step in steps_of(doc):
        where = f"{name}:{step.line}"
        if step.kind == "scratch":
            work = checkout.parent / "scratch"
            work.mkdir()
            env = {**env, "checkout": str(checkout)}
        elif step.kind == "file":
            target_name, _, mode = step.arg.partition(" mode=")
            target = work / target_name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(step.body)
            if mode:
                target.chmod(int(mode, 8))
        elif step.kind == "python":
            ran = subprocess.run(
                [sys.executable, "-c", step.body], cwd=work, env=env,
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            assert ran.returncode == 0, f"{where}: the python block failed:\n{ran.stderr}"
        else:
            for command, expected in _commands(step.body):
                ran = subprocess.run(
                    ["bash", "-c", command], cwd=work, env=env,
                    capture_output=True, text=True, timeout=300, check=False,
                )  # fmt: skip
                record(ran.stderr)
                assert ran.returncode == 0, (
                    f"{where}: `{command}` exited {ran.returncode}:\n{ran.stderr}"
                )
                actual = ran.stdout.splitlines()
                assert matches(expected, actual), (
                    f"{where}: `{command}` printed\n" + "\n".join(actual)
                    + "\n--- but the doc shows ---\n" + "\n".join(expected)
                )  # fmt: skip
    left = sorted(_tree(checkout) - before)
    assert not left, f"{name}: following it writes into the checkout: {left[:10]}"


def _tree(top: Path) -> set[str]:
    """Every path under ``top``, relative (what a doc may not add to the checkout)."""
    return {str(p.relative_to(top)) for p in top.rglob("*")}


def test_every_doc_has_something_that_runs() -> None:
    """README.md and docs/orchestrators.md carry runnable examples (a guard against
    the markers silently disappearing)."""
    for doc in (ROOT / "README.md", ROOT / "docs" / "orchestrators.md"):
        assert any(s.kind == "console" for s in steps_of(doc)), doc


@pytest.mark.parametrize(
    ("expected", "actual", "ok"),
    [
        (["a", "...", "d"], ["a", "b", "c", "d"], True),
        (["a", "..."], ["a"], True),
        (["run kept at ... (work dir ...)"], ["run kept at s3://x (work dir /w)"], True),
        (["a", "b"], ["a"], False),
        (["a"], ["a", "b"], False),
    ],
)
def test_expected_output_matching(expected: list[str], actual: list[str], ok: bool) -> None:
    assert matches(expected, actual) is ok


def test_measurements_live_in_the_benchmarks_and_the_code_points_there() -> None:
    """Figures go stale in docstrings: the code names where they are, and they are there."""
    figure = re.compile(r"\b\d+(?:\.\d+)?(?:-\d+(?:\.\d+)?)? (?:MB|ms|s)\b")
    benchmarks = (ROOT / "docs" / "BENCHMARKS.md").read_text()
    assert "\n## Tuning measurements\n" in benchmarks
    pointers = 0
    for path in sorted((ROOT / "copilot").rglob("*.py")):
        text = path.read_text()
        pointers += text.count('"Tuning measurements"')
        comments = re.findall(r'#[^\n]*|"""[\s\S]*?"""', text)
        found = [m.group(0) for c in comments for m in figure.finditer(c)]
        # Protocol constants (a 60 s timeout, Go durations) are not measurements.
        found = [f for f in found if not re.fullmatch(r"\d+ ?s", f)]
        assert not found, f"{path.relative_to(ROOT)}: measured figures in the code: {found}"
    assert pointers >= 8


def test_the_orchestrators_chain_records_a_failed_download_for_the_sidecar(
    sandbox: tuple[Path, dict[str, str]],
) -> None:
    """The documented chain, exactly as written, when the download fails (no
    inputs.pb): its ``||`` branch creates what it writes into, so the file watcher
    finds ``_ERROR`` instead of waiting on a directory nobody made."""
    work, env = sandbox
    (work / "task.yaml").write_text("inputs: {sample: str}\noutputs: {passed: bool}\n")
    doc = ROOT / "docs" / "orchestrators.md"
    chain = next(
        command
        for step in steps_of(doc)
        if step.kind == "console"
        for command, _ in _commands(step.body)
        if "work/outputs/_ERROR" in command
    )
    ran = subprocess.run(
        ["bash", "-c", chain], cwd=work, env=env, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr
    assert (work / "work" / "outputs" / "_ERROR").read_text() == "my-tool failed\n"


def test_every_task_a_doc_names_exists() -> None:
    """``examples/tasks.py:summarize``: a doc's ``PATH.py:TASK`` is a file of the
    checkout that defines that task (``PATH.py:TASK`` itself is the placeholder)."""
    named = 0
    for doc in DOCS:
        for path, task in re.findall(r"([\w/.-]+\.py):([A-Za-z_]\w*)", doc.read_text()):
            if (path, task) in (("PATH.py", "TASK"), ("tasks.py", "TASK")):
                continue
            source = ROOT / path
            assert source.is_file(), f"{doc.name}: {path}:{task}: no such file"
            assert re.search(rf"^{task} = ", source.read_text(), re.M), f"{path} has no {task}"
            named += 1
    assert named, "the docs name no SDK task file"
