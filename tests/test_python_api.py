"""docs/python-api.md's example, run exactly as written, and cancelled mid-transfer."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from pathlib import Path

import lits
import pytest
from conftest import ACCESS_KEY, REGION, S3, SECRET_KEY
from faultproxy import FaultProxy

from copilot import CancelToken, StorageConfig, Store

ROOT = Path(__file__).resolve().parents[1]
TASK = "inputs:\n  data: File\n  n: int\noutputs:\n  total: int\n  report: File\n"


def _example() -> dict:
    """The doc's Python block, executed: it defines run_task."""
    text = (ROOT / "docs" / "python-api.md").read_text()
    block = re.search(r"```python\n(.*?)```", text, re.S)
    assert block, "docs/python-api.md has no python example"
    namespace: dict = {"__name__": "docs_example"}
    exec(compile(block.group(1), "docs/python-api.md", "exec"), namespace)
    return namespace


def _store(endpoint: str, engine: str = "auto") -> Store:
    return Store(
        StorageConfig(
            kind="s3",
            engine=engine,
            stow_config={
                "access_key_id": ACCESS_KEY,
                "secret_key": SECRET_KEY,
                "endpoint": endpoint,
                "region": REGION,
                "disable_ssl": "true",
            },
        ),
        concurrency=8,
    )


def _inputs(s3: S3, data: bytes) -> None:
    s3.put("data/input.bin", data)
    lm = lits.literal_map({"data": lits.blob(s3.uri("data/input.bin")), "n": lits.integer(4)})
    s3.put("run/inputs.pb", lm.SerializeToString())


def _container(workdir: str) -> None:
    """The orchestrator's part: read the inputs, write the outputs."""
    inputs, outputs = Path(workdir, "inputs"), Path(workdir, "outputs")
    outputs.mkdir(parents=True, exist_ok=True)
    n = int((inputs / "n").read_text())
    (outputs / "total").write_text(str(n * 10))
    (outputs / "report").write_bytes((inputs / "data").read_bytes()[::-1])


def test_the_example_runs_a_task_end_to_end(s3: S3, tmp_path: Path) -> None:
    example = _example()
    example["run_the_container"] = _container
    task = tmp_path / "task.yaml"
    task.write_text(TASK)
    _inputs(s3, b"abcdef")
    out = example["run_task"](
        _store(s3.endpoint), s3.uri("run"), str(tmp_path / "work"), str(task), CancelToken()
    )
    assert out == {"outputs": s3.uri("run/outputs.pb")}
    lm = lits.L.LiteralMap()
    lm.ParseFromString(s3.get("run/outputs.pb"))
    assert lm.literals["total"].scalar.primitive.integer == 40
    key = lm.literals["report"].scalar.blob.uri.split("/", 3)[3]
    assert s3.get(key) == b"fedcba"


@pytest.mark.parametrize("engine", ["obstore", "fsspec"])
def test_the_example_cancelled_mid_transfer_leaves_nothing_running(
    s3: S3, tmp_path: Path, engine: str
) -> None:
    example = _example()
    ran_container: list[str] = []
    example["run_the_container"] = ran_container.append
    task = tmp_path / "task.yaml"
    task.write_text(TASK)
    _inputs(s3, b"x" * (1 << 20))
    workdir = tmp_path / "work"
    cancel = CancelToken()
    result: dict = {}
    # Every request for the input object stalls: the download is mid-transfer for good.
    with FaultProxy(
        s3.endpoint, mode="stall", rate=1.0, stall_seconds=30, only_path="/data/"
    ) as proxy:
        store = _store(proxy.url, engine)
        assert store.engine_for(s3.uri("run")) == engine
        worker = threading.Thread(
            target=lambda: result.update(
                example["run_task"](store, s3.uri("run"), str(workdir), str(task), cancel)
            )
        )
        worker.start()
        deadline = time.monotonic() + 20
        while proxy.faults.get("stall", 0) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proxy.faults.get("stall"), "the transfer never started"
        cancel.cancel("user abort")
        worker.join(15)
        assert not worker.is_alive(), "the cancelled call did not return"
        # The call returned with the failure recorded, as the policy says.
        assert result["error"] == "download was cancelled (user abort)"
        assert result["retry"] is True and result["origin"] == "SYSTEM"
        assert result["document"] == s3.uri("run/error.pb")
        assert not ran_container
        # Nothing is still running: no task left on the store's event loop ...
        loop = store.client("s3").loop

        async def pending() -> int:
            return len([t for t in asyncio.all_tasks() if t is not asyncio.current_task()])

        assert asyncio.run_coroutine_threadsafe(pending(), loop).result(5) == 0
        # ... and nothing is being written: no partial file, and the tree stays as it is.
        before = sorted(str(p) for p in workdir.rglob("*"))
        assert not [p for p in before if p.endswith(".copilot-part")]
        time.sleep(0.3)  # a transfer still running would write within milliseconds
        assert sorted(str(p) for p in workdir.rglob("*")) == before
    assert not (workdir / "inputs" / "data").exists()
