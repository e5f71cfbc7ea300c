"""Render any Flyte document as plain data (``copilot inspect``, ``validate``):
values for literals with each blob's hash, type names for interfaces.  Which
kind a document is comes from :mod:`copilot.detect`."""

from __future__ import annotations

from typing import Any

from flyteidl2.core import execution_pb2

from copilot.errors import DataError


def render(kind: str, msg: Any, *, raw: bool = False) -> Any:
    """Plain data for JSON/YAML: values for literals, type names for interfaces."""
    if raw:
        from google.protobuf.json_format import MessageToDict

        return MessageToDict(msg, preserving_proto_field_name=True)
    from copilot.interface import to_yaml_doc, type_spec
    from copilot.literals.to_files import python_value

    if kind == "LiteralMap":
        return {
            name: _with_hashes(python_value(lit), _hashes(lit))
            for name, lit in sorted(msg.literals.items())
        }
    if kind == "Literal":
        return _with_hashes(python_value(msg), _hashes(msg))
    if kind == "ErrorDocument":
        err = msg.error
        return {
            "code": err.code,
            "message": err.message,
            "kind": execution_pb2.ContainerError.Kind.Name(err.kind),
            "origin": execution_pb2.ExecutionError.ErrorKind.Name(err.origin),
        }
    if kind == "TypedInterface":
        return to_yaml_doc(msg)
    if kind == "VariableMap":
        return {e.key: type_spec(e.value.type) for e in msg.variables}
    raise DataError(f"cannot render {kind}")


def _hashes(lit: Any) -> dict[str, str]:
    """Blob and dataset URI -> the content hash its literal carries (copilot.literals.digests)."""
    from copilot.literals.walk import walk

    found: dict[str, str] = {}

    def visit(node: Any, label: str, state: None) -> None:
        if node.hash and node.WhichOneof("value") == "scalar":
            kind = node.scalar.WhichOneof("value")
            if kind in ("blob", "structured_dataset"):
                found[getattr(node.scalar, kind).uri] = node.hash
        return None

    walk(lit, "", visit, None)
    return found


def substitute(value: Any, table: dict[str, Any]) -> Any:
    """A rendered value with every string found in ``table`` replaced by its entry
    (blob URIs shown with their hash, or as the local paths they came from)."""
    if not table:
        return value
    if isinstance(value, str):
        return table.get(value, value)
    if isinstance(value, list):
        return [substitute(v, table) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, table) for k, v in value.items()}
    return value


def _with_hashes(value: Any, hashes: dict[str, str]) -> Any:
    """A rendered value with each hashed blob shown as ``{uri, hash}``."""
    return substitute(value, {uri: {"uri": uri, "hash": h} for uri, h in hashes.items()})
