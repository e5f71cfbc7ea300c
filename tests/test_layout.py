"""The package layout as the architecture: rules the code keeps, checked on its text."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "copilot"


def test_the_outputs_orchestrator_reads_nothing_itself() -> None:
    """One reader (literals/output_dir.py) owns every read of the output directory;
    outputs.py orchestrates: read -> hash -> upload -> write the document."""
    text = (PACKAGE / "outputs.py").read_text()
    reads = re.findall(r"\bopen\(|os\.(?:l?stat|read|scandir|listdir|walk)\(|\.read_bytes\(", text)
    assert not reads, reads


def test_the_readme_architecture_names_every_module() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Architecture") :]
    section = section[: section.index("\n## ", 1)] if "\n## " in section[1:] else section
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name in ("__init__.py", "__main__.py"):
            continue
        rel = str(path.relative_to(PACKAGE))
        if not any(f"`{n}`" in section for n in (path.name, path.stem, rel)):
            missing.append(str(path.relative_to(PACKAGE)))
    assert not missing, f"README's architecture section does not name: {missing}"


def test_each_command_has_its_module() -> None:
    from copilot.cli import main_group

    for name, command in main_group.commands.items():
        module = command.callback.__module__ if command.callback else ""
        assert module == f"copilot.cli.{name}", (name, module)


def test_the_api_is_what_the_docs_show() -> None:
    """docs/python-api.md names only API (copilot.__all__ or copilot.DOCUMENTED), and
    every documented name resolves."""
    import importlib
    import importlib.util

    import copilot

    doc = (ROOT / "docs" / "python-api.md").read_text()
    shown = set(re.findall(r"\bcopilot(?:\.[a-z_]+)+\.[A-Za-z_]+\b", doc))
    for module, names in re.findall(r"from (copilot[a-z_.]*) import (\([^)]*\)|[A-Za-z_, ]+)", doc):
        names = names.strip("()")
        shown |= {f"{module}.{n.strip()}" for n in names.split(",") if n.strip()}
    api = {f"copilot.{n}" for n in copilot.__all__} | set(copilot.DOCUMENTED)
    # a name the docs use as an attribute of an API object (store.scoped) is not a module path
    shown = {s for s in shown if importlib.util.find_spec(s.rsplit(".", 1)[0]) is not None}
    assert shown - api == set(), f"shown in the docs but not declared API: {shown - api}"
    for dotted in copilot.DOCUMENTED:
        module, name = dotted.rsplit(".", 1)
        assert hasattr(importlib.import_module(module), name), dotted


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep and not line.startswith("#"):
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def test_every_lower_bound_is_pinned_exactly_in_the_lowest_constraints() -> None:
    """scripts/test-lowest installs constraints-lowest.txt: each of pyproject's lower
    bounds must be what it pins, and constraints.txt must satisfy every bound."""
    import pytest
    from packaging.requirements import Requirement
    from packaging.version import Version

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = list(project["dependencies"])
    for extra in ("gcs", "s3", "azure", "redis"):
        runtime += project["optional-dependencies"][extra]
    lowest = _pins(ROOT / "constraints-lowest.txt")
    newest = _pins(ROOT / "constraints.txt")
    for text in runtime:
        req = Requirement(text)
        name = req.name.lower().replace("_", "-")
        floor = [s.version for s in req.specifier if s.operator == ">="]
        assert floor, f"{text}: no lower bound"
        pinned = lowest.get(name)
        assert pinned and Version(pinned) == Version(floor[0]), (
            f"{text}: constraints-lowest.txt pins {pinned}"
        )
        assert req.specifier.contains(newest[name]), f"{text}: constraints.txt pins {newest[name]}"


def test_every_install_hint_names_this_distribution() -> None:
    """``pip install 'copilot[...]'`` installs PyPI's ``copilot``, an unrelated
    project: every hint, the README and the image name this project's own
    distribution, whose commands stay ``copilot`` and ``flyte-copilot``."""
    from copilot.sdk import INSTALL
    from copilot.storage.backends import BACKENDS

    pyproject = (ROOT / "pyproject.toml").read_text()
    found = re.search(r'^name = "([^"]+)"$', pyproject, re.M)
    assert found is not None
    name = found[1]
    assert name != "copilot"
    scripts = pyproject[pyproject.index("[project.scripts]") :]
    assert 'copilot = "' in scripts and 'flyte-copilot = "' in scripts
    hints = [b.install for b in BACKENDS.values() if b.install]
    assert hints and all(h.startswith(f"{name}[") for h in hints), hints
    assert f"pip install '{name}[flyte]'" in INSTALL["flyte"]
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        wrong = re.findall(r"(?<![\w-])copilot\[\w+\]", doc.read_text())
        assert not wrong, (doc.name, wrong)
    assert f'org.opencontainers.image.title="{name}"' in (ROOT / "Dockerfile").read_text()


def test_no_script_stops_a_process_by_name() -> None:
    """A script stops only what it started, by its PID: ``pkill redis-server`` would
    stop the user's own servers too."""
    for script in sorted((ROOT / "scripts").iterdir()):
        if script.is_file():
            text = script.read_text()
            assert not re.search(r"\b(pkill|killall)\b", text), script.name


def test_every_backends_row_names_a_module_that_reads_its_keys() -> None:
    """A store is one module and one row: the row's module exists, answers what
    the engines call for a row like it, and reads every configuration key the row
    declares (the keys ``--storage.stow.config`` accepts for its kind)."""
    import importlib

    from copilot.storage.backends import BACKENDS, STOW_KEYS

    for row in BACKENDS.values():
        if not row.module:
            # A plain fsspec protocol, or copilot's own local store (whose one
            # stow key, ``path``, Flyte writes and an absolute file:// URI makes moot).
            assert row.protocol in ("file", "memory"), row
            continue
        module = importlib.import_module(row.module)
        source = (ROOT / (row.module.replace(".", "/") + ".py")).read_text()
        hooks = ["make_client"] if hasattr(module, "make_client") else ["fsspec_options"]
        hooks += ["obstore_options"] if row.native else []
        hooks += ["reader", "writer"] if row.bounded else []
        for hook in hooks:
            assert callable(getattr(module, hook, None)), (row.protocol, hook)
        for key in row.config_keys:
            assert f'"{key}"' in source, f"{row.module} never reads its key {key!r}"
    assert set(STOW_KEYS) == {"s3", "google", "azure", "local"}
