"""Values as Flyte's configuration spells them, and the checks every section shares.

flytestdlib takes pflag's spellings (``t``/``f`` booleans, ``K=V,K=V`` maps) and
YAML's; a key a section does not take is a typo, and an error that names the
nearest valid one.  Used by the config reader, the storage section and the task
and interface files alike.
"""

from __future__ import annotations

from typing import Any

from copilot.errors import UsageError

_TRUE = {"1", "t", "true", "yes", "y", "on"}
_FALSE = {"0", "f", "false", "no", "n", "off", ""}


def parse_bool(value: Any, name: str) -> bool:
    """Accept Go's and YAML's spellings of a boolean."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise UsageError(f"{name}: expected true or false, found {value!r}")


def parse_pairs(value: str, name: str) -> dict[str, str]:
    """Parse ``K=V[,K=V...]`` as pflag's StringToString does: one CSV record.

    A field in double quotes keeps its commas and ``=`` (``"json={""a"": 1}"``,
    quotes doubled inside, as Go's csv reads them), so a service-account JSON
    arrives whole.  An unquoted field without ``=`` continues the previous
    value (``secret_key=a,b``), which pflag would refuse.
    """
    import csv

    try:
        fields = next(csv.reader([value], skipinitialspace=False), [])
    except csv.Error as exc:
        raise UsageError(f"{name}: cannot read {value!r} as KEY=VALUE pairs ({exc})") from None
    pairs: dict[str, str] = {}
    last: str | None = None
    for piece in fields:
        if "=" in piece:
            key, _, val = piece.partition("=")
            key = key.strip()
            if not key:
                raise UsageError(f"{name}: expected KEY=VALUE, found {piece!r}")
            pairs[key] = val
            last = key
        elif last is not None:
            pairs[last] += "," + piece
        elif piece.strip():
            raise UsageError(f"{name}: expected KEY=VALUE, found {piece!r}")
    return pairs


def set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def get_path(tree: dict[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Merge ``extra`` into a copy of ``base``; nested dicts merge, the rest replaces."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def text_value(value: Any) -> str:
    """A configuration value as text ("" for none)."""
    return "" if value is None else str(value)


def did_you_mean(key: str, allowed: Any) -> str:
    import difflib

    near = difflib.get_close_matches(key, list(allowed), n=1)
    return f" (did you mean {near[0]}?)" if near else ""


def check_section_keys(
    section: str, tree: dict[str, Any], allowed: tuple[str, ...], noun: str = "key"
) -> None:
    """A key a section does not take is a typo: an error naming it and the nearest one."""
    for key in tree:
        if key not in allowed:
            raise UsageError(
                f"{section}: unknown {noun} {key!r}{did_you_mean(str(key), allowed)}; "
                f"valid {noun}s: {', '.join(allowed)}"
            )
