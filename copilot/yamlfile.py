"""Reading the YAML files a person writes: configuration, task files, interfaces.

One loader, so every such file fails the same way: one line naming what the
file is, its path and what is wrong with it.
"""

from __future__ import annotations

from typing import Any

from copilot.errors import UsageError


def load_yaml(path: str, what: str) -> Any:
    """Parse one YAML (or JSON) file; a clear UsageError naming ``what`` if it cannot."""
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        detail = str(exc).splitlines()[0] if str(exc) else "invalid"
        raise UsageError(f"{what} {path}: not valid YAML ({detail})") from None
