"""The image and ``copilot run --docker``, run by a real OCI engine (podman).

scripts/test-image builds the Dockerfile, sets COPILOT_TEST_IMAGE (the copilot
image) and COPILOT_TEST_BASE_IMAGE (the Debian base it was built on, which also
stands in for the examples' images: no registry is reachable here) and runs
these tests; without those variables they are deselected (conftest.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import lits
import pytest
import yaml
from conftest import ACCESS_KEY, S3, SECRET_KEY, clean_env, record
from flyteidl2.core import execution_pb2, literals_pb2

pytestmark = pytest.mark.container

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
IMAGE = os.environ.get("COPILOT_TEST_IMAGE", "")
BASE = os.environ.get("COPILOT_TEST_BASE_IMAGE", "")
COPILOT = str(Path(sys.executable).with_name("copilot"))
VERSION = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M)[1]


def podman(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} -> {proc.returncode}\n{proc.stderr}")
    return proc


def in_image(script: str) -> subprocess.CompletedProcess:
    """A shell script in the copilot image, as its default user."""
    return podman("run", "--rm", "--entrypoint", "/bin/sh", IMAGE, "-c", script, check=False)


# -- the image on its own ---------------------------------------------------------------------


def test_the_cli_answers_in_the_image() -> None:
    helped = podman("run", "--rm", IMAGE, "--help")
    assert "download" in helped.stdout and "sidecar" in helped.stdout
    version = podman("run", "--rm", "--entrypoint", "/bin/flyte-copilot", IMAGE, "--version")
    assert version.stdout.strip() == f"copilot, version {VERSION}"


def test_runs_as_65532_with_a_group_of_its_own() -> None:
    who = in_image("id; getent group 65532")
    assert who.returncode == 0, who.stderr
    assert "uid=65532(copilot) gid=65532(copilot) groups=65532(copilot)" in who.stdout
    assert "copilot:x:65532:" in who.stdout


def test_install_dir_is_read_only_and_tmp_is_writable() -> None:
    probe = in_image(
        "touch /opt/copilot/x 2>/dev/null && echo opt-writable; "
        "touch /bin/x 2>/dev/null && echo bin-writable; "
        "touch /tmp/x && echo tmp-ok"
    )
    assert probe.stdout.split() == ["tmp-ok"], probe.stdout + probe.stderr


def test_image_metadata_and_contents() -> None:
    info = json.loads(podman("image", "inspect", IMAGE).stdout)[0]
    config = info["Config"]
    assert config["Entrypoint"] == ["/bin/flyte-copilot"]
    assert config["User"] == "65532:65532"
    assert not config.get("Healthcheck")
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.source"]
    assert len(labels["org.opencontainers.image.revision"]) == 40
    assert labels["org.opencontainers.image.base.name"] == BASE
    # No build tools or install-time leftovers; modules compiled at build time.
    contents = in_image(
        "command -v gcc cc make pip pip3; ls /opt/copilot/bin; ls -d /src 2>/dev/null; "
        "find /opt/copilot -name 'steps.*.pyc' | head -n 1; "
        "ls -d /root/.cache/pip 2>/dev/null; "
        "/opt/copilot/bin/python -c 'import obstore, gcsfs; print(\"stores-ok\")'"
    )
    out = contents.stdout
    assert "gcc" not in out and "make" not in out and "/src" not in out, out
    assert "pip" not in out.replace("pip/", ""), out
    assert ".pyc" in out and "stores-ok" in out, out + contents.stderr


# -- a Flyte pod, simulated -------------------------------------------------------------------


def _memory(value: str) -> str:
    units = {"Ki": "k", "Mi": "m", "Gi": "g"}
    return value[:-2] + units[value[-2:]] if value[-2:] in units else value


def _cpus(value: str) -> str:
    return str(int(value[:-1]) / 1000) if value.endswith("m") else value


class Pod:
    """Runs a pod manifest's containers with podman, the way the kubelet would for
    this layout: native sidecars started first, init containers one after another to
    completion, then the main containers, then SIGTERM to the sidecars.

    emptyDir volumes are host directories (mode 0777, like the kubelet's), the
    Secret volume a directory holding the storage file; every container shares
    the host's network, where moto listens on loopback.
    """

    def __init__(self, manifest: dict, workdir: Path, secret_dir: Path, images: dict) -> None:
        self.manifest = manifest
        self.spec = manifest["spec"]
        self.images = images  # container name -> image to use instead of the manifest's
        self.tag = f"pod-{uuid.uuid4().hex[:8]}"
        self.volumes: dict[str, Path] = {}
        for vol in self.spec["volumes"]:
            if "emptyDir" in vol:
                path = workdir / vol["name"]
                path.mkdir()
                path.chmod(0o777)
            else:
                assert "secret" in vol, vol
                path = secret_dir
            self.volumes[vol["name"]] = path
        self.logs: dict[str, str] = {}
        self.memory: dict[str, int] = {}  # the memory limit the engine applied, by container

    def _name(self, c: dict) -> str:
        return f"{self.tag}-{c['name']}"

    def _argv(self, c: dict, *, detach: bool = False) -> list[str]:
        argv = ["run", "--network=host", "--name", self._name(c)]
        argv += ["-d"] if detach else []
        sc = c.get("securityContext", {})
        if "runAsUser" in sc:
            user = str(sc["runAsUser"])
            argv += ["--user", f"{user}:{sc['runAsGroup']}" if "runAsGroup" in sc else user]
        fs_group = self.spec.get("securityContext", {}).get("fsGroup")
        if fs_group is not None:
            argv += ["--group-add", str(fs_group)]
        if sc.get("readOnlyRootFilesystem"):
            argv += ["--read-only", "--read-only-tmpfs=false"]  # no /tmp unless mounted
        if "ALL" in sc.get("capabilities", {}).get("drop", []):
            argv.append("--cap-drop=all")
        if sc.get("allowPrivilegeEscalation") is False:
            argv.append("--security-opt=no-new-privileges")
        limits = c.get("resources", {}).get("limits", {})
        if "memory" in limits:
            argv += ["--memory", _memory(limits["memory"])]
        if "cpu" in limits:
            argv += ["--cpus", _cpus(limits["cpu"])]
        for m in c.get("volumeMounts", []):
            ro = ":ro" if m.get("readOnly") else ""
            argv += ["-v", f"{self.volumes[m['name']]}:{m['mountPath']}{ro}"]
        for e in c.get("env", []):
            argv += ["--env", f"{e['name']}={e['value']}"]
        if c.get("command"):
            argv += ["--entrypoint", json.dumps(c["command"])]
        return [*argv, self.images.get(c["name"], c["image"]), *c.get("args", [])]

    def _finish(self, c: dict) -> int:
        name = self._name(c)
        code = int(podman("wait", name).stdout.strip())
        logs = podman("logs", name, check=False)
        self.logs[c["name"]] = logs.stdout + logs.stderr
        record(logs.stderr)
        podman("rm", "-f", name, check=False)
        return code

    def run(self) -> dict[str, int]:
        """Every container's exit status, by name."""
        inits = self.spec.get("initContainers", [])
        sidecars = [c for c in inits if c.get("restartPolicy") == "Always"]
        statuses: dict[str, int] = {}
        try:
            for c in sidecars:
                podman(*self._argv(c, detach=True))
                limit = podman("inspect", "--format", "{{.HostConfig.Memory}}", self._name(c))
                self.memory[c["name"]] = int(limit.stdout)
            for c in inits:
                if c in sidecars:
                    continue
                podman(*self._argv(c, detach=True))
                statuses[c["name"]] = self._finish(c)
                assert statuses[c["name"]] == 0, self.logs[c["name"]]
            for c in self.spec["containers"]:
                podman(*self._argv(c, detach=True))
                statuses[c["name"]] = self._finish(c)
            for c in sidecars:
                # What the kubelet does once the main container has ended: SIGTERM.
                podman("stop", "--time", "120", self._name(c))
                statuses[c["name"]] = self._finish(c)
        finally:
            leftovers = podman("ps", "-aq", "--filter", f"name={self.tag}", check=False).stdout
            for cid in leftovers.split():
                podman("rm", "-f", cid, check=False)
        return statuses


@pytest.fixture
def secret_dir(s3: S3, tmp_path: Path) -> Path:
    """The storage Secret's files, as docs/kubernetes.md writes it (moto on loopback)."""
    path = tmp_path / "secret"
    path.mkdir()
    doc = {
        "storage": {
            "type": "stow",
            "container": s3.bucket,
            "stow": {
                "kind": "s3",
                "config": {
                    "auth_type": "accesskey",
                    "access_key_id": ACCESS_KEY,
                    "secret_key": SECRET_KEY,
                    "region": "us-east-1",
                    "endpoint": s3.endpoint,
                    "disable_ssl": True,
                },
            },
        }
    }
    (path / "storage.yaml").write_text(yaml.safe_dump(doc))
    path.chmod(0o755)
    (path / "storage.yaml").chmod(0o644)
    return path


def _manifest(task: Path, prefix: str, *extra: str) -> dict:
    out = subprocess.run(
        [COPILOT, "pod", str(task), "--prefix", prefix, "--image", IMAGE, "-o", "json", *extra],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    manifest = json.loads(out.stdout)
    # No credential in any argument or environment value: storage comes from the Secret.
    assert ACCESS_KEY not in out.stdout and SECRET_KEY not in out.stdout
    return manifest


def _pod(manifest: dict, tmp_path: Path, secret_dir: Path) -> Pod:
    return Pod(manifest, tmp_path, secret_dir, {"main": BASE})


def test_pod_runs_the_script_runner_example(s3: S3, secret_dir: Path, tmp_path: Path) -> None:
    """Download (init) lays out a File and two ints, the main container runs the
    script from /var/inputs as another user, the sidecar uploads on SIGTERM."""
    script = s3.put("runs/sr/data/add.py", (EXAMPLES / "add.py").read_bytes())
    inputs = {"script.py": lits.blob(script), "a": lits.integer(2), "b": lits.integer(40)}
    s3.put("runs/sr/inputs.pb", lits.literal_map(inputs).SerializeToString())
    manifest = _manifest(
        EXAMPLES / "script_runner.yaml",
        s3.uri("runs/sr"),
        "-i",
        "a=2",
        "-i",
        "b=40",
        "--run-as-user",
        "1000",
    )
    pod = _pod(manifest, tmp_path, secret_dir)
    statuses = pod.run()
    assert statuses == {"copilot-download": 0, "main": 0, "copilot-sidecar": 0}, pod.logs
    assert pod.memory == {"copilot-sidecar": 128 << 20}  # Flyte's budget, enforced
    outputs = literals_pb2.LiteralMap.FromString(s3.get("runs/sr/outputs.pb"))
    assert outputs.literals["result"].scalar.primitive.integer == 42
    assert not s3.exists("runs/sr/error.pb")
    # The main container wrote as uid 1000; copilot (65532) read it.
    assert (tmp_path / "copilot-outputs" / "result").stat().st_uid == 1000


def test_pod_runs_the_greeting_example(s3: S3, secret_dir: Path, tmp_path: Path) -> None:
    s3.put("runs/gr/inputs.pb", lits.literal_map({"name": lits.string("Ada")}).SerializeToString())
    manifest = _manifest(EXAMPLES / "greeting.yaml", s3.uri("runs/gr"), "-i", "name=Ada")
    pod = _pod(manifest, tmp_path, secret_dir)
    assert pod.run() == {"copilot-download": 0, "main": 0, "copilot-sidecar": 0}, pod.logs
    outputs = literals_pb2.LiteralMap.FromString(s3.get("runs/gr/outputs.pb"))
    assert outputs.literals["greeting"].scalar.primitive.string_value == "Hello, my name is Ada."
    # download wrote the JSON metadata beside the value files, as the docs say.
    assert json.loads((tmp_path / "copilot-inputs" / "inputs.json").read_text())["name"] == "Ada"


def test_pod_main_container_error_file_gives_error_pb(
    s3: S3, secret_dir: Path, tmp_path: Path
) -> None:
    s3.put("runs/er/inputs.pb", lits.literal_map({"name": lits.string("Ada")}).SerializeToString())
    manifest = _manifest(EXAMPLES / "greeting.yaml", s3.uri("runs/er"), "-i", "name=Ada")
    main = manifest["spec"]["containers"][0]
    main["command"] = ["/bin/sh", "-c", "echo 'no greeting today' > /var/outputs/_ERROR; exit 1"]
    pod = _pod(manifest, tmp_path, secret_dir)
    statuses = pod.run()
    assert statuses["main"] == 1 and statuses["copilot-sidecar"] == 0, pod.logs
    doc = execution_pb2.ErrorDocument.FromString(s3.get("runs/er/error.pb"))
    assert "no greeting today" in doc.error.message
    assert doc.error.origin == execution_pb2.ExecutionError.USER
    assert not s3.exists("runs/er/outputs.pb")


# -- copilot run --docker ---------------------------------------------------------------------


def _run(args: list[str], home: Path, *, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [COPILOT, "run", "--docker", *args],
        capture_output=True,
        text=True,
        cwd=EXAMPLES,
        env=clean_env(COPILOT_HOME=str(home)),
        timeout=timeout,
        check=False,
    )
    record(proc.stderr)
    return proc


@pytest.mark.parametrize(
    ("task", "inputs", "expected"),
    [
        ("greeting.yaml", [], {"greeting": "Hello, my name is flyte."}),
        ("script_runner.yaml", ["-i", "a=2", "-i", "b=3"], {"result": 5}),
        (
            "named_dir.yaml",
            ["-i", 'reads=["data/lane1/reads.fastq.gz", "data/lane3/1_reads.fastq.gz"]'],
            {"count": 2, "names": ["1_reads.fastq.gz", "reads.fastq.gz"]},
        ),
    ],
)
def test_every_example_under_run_docker(
    task: str, inputs: list[str], expected: dict, tmp_path: Path
) -> None:
    run = _run([task, "--image", BASE, *inputs, "-q"], tmp_path)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    if "names" in got:
        got["names"] = sorted(got["names"])
    assert got == expected


def test_every_example_is_covered() -> None:
    tested = {"greeting.yaml", "script_runner.yaml", "named_dir.yaml"}
    assert {p.name for p in EXAMPLES.glob("*.yaml")} == tested


def _task(tmp_path: Path, command: str, outputs: dict | None = None, image: str = "") -> Path:
    doc = {
        "name": "t",
        "image": image or BASE,
        "outputs": outputs or {},
        "command": ["/bin/sh", "-c", command],
    }
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_failing_command_shows_its_status_and_stderr(tmp_path: Path) -> None:
    task = _task(tmp_path, "echo 'reads.fastq: no such file' >&2; exit 3", {"n": "int"})
    run = _run([str(task), "-q"], tmp_path)
    assert run.returncode == 3, run.stderr
    assert "the command exited with status 3" in run.stderr
    assert "reads.fastq: no such file" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.fixture(scope="module")
def other_user_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base with a non-root default user (uid 1234), like many published images."""
    ctx = tmp_path_factory.mktemp("user-image")
    (ctx / "Containerfile").write_text(f"FROM {BASE}\nUSER 1234:1234\n")
    name = f"localhost/copilot-test-user:{uuid.uuid4().hex[:8]}"
    podman("build", "--quiet", "-t", name, str(ctx))
    yield name
    podman("rmi", "-f", name, check=False)


def test_outputs_written_by_another_user(other_user_image: str, tmp_path: Path) -> None:
    task = _task(
        tmp_path,
        "id -u > /var/outputs/uid; mkdir /var/outputs/d; echo hi > /var/outputs/d/a.txt",
        {"uid": "int", "d": "Dir"},
        image=other_user_image,
    )
    run = _run([str(task), "-q", "--workdir", str(tmp_path / "work")], tmp_path)
    assert run.returncode == 0, run.stderr
    outputs = json.loads(run.stdout)
    assert outputs["uid"] == 1234
    written = next((tmp_path / "work").glob("*/outputs/d/a.txt"))
    assert written.stat().st_uid == 1234


def test_ctrl_c_stops_the_container(tmp_path: Path) -> None:
    task = _task(tmp_path, "echo started; sleep 600", {"n": "int"})
    proc = subprocess.Popen(
        [COPILOT, "run", "--docker", str(task)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(COPILOT_HOME=str(tmp_path)),
        # As from a terminal: a background job of a non-interactive shell (a CI
        # script's `cmd &`) starts with SIGINT ignored, and Python keeps it so.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            running = podman("ps", "-q", "--filter", "name=copilot-run-").stdout.split()
            if running:
                break
            time.sleep(0.2)
        assert running, "the container never started"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)  # a guard against hanging, not a timing check
    finally:
        if proc.poll() is None:
            proc.kill()
            for cid in podman("ps", "-q", "--filter", "name=copilot-run-").stdout.split():
                podman("rm", "-f", cid, check=False)
    record(err)
    assert proc.returncode == 130, err
    assert "copilot: interrupted" in err and "Traceback" not in err
    for cid in running:
        assert podman("ps", "-aq", "--filter", f"id={cid}").stdout.strip() == ""


def test_engine_choice_reaches_podman_without_a_docker_daemon(tmp_path: Path) -> None:
    """This machine has a docker client and no daemon: auto must fall through to
    podman, and --engine docker must say why it cannot."""
    task = _task(tmp_path, "echo 7 > /var/outputs/n", {"n": "int"})
    auto = _run([str(task), "-q"], tmp_path)
    assert auto.returncode == 0 and json.loads(auto.stdout) == {"n": 7}, auto.stderr
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "info"], capture_output=True, check=False).returncode
    ):
        forced = _run([str(task), "--engine", "docker"], tmp_path)
        assert forced.returncode == 2
        assert forced.stderr.startswith("copilot: error: --docker: no container engine")
        assert "docker:" in forced.stderr and len(forced.stderr.strip().splitlines()) == 1


def test_an_image_that_cannot_be_pulled_is_said_and_recorded_as_a_system_failure(
    tmp_path: Path,
) -> None:
    """podman exits 125 when it cannot pull; that is not the command's failure."""
    from flyteidl2.core import execution_pb2

    image = "localhost/copilot-no-such-image:1"
    run = _run(["greeting.yaml", "--image", image, "-q", "-o", "record"], tmp_path, timeout=120)
    doc = json.loads(run.stdout)
    assert run.returncode == 125, run.stderr
    assert doc["error"].startswith(f"the image {image} could not be pulled (status 125)")
    (error_pb,) = (tmp_path / "store").rglob("error.pb")
    err = execution_pb2.ErrorDocument.FromString(error_pb.read_bytes()).error
    assert err.origin == execution_pb2.ExecutionError.SYSTEM and err.code == "CommandFailed"
