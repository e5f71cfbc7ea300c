"""`copilot pod`: manifests validated against Kubernetes' own OpenAPI schema (strict).

Every generated manifest, and every manifest shown in the docs, is checked on
Kubernetes 1.29 (the oldest release with native sidecars on by default) and
on the newest schema the `kubernetes-validate` package ships.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
from pathlib import Path

import kubernetes_validate
import lits
import pytest
import yaml
from click.testing import CliRunner
from conftest import ACCESS_KEY, SECRET_KEY
from flyteidl2.core import interface_pb2
from test_run_inspect import ALL_TYPES_TASK

from copilot.cli import main_group

ROOT = Path(__file__).resolve().parents[1]
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
PREFIX = "s3://my-bucket/runs/x"

# (task file, -i values that render its command)
EXAMPLES = {
    "greeting.yaml": ["name=Ada"],
    "script_runner.yaml": ["a=2", "b=28"],
    "named_dir.yaml": [],
}


def validate(manifest: dict) -> None:
    """Strict schema validation on both releases, plus the name rules the schema lacks."""
    for version in VERSIONS:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(f"Kubernetes {version}: {exc.message}") from None
    if manifest["kind"] != "Pod":
        return
    spec = manifest["spec"]
    containers = spec.get("initContainers", []) + spec["containers"]
    names = [c["name"] for c in containers] + [v["name"] for v in spec.get("volumes", [])]
    assert all(DNS_LABEL.match(n) for n in names), names
    assert DNS_LABEL.match(manifest["metadata"]["name"])


def pod(*args: str, env: dict | None = None) -> tuple[dict, str]:
    result = CliRunner().invoke(main_group, ["pod", *args], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return yaml.safe_load(result.stdout), result.stdout


def _containers(manifest: dict) -> dict[str, dict]:
    spec = manifest["spec"]
    return {c["name"]: c for c in spec["initContainers"] + spec["containers"]}


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_every_example_task_gives_a_valid_pod(example: str) -> None:
    values = [x for v in EXAMPLES[example] for x in ("-i", v)]
    manifest, _ = pod(str(ROOT / "examples" / example), "--prefix", PREFIX, *values)
    validate(manifest)
    c = _containers(manifest)
    assert list(c) == ["copilot-sidecar", "copilot-download", "main"]
    sidecar, download, main = c["copilot-sidecar"], c["copilot-download"], c["main"]
    assert sidecar["restartPolicy"] == "Always" and "restartPolicy" not in download
    task = yaml.safe_load((ROOT / "examples" / example).read_text())
    assert main["image"] == task["image"]
    # The data dirs of the task file, shared through emptyDirs.
    mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
    assert mounts == {
        task["input_data_dir"]: "copilot-inputs",
        task["output_data_dir"]: "copilot-outputs",
    }
    assert {"emptyDir": {}, "name": "copilot-inputs"} in manifest["spec"]["volumes"]
    assert download["args"][download["args"].index("--to-local-dir") + 1] == task["input_data_dir"]
    assert sidecar["args"][sidecar["args"].index("--from-local-dir") + 1] == task["output_data_dir"]
    # The interfaces decode to the task's own.
    iface = interface_pb2.TypedInterface()
    iface.ParseFromString(
        base64.b64decode(sidecar["args"][sidecar["args"].index("--interface") + 1])
    )
    assert [e.key for e in iface.outputs.variables] == list(task["outputs"])
    # copilot runs non-root, read-only, without privilege escalation.
    for container in (sidecar, download):
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] and sc["runAsUser"] == 65532 and sc["readOnlyRootFilesystem"]
        assert container["resources"]["limits"] == {"cpu": "500m", "memory": "128Mi"}
        assert "--config" in container["args"]


def test_the_command_is_rendered_as_flyte_renders_it() -> None:
    manifest, _ = pod(
        str(ROOT / "examples" / "script_runner.yaml"), "--prefix", PREFIX, "-i", "a=2", "-i", "b=28"
    )
    command = _containers(manifest)["main"]["command"]
    assert command[-1] == "python3 /var/inputs/script.py 2 28 > /var/outputs/result"


def test_the_all_types_task_from_its_inputs_document(tmp_path: Path) -> None:
    """Rendering reads the inputs document when no -i is given (as propeller does)."""
    task = tmp_path / "all.yaml"
    task.write_text("image: alpine:3.20\n" + ALL_TYPES_TASK)
    inputs = tmp_path / "inputs.pb"
    inputs.write_bytes(lits.literal_map({"i": lits.integer(-42)}).SerializeToString())
    manifest, _ = pod(str(task), "--prefix", PREFIX, "--inputs", f"file://{inputs}")
    validate(manifest)
    main = _containers(manifest)["main"]
    assert main["command"][-1].endswith("echo copied -42 >&2")
    download = _containers(manifest)["copilot-download"]
    assert download["args"][download["args"].index("--from-remote") + 1] == f"file://{inputs}"


def test_grace_period_follows_the_upload_timeout(tmp_path: Path) -> None:
    task = str(ROOT / "examples" / "named_dir.yaml")
    for timeout, grace, text in (
        ("1h", 3630, "1h0m0s"),
        ("10m", 630, "10m0s"),
        ("90s", 120, "1m30s"),
    ):
        manifest, _ = pod(task, "--prefix", PREFIX, "--timeout", timeout)
        assert manifest["spec"]["terminationGracePeriodSeconds"] == grace
        args = _containers(manifest)["copilot-sidecar"]["args"]
        assert args[args.index("--timeout") + 1] == text
        validate(manifest)


def test_no_credential_in_any_argument_or_environment_value() -> None:
    manifest, text = pod(
        str(ROOT / "examples" / "named_dir.yaml"),
        "--prefix",
        PREFIX,
        "--storage.stow.config",
        f"access_key_id={ACCESS_KEY}",
        "--storage.stow.config",
        f"secret_key={SECRET_KEY}",
    )
    assert ACCESS_KEY not in text and SECRET_KEY not in text
    for container in _containers(manifest).values():
        assert not any(a.startswith("--storage.") for a in container.get("args", []))
        for env in container.get("env", []):
            assert "secret" not in env["name"].lower() and "key" not in env["name"].lower()


def test_options_for_image_namespace_secret_and_resources() -> None:
    manifest, _ = pod(
        str(ROOT / "examples" / "named_dir.yaml"),
        "--prefix",
        "gs://b/run/",
        "--image",
        "registry.example/copilot:1",
        "--name",
        "reads-7",
        "--namespace",
        "flyte-dev",
        "--secret",
        "",
        "--cpu",
        "2",
        "--memory",
        "4Gi",
        "--run-as-user",
        "1000",
        "--service-account",
        "task-runner",
        "-o",
        "json",
    )
    validate(manifest)
    assert manifest["metadata"]["name"] == "reads-7"
    assert manifest["metadata"]["namespace"] == "flyte-dev"
    assert manifest["spec"]["serviceAccountName"] == "task-runner"
    assert all(v["name"] != "copilot-config" for v in manifest["spec"]["volumes"])
    c = _containers(manifest)
    assert "--config" not in c["copilot-download"]["args"]
    assert c["copilot-sidecar"]["image"] == "registry.example/copilot:1"
    assert c["main"]["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}
    assert c["main"]["securityContext"]["runAsUser"] == 1000
    args = c["copilot-sidecar"]["args"]
    assert args[args.index("--to-output-prefix") + 1] == "gs://b/run/"
    assert args[args.index("--to-raw-output") + 1] == "gs://b/run/raw"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prefix", "/local/path"], "must be a store URI"),
        (["--prefix", PREFIX, "--name", "Not_A_Label"], "is not a Kubernetes name"),
        (
            ["--prefix", PREFIX, "-i", "a=1", "-i", "b=2", "-i", "script.py={tmp}/x.py"],
            "local file",
        ),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "x.py").write_text("print(1)")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = CliRunner().invoke(
        main_group, ["pod", str(ROOT / "examples" / "script_runner.yaml"), *args]
    )
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def _doc_blocks() -> list[tuple[str, str, str]]:
    """(file, preceding marker line, yaml text) for every ```yaml block in the docs."""
    out = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        for m in re.finditer(r"(?:<!-- (.*?) -->\n)?```yaml\n(.*?)```", text, re.S):
            out.append((path.name, m.group(1) or "", m.group(2)))
    return out


def test_every_manifest_in_the_docs_validates() -> None:
    manifests = [
        (name, doc)
        for name, _, text in _doc_blocks()
        for doc in yaml.safe_load_all(text)
        if isinstance(doc, dict) and "apiVersion" in doc
    ]
    assert {"kubernetes.md", "orchestrators.md"} <= {name for name, _ in manifests}
    for name, doc in manifests:
        try:
            validate(doc)
        except AssertionError as exc:
            raise AssertionError(
                f"{name}: {doc['kind']} {doc['metadata']['name']}: {exc}"
            ) from None


def test_pod_manifests_in_the_docs_are_the_commands_own_output() -> None:
    """A block marked <!-- copilot pod ... --> must be exactly what that command prints."""
    marked = [(n, m, t) for n, m, t in _doc_blocks() if m.startswith("copilot pod ")]
    assert marked, "the docs show no copilot pod output"
    for name, marker, text in marked:
        args = shlex.split(marker)[1:]
        args = [str(ROOT / a) if a.startswith("examples/") else a for a in args]
        _, printed = pod(*args[1:])
        assert printed.strip() == text.strip(), (
            f"{name}: the block under <!-- {marker} --> is stale"
        )


def test_json_output_is_the_same_manifest() -> None:
    task = str(ROOT / "examples" / "named_dir.yaml")
    as_yaml, _ = pod(task, "--prefix", PREFIX)
    result = CliRunner().invoke(main_group, ["pod", task, "--prefix", PREFIX, "-o", "json"])
    assert json.loads(result.stdout) == as_yaml


def test_pod_passes_output_limits_to_the_sidecar_only() -> None:
    greeting = [str(ROOT / "examples" / "greeting.yaml"), "--prefix", PREFIX, "-i", "name=Ada"]
    limits = ["--max-output-bytes", "10G", "--max-output-files", "1000"]
    manifest, _ = pod(*greeting, *limits)
    validate(manifest)
    containers = _containers(manifest)
    args = containers["copilot-sidecar"]["args"]
    assert args[args.index("--max-output-bytes") + 1] == str(10 * 1000**3)
    assert args[args.index("--max-output-files") + 1] == "1000"
    assert "--max-output-depth" not in args  # not set: not passed
    assert "--max-output-bytes" not in containers["copilot-download"]["args"]
    # Without limits the sidecar's arguments are Flyte's own.
    plain, _ = pod(*greeting)
    sidecar = _containers(plain)["copilot-sidecar"]["args"]
    assert not any(a.startswith("--max-output") for a in sidecar)
