"""Values -> literals: what a document holds (``outputs.json``, ``-i`` values), typed.

:class:`ValueReader` converts plain values — numbers, strings, booleans, lists,
objects, as JSON or YAML gives them — into the literal of a declared type.
File, Dir and dataset values are paths or URIs; what a path means (and whether
it is allowed) is a subclass's business: :class:`~copilot.literals.from_files.OutputReader`
reads them from the output dir (and from the user's machine for ``copilot run``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
import os
from collections.abc import Callable
from typing import Any, TypeAlias

from flyteidl2.core import literals_pb2, types_pb2

from copilot.errors import DataError
from copilot.literals.text import (
    OutOfRange,
    parse_bool,
    parse_duration_text,
    parse_float,
    parse_int,
    parse_timestamp,
)
from copilot.literals.types import is_none_type, type_name
from copilot.modes import StructEncoding
from copilot.storage import Transfer

Literal: TypeAlias = literals_pb2.Literal
LiteralType: TypeAlias = types_pb2.LiteralType

TRIM = " \t\r\n"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- literal constructors --------------------------------------------------------


def primitive_literal(which: str, value: Any) -> Literal:
    lit = Literal()
    prim = lit.scalar.primitive
    if which == "datetime":
        prim.datetime.seconds, prim.datetime.nanos = value
    elif which == "duration":
        seconds, nanos = divmod(abs(value), 1_000_000_000)
        sign = -1 if value < 0 else 1
        prim.duration.seconds, prim.duration.nanos = sign * seconds, sign * nanos
    else:
        setattr(prim, which, value)
    return lit


def none_literal() -> Literal:
    lit = Literal()
    lit.scalar.none_type.SetInParent()
    return lit


def union_literal(inner: Literal, variant: LiteralType) -> Literal:
    lit = Literal()
    lit.scalar.union.value.CopyFrom(inner)
    lit.scalar.union.type.CopyFrom(variant)
    return lit


def primitive_from_text(text: str, simple: int) -> Literal:
    """A primitive from its (trimmed) text, as a file holding it is read."""
    if simple == types_pb2.INTEGER:
        return primitive_literal("integer", parse_int(text))
    if simple == types_pb2.FLOAT:
        return primitive_literal("float_value", parse_float(text))
    if simple == types_pb2.STRING:
        return primitive_literal("string_value", text)
    if simple == types_pb2.BOOLEAN:
        return primitive_literal("boolean", parse_bool(text))
    if simple == types_pb2.DATETIME:
        return primitive_literal("datetime", parse_timestamp(text))
    if simple == types_pb2.DURATION:
        return primitive_literal("duration", parse_duration_text(text))
    raise ValueError(f"unsupported simple type {simple}")


def optional_none(lt: LiteralType) -> LiteralType | None:
    """A union type's none variant (what makes it an Optional), if it has one."""
    return next((v for v in lt.union_type.variants if is_none_type(v)), None)


#: A data frame file's suffix -> the format the Flyte SDK records for it (``flyte
#: run`` names a ``.csv`` file's format csv, so the SDK reads it with its CSV handler).
FRAME_FORMATS = {".csv": "csv", ".parquet": "parquet"}


def dataset_literal(uri: str, lt: LiteralType, source: str = "") -> Literal:
    """A data frame stored at ``uri``: the declared format, or when the type leaves
    it open (a plain ``DataFrame``), the one ``source``'s suffix names."""
    lit = Literal()
    sd = lit.scalar.structured_dataset
    sd.uri = uri
    sd.metadata.structured_dataset_type.CopyFrom(lt.structured_dataset_type)
    if not lt.structured_dataset_type.format:
        suffix = os.path.splitext((source or uri).rstrip("/"))[1].lower()
        sd.metadata.structured_dataset_type.format = FRAME_FORMATS.get(suffix, "")
    return lit


def remote_literal(uri: str, lt: LiteralType) -> Literal:
    """A File, Dir, schema or dataset literal for data already in a store."""
    which = lt.WhichOneof("type")
    if which == "structured_dataset_type":
        return dataset_literal(uri, lt)
    lit = Literal()
    if which == "blob":
        lit.scalar.blob.uri = uri
        lit.scalar.blob.metadata.type.CopyFrom(lt.blob)
    else:
        lit.scalar.schema.uri = uri
        lit.scalar.schema.type.CopyFrom(lt.schema)
    return lit


class ValueReader:
    """Plain values into literals of declared types; File/Dir values via :meth:`path_value`."""

    def __init__(self, *, struct_encoding: str = "msgpack") -> None:
        self.struct_encoding = StructEncoding.parse(struct_encoding, "struct encoding")
        #: Uploads planned while converting (a subclass that reads files adds them).
        self.transfers: list[Transfer] = []

    def path_value(self, value: Any, lt: LiteralType, label: str) -> Literal:
        """A File, Dir or dataset given as a value: a remote URI (a subclass knows paths)."""
        if isinstance(value, str) and "://" in value:
            return remote_literal(value, lt)
        raise DataError(f"{label}: expected {type_name(lt)} as a URI, found {_short(value)}")

    def _enum(self, text: str, lt: LiteralType, label: str, where: str) -> Literal:
        values = list(lt.enum_type.values)
        if text not in values:
            raise DataError(
                f"{label}: {where}: expected one of {', '.join(values)}, found {_short(text)}"
            )
        return primitive_literal("string_value", text)

    def _first_variant(
        self, lt: LiteralType, label: str, failure: str, convert: Callable[[LiteralType], Literal]
    ) -> Literal:
        """The first non-none variant that converts; planned uploads of failed tries are dropped."""
        reasons = []
        for variant in lt.union_type.variants:
            if is_none_type(variant):
                continue
            mark = len(self.transfers)
            try:
                return union_literal(convert(variant), variant)
            except DataError as exc:
                del self.transfers[mark:]
                reasons.append(exc.message.removeprefix(label + ": "))
        raise DataError(f"{label}: {failure} (" + "; ".join(reasons) + ")")

    def _struct(self, value: dict, label: str) -> Literal:
        lit = Literal()
        if self.struct_encoding == "generic":
            try:
                lit.scalar.generic.update(_jsonable(value))
            except (ValueError, TypeError) as exc:
                raise DataError(
                    f"{label}: struct cannot be stored as generic JSON: {exc}"
                ) from None
            return lit
        import msgpack

        try:
            lit.scalar.binary.value = msgpack.packb(value, use_bin_type=True, datetime=True)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{label}: struct cannot be encoded as msgpack: {exc}") from None
        lit.scalar.binary.tag = "msgpack"
        return lit

    def from_value(self, value: Any, lt: LiteralType, label: str) -> Literal:
        which = lt.WhichOneof("type")
        if which == "union_type":
            none_variant = optional_none(lt)
            if value is None and none_variant is not None:
                return union_literal(none_literal(), none_variant)
            return self._first_variant(
                lt,
                label,
                f"expected {type_name(lt)}, found {_short(value)}",
                lambda variant: self.from_value(value, variant, label),
            )
        if which == "simple":
            return self._simple_from_value(value, lt, label)
        if which == "enum_type":
            if not isinstance(value, str):
                raise DataError(f"{label}: expected {type_name(lt)}, found {_short(value)}")
            return self._enum(value, lt, label, "value")
        if which == "collection_type":
            if not isinstance(value, list):
                raise DataError(
                    f"{label}: expected {type_name(lt)} as an array, found {_short(value)}"
                )
            lit = Literal()
            lit.collection.SetInParent()
            for i, item in enumerate(value):
                lit.collection.literals.add().CopyFrom(
                    self.from_value(item, lt.collection_type, f"{label}[{i}]")
                )
            return lit
        if which == "map_value_type":
            if not isinstance(value, dict):
                raise DataError(
                    f"{label}: expected {type_name(lt)} as an object, found {_short(value)}"
                )
            lit = Literal()
            lit.map.SetInParent()
            for key, item in value.items():
                lit.map.literals[str(key)].CopyFrom(
                    self.from_value(item, lt.map_value_type, f"{label}[{str(key)!r}]")
                )
            return lit
        if which in ("blob", "structured_dataset_type", "schema"):
            return self.path_value(value, lt, label)
        raise DataError(f"{label}: outputs of type {type_name(lt)} are not supported")

    def _simple_from_value(self, value: Any, lt: LiteralType, label: str) -> Literal:
        simple = lt.simple
        expected = type_name(lt)

        def bad(extra: str = "") -> DataError:
            return DataError(f"{label}: expected {expected}, found {_short(value)}{extra}")

        if simple == types_pb2.NONE:
            if value is None:
                return none_literal()
            raise bad()
        if simple == types_pb2.STRING:
            if isinstance(value, str):
                return primitive_literal("string_value", value)
            raise bad(" (quote it to make it a string)")
        if simple in _TEXT_PRIMITIVES:
            try:
                native = _native_primitive(value, simple)
            except ValueError as exc:  # a number out of range
                raise bad(f" ({exc})") from None
            if native is not None:
                return native
            if isinstance(value, _dt.date):  # YAML reads timestamps itself
                value = value.isoformat()
            if isinstance(value, str):
                try:
                    return primitive_from_text(value.strip(TRIM), simple)
                except OutOfRange as exc:
                    raise DataError(f"{label}: {exc}; expected {expected}") from None
                except ValueError as exc:
                    detailed = simple in (types_pb2.DATETIME, types_pb2.DURATION)
                    raise bad(f" ({exc})" if detailed else "") from None
            if simple == types_pb2.DURATION:
                raise bad(" (give integer nanoseconds or a duration string)")
            raise bad()
        if simple == types_pb2.BINARY:
            lit = Literal()
            if isinstance(value, bytes):
                lit.scalar.binary.value = value
                return lit
            if isinstance(value, str):
                try:
                    lit.scalar.binary.value = base64.b64decode(value, validate=True)
                    return lit
                except (binascii.Error, ValueError):
                    raise bad(" (binary values are base64 text)") from None
            raise bad()
        if simple == types_pb2.STRUCT:
            if isinstance(value, dict):
                return self._struct(value, label)
            raise bad()
        if simple == types_pb2.ERROR:
            if isinstance(value, str):
                lit = Literal()
                lit.scalar.error.message = value
                return lit
            raise bad()
        raise bad()


# Primitives that may come as text in a document (a str is parsed as its file would be).
_TEXT_PRIMITIVES = frozenset(
    {types_pb2.INTEGER, types_pb2.FLOAT, types_pb2.BOOLEAN, types_pb2.DATETIME, types_pb2.DURATION}
)


def _native_primitive(value: Any, simple: int) -> Literal | None:
    """A JSON/YAML number or boolean already of the declared kind (bools are not numbers)."""
    if isinstance(value, bool):
        return primitive_literal("boolean", value) if simple == types_pb2.BOOLEAN else None
    if simple == types_pb2.INTEGER and isinstance(value, int):
        return primitive_literal("integer", parse_int(str(value)))
    if simple == types_pb2.INTEGER and isinstance(value, float) and value.is_integer():
        return primitive_literal("integer", parse_int(str(int(value))))
    if simple == types_pb2.FLOAT and isinstance(value, int | float):
        return primitive_literal("float_value", float(value))
    if simple == types_pb2.DURATION and isinstance(value, int):
        return primitive_literal("duration", value)
    return None


def parse_document(data: bytes, path: str, label: str) -> Any:
    """JSON first (exact numbers), then YAML; one clear error if it is neither."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{label}: {path}: expected a JSON or YAML document, found a byte that is "
            f"not UTF-8 at offset {exc.start}"
        ) from None
    try:
        return json.loads(text)
    except ValueError:
        pass
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        detail = str(exc).splitlines()[0] if str(exc) else "invalid"
        raise DataError(
            f"{label}: {path}: expected a JSON or YAML document, found neither ({detail})"
        ) from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, _dt.datetime | _dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def parse_struct(data: bytes, path: str, label: str) -> dict:
    """A struct file's object: JSON or YAML, else msgpack (as the SDKs write one)."""
    try:
        value = parse_document(data, path, label)
    except DataError:
        value = None
        try:
            import msgpack

            value = msgpack.unpackb(data, raw=False, strict_map_key=False)
        except Exception:
            raise DataError(
                f"{label}: {path}: expected a struct as a JSON, YAML or msgpack object, "
                "found neither"
            ) from None
    if not isinstance(value, dict):
        raise DataError(
            f"{label}: {path}: expected a struct (a JSON or YAML object), "
            f"found {type(value).__name__}"
        )
    return value


def document_holding(data: bytes, path: str, label: str, want: type) -> Any:
    """A JSON or YAML document's value, refused unless it is a ``want`` (list or dict)."""
    value = parse_document(data, path, label)
    if not isinstance(value, want):
        noun = "an array" if want is list else "an object"
        raise DataError(
            f"{label}: {path}: expected a JSON or YAML document holding {noun}, "
            f"found {type(value).__name__}"
        )
    return value
