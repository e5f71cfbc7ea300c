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
    except IsADirectoryError:
        raise UsageError(f"{what} {path}: is a directory, expected a file") from None
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{what} {path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} "
            f"at offset {exc.start})"
        ) from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{what} {path}{_where(exc)}: not valid YAML ({_problem(exc)})") from None


def _where(exc: Any) -> str:
    """``:line:column`` (1-based) of a YAML error, where the parser says."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""


def _problem(exc: Any) -> str:
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    if problem and context:
        return f"{problem} {context}"
    return str(problem or context or str(exc).splitlines()[0] or "invalid")
