"""Interfaces written by hand: YAML with the type names users write.

So another orchestrator (or a person) can drive copilot without protobuf
tooling::

    inputs:
      n: int
      reads: list[File[fastq]]
      mode: {enum: [fast, exact]}
      config: struct
      threshold: {type: Optional[float], description: cut-off}
    outputs:
      report: File[csv]
      counts: dict[str, int]

Type names: ``int float str bool datetime timedelta bytes none struct File Dir
list[T] dict[str, T] Optional[T] Union[A, B] StructuredDataset`` with an
optional format in brackets for blobs and datasets (``File[csv]``), and
``{enum: [a, b]}``.  :func:`type_spec` turns a type back into this syntax.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from flyteidl2.core import interface_pb2, types_pb2

from copilot.config_values import check_section_keys
from copilot.errors import UsageError
from copilot.literals.types import MULTIPART, SINGLE, type_name

_SIMPLE = {
    "int": types_pb2.INTEGER,
    "integer": types_pb2.INTEGER,
    "float": types_pb2.FLOAT,
    "str": types_pb2.STRING,
    "string": types_pb2.STRING,
    "bool": types_pb2.BOOLEAN,
    "boolean": types_pb2.BOOLEAN,
    "datetime": types_pb2.DATETIME,
    "timedelta": types_pb2.DURATION,
    "duration": types_pb2.DURATION,
    "bytes": types_pb2.BINARY,
    "binary": types_pb2.BINARY,
    "none": types_pb2.NONE,
    "None": types_pb2.NONE,
    "struct": types_pb2.STRUCT,
    "dict": types_pb2.STRUCT,
    "dataclass": types_pb2.STRUCT,
    "error": types_pb2.ERROR,
}


def _split_args(text: str, where: str) -> list[str]:
    """Split ``A, B[C, D], E`` at top-level commas."""
    parts, depth, start = [], 0, 0
    quote = ""
    escaped = False
    for i, ch in enumerate(text):
        if quote:
            # Inside a quoted enum value: only its closing quote matters.
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
            continue
        if ch in "\"'":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise UsageError(f"{where}: unbalanced ']' in {text!r}")
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    if depth:
        raise UsageError(f"{where}: unbalanced '[' in {text!r}")
    if quote:
        raise UsageError(f"{where}: unclosed quote in {text!r}")
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def _unquote(value: str, where: str) -> str:
    """An enum value: plain text, or a quoted string (JSON double or YAML single quotes)."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return str(json.loads(value))
        except ValueError:
            raise UsageError(f"{where}: bad quoted enum value {value}") from None
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    return value


def parse_type(spec: Any, where: str = "type") -> types_pb2.LiteralType:
    """A LiteralType from a type name string or a ``{enum: [...]}`` / ``{type: ...}`` mapping."""
    if isinstance(spec, dict):
        if "enum" in spec:
            values = spec["enum"]
            if not isinstance(values, list) or not values:
                raise UsageError(f"{where}: enum needs a list of values, found {values!r}")
            return types_pb2.LiteralType(
                enum_type=types_pb2.EnumType(values=[str(v) for v in values])
            )
        if "type" in spec:
            lt = parse_type(spec["type"], where)
            fmt = spec.get("format")
            if fmt is not None:
                which = lt.WhichOneof("type")
                if which == "blob":
                    lt.blob.format = str(fmt)
                elif which == "structured_dataset_type":
                    lt.structured_dataset_type.format = str(fmt)
                else:
                    raise UsageError(f"{where}: only File, Dir and datasets take a format")
            return lt
        raise UsageError(f"{where}: expected a type name, {{enum: [...]}} or {{type: ...}}")
    if not isinstance(spec, str) or not spec.strip():
        raise UsageError(f"{where}: expected a type name, found {spec!r}")
    text = spec.strip()
    if text in _SIMPLE:
        return types_pb2.LiteralType(simple=_SIMPLE[text])
    head, bracket, rest = text.partition("[")
    head = head.strip()
    args: list[str] = []
    if bracket:
        if not rest.endswith("]"):
            raise UsageError(f"{where}: {text!r} does not end with ']'")
        args = _split_args(rest[:-1], where)
    lower = head.lower()
    if lower in ("file", "flytefile", "blob"):
        return types_pb2.LiteralType(
            blob=types_pb2.BlobType(format=args[0] if args else "", dimensionality=SINGLE)
        )
    if lower in ("dir", "directory", "flytedirectory"):
        return types_pb2.LiteralType(
            blob=types_pb2.BlobType(format=args[0] if args else "", dimensionality=MULTIPART)
        )
    if lower in ("structureddataset", "dataframe", "dataset"):
        return types_pb2.LiteralType(
            structured_dataset_type=types_pb2.StructuredDatasetType(format=args[0] if args else "")
        )
    if lower == "enum" and args:
        return types_pb2.LiteralType(
            enum_type=types_pb2.EnumType(values=[_unquote(a, where) for a in args])
        )
    if lower in ("schema",):
        return types_pb2.LiteralType(schema=types_pb2.SchemaType())
    if lower in ("list", "typing.list") and len(args) == 1:
        return types_pb2.LiteralType(collection_type=parse_type(args[0], where))
    if lower in ("dict", "typing.dict") and len(args) == 2:
        if args[0] not in ("str", "string"):
            raise UsageError(f"{where}: dict keys must be str, found {args[0]!r}")
        return types_pb2.LiteralType(map_value_type=parse_type(args[1], where))
    if lower in ("optional", "typing.optional") and len(args) == 1:
        return types_pb2.LiteralType(
            union_type=types_pb2.UnionType(
                variants=[parse_type(args[0], where), types_pb2.LiteralType(simple=types_pb2.NONE)]
            )
        )
    if lower in ("union", "typing.union") and len(args) >= 2:
        return types_pb2.LiteralType(
            union_type=types_pb2.UnionType(variants=[parse_type(a, where) for a in args])
        )
    raise UsageError(
        f"{where}: unknown type {text!r} (use int, float, str, bool, datetime, timedelta, "
        "bytes, struct, File, Dir, list[T], dict[str, T], Optional[T], Union[A, B], "
        "StructuredDataset or {enum: [...]})"
    )


def type_spec(lt: types_pb2.LiteralType) -> Any:
    """The inverse of :func:`parse_type`: a type name, or ``{enum: [...]}`` for an enum."""
    if lt.WhichOneof("type") == "enum_type":
        return {"enum": list(lt.enum_type.values)}
    return type_name(lt)


#: The keys of a variable written as a mapping with ``type``.
SPEC_KEYS = ("type", "format", "description", "default")


def variable_map(
    section: Any, where: str, defaults: dict[str, Any] | None = None
) -> interface_pb2.VariableMap:
    """``{name: type}`` or ``{name: {type:, format:, description:, default:}}`` as a VariableMap.

    Defaults are not part of a VariableMap; they are collected into ``defaults``.
    """
    if section is None:
        return interface_pb2.VariableMap()
    if not isinstance(section, dict):
        raise UsageError(f"{where}: expected a mapping of name -> type")
    entries = []
    for name, spec in section.items():
        description = ""
        if isinstance(spec, dict) and "type" in spec:
            # A misspelt key (``defualt``) would be dropped silently.
            check_section_keys(f"{where}.{name}", spec, SPEC_KEYS)
            description = str(spec.get("description") or "")
            if "default" in spec and defaults is not None:
                defaults[str(name)] = spec["default"]
            spec = {k: v for k, v in spec.items() if k in ("type", "format")}
        lt = parse_type(spec, f"{where}.{name}")
        entries.append(
            interface_pb2.VariableEntry(
                key=str(name), value=interface_pb2.Variable(type=lt, description=description)
            )
        )
    return interface_pb2.VariableMap(variables=entries)


def typed_interface(doc: Any, where: str = "interface") -> interface_pb2.TypedInterface:
    """A TypedInterface from a parsed YAML document with ``inputs`` and ``outputs``."""
    if not isinstance(doc, dict):
        raise UsageError(f"{where}: expected a mapping with inputs and outputs")
    return interface_pb2.TypedInterface(
        inputs=variable_map(doc.get("inputs"), f"{where}: inputs"),
        outputs=variable_map(doc.get("outputs"), f"{where}: outputs"),
    )


def load_interface_file(path: str) -> interface_pb2.TypedInterface:
    """Read an interface YAML (or JSON) file, or a task file's (a Flyte SDK task's:
    :func:`copilot.task.interface_of`)."""
    from copilot.yamlfile import load_yaml

    return typed_interface(load_yaml(path, "interface file"), f"interface file {path}")


def to_yaml_doc(iface: interface_pb2.TypedInterface) -> dict[str, Any]:
    """An interface in the YAML syntax above."""

    def section(vm: interface_pb2.VariableMap) -> dict[str, Any]:
        return {e.key: type_spec(e.value.type) for e in vm.variables}

    return {"inputs": section(iface.inputs), "outputs": section(iface.outputs)}


def encode(message: Any) -> str:
    """Base64 of a serialized message, as Flyte's flags take it."""
    return base64.b64encode(message.SerializeToString(deterministic=True)).decode("ascii")


def decode_interface(data: bytes, name: str) -> tuple[Any, dict[str, Any]]:
    """An interface in the YAML syntax from serialized bytes: a TypedInterface, a
    VariableMap, or an inputs LiteralMap (the types its literals carry).  Returns
    the detection (kind, and others that fit as well) and the document."""
    from copilot.detect import detect
    from copilot.literals.types import infer_type

    found = detect(data, name, among=("TypedInterface", "VariableMap", "LiteralMap"))
    msg = found.message
    if found.kind == "LiteralMap":
        return found, {k: type_spec(infer_type(v)) for k, v in msg.literals.items()}
    if found.kind == "VariableMap":
        return found, {e.key: type_spec(e.value.type) for e in msg.variables}
    return found, to_yaml_doc(msg)
