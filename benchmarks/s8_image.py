"""S8: the image: its size and a step's start inside it."""

from __future__ import annotations

import os
import subprocess

from benchmarks.harness import Bench
from benchmarks.measure import ROOT, Sample, env, measure, side_by_side


def s8_image(b: Bench, image: str) -> None:
    """The image built by scripts/test-image: its size, and `copilot --help` in a fresh
    container against an empty command in the same image (the engine's own cost).
    Needs podman and the image; the RSS column is the engine client's."""
    conf = ROOT / "tests" / "container" / "containers.conf"
    extra = {"CONTAINERS_CONF": str(conf)} if "CONTAINERS_CONF" not in os.environ else {}

    def engine(*args: str) -> Sample:
        return measure(["podman", *args], extra_env=extra)

    def size(name: str) -> int:
        out = subprocess.run(
            ["podman", "image", "inspect", "--format", "{{.Size}}", name],
            capture_output=True,
            text=True,
            check=True,
            env={**env(), **extra},
        )
        return int(out.stdout)

    base_name = subprocess.run(
        [
            "podman",
            "image",
            "inspect",
            "--format",
            '{{index .Config.Labels "org.opencontainers.image.base.name"}}',
            image,
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**env(), **extra},
    ).stdout.strip()
    total = size(image) / 1e6
    over = f", {total - size(base_name) / 1e6:.0f} MB over its base" if base_name else ""
    mine, base = side_by_side(
        lambda: engine("run", "--rm", image, "--help"),
        lambda: engine("run", "--rm", "--entrypoint", "/bin/true", image),
        b.runs,
    )
    b.row(
        "S8",
        f"image {total:.0f} MB{over}: copilot --help in a container",
        mine,
        base,
        "/bin/true in a container",
        "startup",
    )
