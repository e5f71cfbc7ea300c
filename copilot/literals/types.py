"""Flyte literal types: readable names, and whether a literal fits a declared type.

Names follow what users write in Python (``int``, ``list[File]``,
``Optional[str]``) so error messages read like the task's own signature.
"""

from __future__ import annotations

import json
import re

from flyteidl2.core import literals_pb2, types_pb2

SIMPLE_NAMES = {
    types_pb2.NONE: "none",
    types_pb2.INTEGER: "int",
    types_pb2.FLOAT: "float",
    types_pb2.STRING: "str",
    types_pb2.BOOLEAN: "bool",
    types_pb2.DATETIME: "datetime",
    types_pb2.DURATION: "timedelta",
    types_pb2.BINARY: "bytes",
    types_pb2.ERROR: "error",
    types_pb2.STRUCT: "struct",
}

_PRIMITIVE_FOR_SIMPLE = {
    types_pb2.INTEGER: "integer",
    types_pb2.FLOAT: "float_value",
    types_pb2.STRING: "string_value",
    types_pb2.BOOLEAN: "boolean",
    types_pb2.DATETIME: "datetime",
    types_pb2.DURATION: "duration",
}

_PRIMITIVE_NAMES = {
    "integer": "int",
    "float_value": "float",
    "string_value": "str",
    "boolean": "bool",
    "datetime": "datetime",
    "duration": "timedelta",
}

SINGLE = types_pb2.BlobType.SINGLE
MULTIPART = types_pb2.BlobType.MULTIPART


_PLAIN_ENUM_VALUE = re.compile(r"^[^\s,\[\]\"'{}:]+(?: [^\s,\[\]\"'{}:]+)*\Z")


def _enum_value(value: str) -> str:
    """An enum value as written inside ``enum[...]``: quoted (JSON) unless plain."""
    return value if _PLAIN_ENUM_VALUE.match(value) else json.dumps(value, ensure_ascii=False)


def type_name(lt: types_pb2.LiteralType) -> str:
    """A Python-like spelling of a literal type."""
    which = lt.WhichOneof("type")
    if which is None:
        return "any"
    if which == "simple":
        return SIMPLE_NAMES.get(lt.simple, f"simple({lt.simple})")
    if which == "blob":
        base = "Dir" if lt.blob.dimensionality == MULTIPART else "File"
        return f"{base}[{lt.blob.format}]" if lt.blob.format else base
    if which == "collection_type":
        return f"list[{type_name(lt.collection_type)}]"
    if which == "map_value_type":
        return f"dict[str, {type_name(lt.map_value_type)}]"
    if which == "enum_type":
        return "enum[" + ", ".join(_enum_value(v) for v in lt.enum_type.values) + "]"
    if which == "union_type":
        variants = list(lt.union_type.variants)
        non_none = [v for v in variants if not is_none_type(v)]
        if len(non_none) == 1 and len(variants) == 2:
            return f"Optional[{type_name(non_none[0])}]"
        return "Union[" + ", ".join(type_name(v) for v in variants) + "]"
    if which == "structured_dataset_type":
        fmt = lt.structured_dataset_type.format
        return f"StructuredDataset[{fmt}]" if fmt else "StructuredDataset"
    if which == "schema":
        return "Schema"
    return which


def is_none_type(lt: types_pb2.LiteralType) -> bool:
    return lt.WhichOneof("type") == "simple" and lt.simple == types_pb2.NONE


def literal_kind(lit: literals_pb2.Literal) -> str:
    """What a literal holds, in the same vocabulary as :func:`type_name`."""
    which = lit.WhichOneof("value")
    if which == "collection":
        return f"a list of {len(lit.collection.literals)}"
    if which == "map":
        return f"a map of {len(lit.map.literals)}"
    if which == "offloaded_metadata":
        return "an offloaded literal"
    if which is None:
        return "an empty literal"
    scalar = lit.scalar
    kind = scalar.WhichOneof("value")
    if kind == "primitive":
        p = scalar.primitive.WhichOneof("value")
        return _PRIMITIVE_NAMES.get(p or "", "an empty primitive")
    if kind == "blob":
        return "Dir" if scalar.blob.metadata.type.dimensionality == MULTIPART else "File"
    if kind == "union":
        return literal_kind(scalar.union.value)
    return {
        "binary": "bytes",
        "schema": "Schema",
        "none_type": "none",
        "error": "error",
        "generic": "struct",
        "structured_dataset": "StructuredDataset",
        None: "an empty scalar",
    }.get(kind, kind or "unknown")


_SIMPLE_FOR_PRIMITIVE = {v: k for k, v in _PRIMITIVE_FOR_SIMPLE.items()}


def infer_type(lit: literals_pb2.Literal) -> types_pb2.LiteralType:
    """The type a literal was written with, as far as the literal records it (a
    union gives the variant it holds; an empty list or map holds no element type,
    taken as ``none``)."""
    which = lit.WhichOneof("value")
    if which == "collection":
        items = lit.collection.literals
        inner = infer_type(items[0]) if items else types_pb2.LiteralType(simple=types_pb2.NONE)
        return types_pb2.LiteralType(collection_type=inner)
    if which == "map":
        values = list(lit.map.literals.values())
        inner = infer_type(values[0]) if values else types_pb2.LiteralType(simple=types_pb2.NONE)
        return types_pb2.LiteralType(map_value_type=inner)
    if which == "offloaded_metadata":
        return lit.offloaded_metadata.inferred_type
    scalar = lit.scalar
    kind = scalar.WhichOneof("value")
    if kind == "primitive":
        simple = _SIMPLE_FOR_PRIMITIVE.get(scalar.primitive.WhichOneof("value") or "")
        return types_pb2.LiteralType(simple=simple if simple is not None else types_pb2.NONE)
    if kind == "blob":
        return types_pb2.LiteralType(blob=scalar.blob.metadata.type)
    if kind == "union":
        return (
            scalar.union.type if scalar.union.HasField("type") else infer_type(scalar.union.value)
        )
    if kind == "schema":
        return types_pb2.LiteralType(schema=scalar.schema.type)
    if kind == "structured_dataset":
        sd_type = scalar.structured_dataset.metadata.structured_dataset_type
        return types_pb2.LiteralType(structured_dataset_type=sd_type)
    simple = {
        "binary": types_pb2.BINARY,
        "generic": types_pb2.STRUCT,
        "error": types_pb2.ERROR,
    }.get(kind or "", types_pb2.NONE)
    return types_pb2.LiteralType(simple=simple)


def mismatch(lit: literals_pb2.Literal, lt: types_pb2.LiteralType, label: str) -> str | None:
    """Why ``lit`` does not fit ``lt`` (naming the innermost place), or None if it does."""
    which = lt.WhichOneof("type")
    if which is None:
        return None
    kind = lit.WhichOneof("value")
    scalar_kind = lit.scalar.WhichOneof("value") if kind == "scalar" else None

    def wrong() -> str:
        return f"{label}: expected {type_name(lt)}, found {literal_kind(lit)}"

    if scalar_kind == "union" and which != "union_type":
        return mismatch(lit.scalar.union.value, lt, label)

    if which == "union_type":
        inner = lit.scalar.union.value if scalar_kind == "union" else lit
        for variant in lt.union_type.variants:
            if mismatch(inner, variant, label) is None:
                return None
        return wrong()
    if which == "collection_type":
        if kind != "collection":
            return wrong()
        for i, item in enumerate(lit.collection.literals):
            reason = mismatch(item, lt.collection_type, f"{label}[{i}]")
            if reason:
                return reason
        return None
    if which == "map_value_type":
        if kind != "map":
            return wrong()
        for key in sorted(lit.map.literals):
            reason = mismatch(lit.map.literals[key], lt.map_value_type, f"{label}[{key!r}]")
            if reason:
                return reason
        return None
    if kind != "scalar":
        return wrong()
    scalar = lit.scalar
    if which == "simple":
        simple = lt.simple
        if simple == types_pb2.NONE:
            return None if scalar_kind == "none_type" else wrong()
        if simple in _PRIMITIVE_FOR_SIMPLE:
            ok = scalar_kind == "primitive" and (
                scalar.primitive.WhichOneof("value") == _PRIMITIVE_FOR_SIMPLE[simple]
            )
            return None if ok else wrong()
        if simple == types_pb2.BINARY:
            return None if scalar_kind == "binary" else wrong()
        if simple == types_pb2.ERROR:
            return None if scalar_kind == "error" else wrong()
        if simple == types_pb2.STRUCT:
            return None if scalar_kind in ("generic", "binary") else wrong()
        return None
    if which == "blob":
        if scalar_kind != "blob":
            return wrong()
        if scalar.blob.metadata.type.dimensionality != lt.blob.dimensionality:
            return wrong()
        return None
    if which == "enum_type":
        ok = scalar_kind == "primitive" and scalar.primitive.WhichOneof("value") == "string_value"
        if not ok:
            return wrong()
        value = scalar.primitive.string_value
        if value not in lt.enum_type.values:
            return f"{label}: expected one of {', '.join(lt.enum_type.values)}, found {value!r}"
        return None
    if which in ("structured_dataset_type", "schema"):
        return None if scalar_kind in ("structured_dataset", "schema") else wrong()
    return None
