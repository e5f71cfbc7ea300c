"""Shared fixtures: a real S3 server (moto, HTTP on loopback) and the copilot command."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# CI runs the same generated examples every time (a gate should not be a lottery);
# local runs explore new ones.
from hypothesis import settings as _hsettings  # noqa: E402

_hsettings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    _hsettings.load_profile("ci")

# Distinctive fake credentials: tests grep every output for them.
ACCESS_KEY = "AKIACOPILOTTEST0001"
SECRET_KEY = "s3cr3t/C0pilot+Value=XYZ"
REGION = "us-east-1"


def copilot_exe() -> str:
    """The installed console script, as users run it."""
    exe = Path(sys.executable).with_name("copilot")
    if exe.exists():
        return str(exe)
    found = shutil.which("copilot")
    assert found, "the copilot console script is not installed"
    return found


@dataclass
class S3:
    endpoint: str
    bucket: str
    client: object
    #: The engine copilot uses for this bucket: ``auto`` (the default, obstore),
    #: ``obstore`` or ``fsspec``; in ``store()`` and ``stow_flags()``.
    engine: str = "auto"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key.lstrip('/')}"

    def put(self, key: str, data: bytes) -> str:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        return self.uri(key)

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def exists(self, key: str) -> bool:
        resp = self.client.list_objects_v2(Bucket=self.bucket, Prefix=key)
        return any(o["Key"] == key for o in resp.get("Contents", []))

    def keys(self, prefix: str = "") -> list[str]:
        out: list[str] = []
        token = None
        while True:
            kw = {"Bucket": self.bucket, "Prefix": prefix}
            if token:
                kw["ContinuationToken"] = token
            resp = self.client.list_objects_v2(**kw)
            out += [o["Key"] for o in resp.get("Contents", [])]
            if not resp.get("IsTruncated"):
                return out
            token = resp["NextContinuationToken"]

    def store(
        self,
        concurrency: int = 32,
        endpoint: str | None = None,
        engine: str | None = None,
        retry: Any = None,
    ):
        """An in-process copilot Store configured for this server (or ``endpoint``),
        on the bucket's engine (or ``engine``), with ``retry`` (a ``RetryPolicy``) if given."""
        from copilot.config import StorageConfig
        from copilot.storage import Store

        cfg = StorageConfig(
            kind="s3",
            engine=engine or self.engine,
            stow_config={
                "access_key_id": ACCESS_KEY,
                "secret_key": SECRET_KEY,
                "endpoint": endpoint or self.endpoint,
                "region": REGION,
                "disable_ssl": "true",
            },
        )
        return Store(cfg, concurrency=concurrency, retry=retry)

    def env(self) -> dict[str, str]:
        """Environment that points botocore (and so copilot) at this server."""
        return clean_env(
            AWS_ACCESS_KEY_ID=ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=SECRET_KEY,
            AWS_DEFAULT_REGION=REGION,
            AWS_ENDPOINT_URL_S3=self.endpoint,
        )

    protocol = "s3"

    @property
    def upstream(self) -> str:
        return self.endpoint

    def put_file(self, key: str, path: str) -> str:
        self.client.upload_file(path, self.bucket, key)
        return self.uri(key)

    def stow_flags(self, endpoint: str | None = None) -> list[str]:
        """Root flags exactly as Flyte's plugin builds them (SPEC §2), optionally
        pointed at another endpoint (a fault proxy in front of this server)."""
        return [
            "--storage.limits.maxDownloadMBs=0",
            "--logger.level=4",
            "--storage.enable-multicontainer",
            f"--storage.container={self.bucket}",
            "--storage.type=stow",
            "--storage.stow.config",
            "auth_type=accesskey",
            "--storage.stow.config",
            f"access_key_id={ACCESS_KEY}",
            "--storage.stow.config",
            f"secret_key={SECRET_KEY}",
            "--storage.stow.config",
            f"endpoint={endpoint or self.endpoint}",
            "--storage.stow.config",
            f"region={REGION}",
            "--storage.stow.config",
            "disable_ssl=true",
            "--storage.stow.kind=s3",
            *([f"--storage.engine={self.engine}"] if self.engine != "auto" else []),
        ]


def clean_env(**extra: str) -> dict[str, str]:
    """The process environment without any AWS or Flyte settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FLYTE_", "BOTO"))}
    # Keep botocore from reading the developer's own ~/.aws files.
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _make_bucket(endpoint: str) -> S3:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    )
    bucket = f"copilot-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return S3(endpoint, bucket, client)


@pytest.fixture
def s3(s3_endpoint: str) -> S3:
    """A fresh bucket on the shared moto server."""
    return _make_bucket(s3_endpoint)


@pytest.fixture(scope="module")
def s3_module(s3_endpoint: str) -> S3:
    return _make_bucket(s3_endpoint)


def run_copilot(
    args: list[str], *, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The CLI in this process (click's CliRunner), as a user would see it: exit code and output.

    Most tests run here, fast; the few about signals and the console entry
    point start a real process (:func:`run_copilot_process`).
    """
    from click.testing import CliRunner

    from copilot.cli import main_group

    wanted = env if env is not None else clean_env()
    overrides: dict[str, str | None] = {k: None for k in os.environ if k not in wanted}
    overrides.update(wanted)
    result = CliRunner().invoke(main_group, args, env=overrides, prog_name="copilot")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    res = subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)
    record(res.stdout, res.stderr)
    return res


def run_copilot_process(
    args: list[str], *, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The installed console script in its own process."""
    res = subprocess.run(
        [copilot_exe(), *args],
        capture_output=True,
        text=True,
        env=env if env is not None else clean_env(),
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    record(res.stdout, res.stderr)
    return res


# Everything copilot printed during the session, checked for secrets at the end.
CAPTURED: list[str] = []
CAPTURE_LOG = Path(__file__).resolve().parents[1] / ".test-output.log"


def record(*texts: str | None) -> None:
    CAPTURED.extend(t for t in texts if t)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Container tests need an image built by scripts/test-image: without one they
    are deselected (reported in the summary), never skipped one by one."""
    if os.environ.get("COPILOT_TEST_IMAGE"):
        return
    dropped = [item for item in items if item.get_closest_marker("container")]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not item.get_closest_marker("container")]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start Azurite now when a test will want it: its start-up overlaps the tests
    that come first instead of stalling the first Azure test (the fixture takes it
    over; one nobody took is stopped with the session)."""
    if any("abfs" in item.nodeid or "azure" in item.nodeid.lower() for item in session.items):
        from emulators import start_azurite_early, stop_early_azurite

        start_azurite_early()
        session.config.add_cleanup(stop_early_azurite)


def _worker_logs() -> list[Path]:
    return sorted(CAPTURE_LOG.parent.glob(CAPTURE_LOG.name + ".gw*"))


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):
        for stale in _worker_logs():
            stale.unlink()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if anything copilot printed holds a credential or a traceback.

    Every expected failure is one line; at the default log level no traceback,
    copilot's or a library's, reaches stderr.  Under pytest-xdist each worker
    leaves what it captured in a file of its own, and the controller (which
    finishes last) checks them all together.
    """
    workerinput = getattr(session.config, "workerinput", None)
    if workerinput is not None:
        Path(f"{CAPTURE_LOG}.{workerinput['workerid']}").write_text("\n".join(CAPTURED))
        return
    parts = list(CAPTURED)
    for log in _worker_logs():
        parts.append(log.read_text())
        log.unlink()
    text = "\n".join(parts)
    CAPTURE_LOG.write_text(text)
    leaked = [s for s in (SECRET_KEY, ACCESS_KEY) if s in text]
    if leaked:
        print(
            f"\nSECRET LEAK: {len(leaked)} credential value(s) found in copilot output; "
            f"see {CAPTURE_LOG}"
        )
        session.exitstatus = 1
    if "Traceback (most recent call last)" in text:
        print(f"\nTRACEBACK: copilot printed a traceback during the tests; see {CAPTURE_LOG}")
        session.exitstatus = 1


@pytest.fixture(scope="session")
def installed_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The Dockerfile's install steps in a fresh venv; the install is then made read-only.

    Returns a root with ``bin/flyte-copilot`` and ``bin/copilot`` (as /bin in the
    image) and ``opt`` (the venv).  World-readable, so other users can run it.
    """
    import re
    import stat
    import tempfile

    repo = Path(__file__).resolve().parents[1]
    text = (repo / "Dockerfile").read_text()
    root = Path(tempfile.mkdtemp(prefix="copilot-image-"))
    os.chmod(root, 0o755)
    src = root / "src"
    for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.M):  # the build stage's
        *parts, dest = line.split()
        for part in parts:
            source = repo / part
            target = src / Path(dest).relative_to("/src")
            if dest.endswith("/"):
                target = target / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, target)
    m = re.search(r"/src/scripts/install-image (\S+) (\S+) (\S+)", text)
    assert m, "the Dockerfile no longer installs with scripts/install-image"
    res = subprocess.run(
        [str(src / "scripts" / "install-image"), str(src), str(root / "opt"), str(root / "bin")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "copilot, version" in res.stdout
    for dirpath, dirnames, filenames in os.walk(root / "opt"):
        for name in dirnames + filenames + [""]:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            mode = os.stat(path).st_mode
            os.chmod(path, (mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH) & ~0o222)
    try:
        yield root
    finally:
        for dirpath, dirnames, _ in os.walk(root):
            for name in [*dirnames, ""]:
                with contextlib.suppress(OSError):
                    os.chmod(os.path.join(dirpath, name), 0o755)
        shutil.rmtree(root, ignore_errors=True)


#: Every object store, on every engine that serves it: obstore (the default for
#: S3 and Azure) and fsspec (the reference; the only one for GCS).  The
#: reference engine's runs of S3 and Azure are in CI's whole run, not the
#: everyday one (`-m "not slow"`), which stays under a minute.
PROTOCOL_ENGINES = ("s3-obstore", "s3-fsspec", "gs-fsspec", "abfs-obstore", "abfs-fsspec")
REMOTES = (
    "s3-obstore",
    pytest.param("s3-fsspec", marks=pytest.mark.slow),
    "gs-fsspec",
    "abfs-obstore",
    pytest.param("abfs-fsspec", marks=pytest.mark.slow),
)


@pytest.fixture(params=REMOTES)
def remote(request: pytest.FixtureRequest):
    """A fresh bucket on each object store and engine in turn: S3 (moto), GCS, Azure Blob."""
    from stores import make_remote

    return make_remote(request.param, request)


@pytest.fixture(
    params=["s3-obstore", *(pytest.param(r, marks=pytest.mark.slow) for r in PROTOCOL_ENGINES[1:])]
)
def remote_everyday_s3(request: pytest.FixtureRequest):
    """As ``remote``, with only S3 on obstore in the everyday run: for the slower
    fault scenarios (a stall, an outage), whose other stores run in the whole one."""
    from stores import make_remote

    return make_remote(request.param, request)


@pytest.fixture(scope="module", params=REMOTES)
def remote_module(request: pytest.FixtureRequest):
    """One bucket per module on each object store and engine in turn."""
    from stores import make_remote

    return make_remote(request.param, request)


@pytest.fixture(scope="session")
def gcs_server():
    """fake-gcs-server (the Go server from its PyPI wheel) on a free loopback port."""
    from emulators import fake_gcs_server

    with fake_gcs_server() as gcs:
        yield gcs


@pytest.fixture(scope="session")
def redis_server():
    """redis-server (Debian) on a free loopback port, with a password."""
    from emulators import redis_server as start

    with start() as server:
        yield server


@pytest.fixture(scope="session")
def azure_server():
    """Azurite (npm) on a free loopback port."""
    from emulators import azurite

    with azurite() as azure:
        yield azure
