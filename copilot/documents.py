"""``copilot inspect``: show any Flyte document a task reads or writes.

The kind is detected by parsing the bytes as each candidate and keeping the
first that parses *cleanly* (no unrecognised field anywhere, no empty value
where one is required); the file name breaks ties (``error.pb`` is an error
document).  ``--as`` skips the guessing.
"""

from __future__ import annotations

from typing import Any

from flyteidl2.core import execution_pb2, interface_pb2, literals_pb2
from google.protobuf import unknown_fields
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from copilot.errors import DataError

KINDS: dict[str, type[Message]] = {
    "LiteralMap": literals_pb2.LiteralMap,
    "ErrorDocument": execution_pb2.ErrorDocument,
    "TypedInterface": interface_pb2.TypedInterface,
    "VariableMap": interface_pb2.VariableMap,
    "Literal": literals_pb2.Literal,
}


def _repeated(fd: FieldDescriptor) -> bool:
    # protobuf 5.x has `label`; 6.x+ has `is_repeated` (and drops `label` in upb).
    flag = getattr(fd, "is_repeated", None)
    if flag is not None:
        return bool(flag)
    return fd.label == FieldDescriptor.LABEL_REPEATED


def _clean(msg: Message) -> bool:
    """No unknown fields anywhere in the message tree."""
    if len(unknown_fields.UnknownFieldSet(msg)):
        return False
    for fd, value in msg.ListFields():
        if fd.message_type is None:
            continue
        if fd.message_type.GetOptions().map_entry:
            value_fd = fd.message_type.fields_by_name["value"]
            if value_fd.message_type is not None and not all(_clean(v) for v in value.values()):
                return False
        elif _repeated(fd):
            if not all(_clean(v) for v in value):
                return False
        elif not _clean(value):
            return False
    return True


def _plausible(kind: str, msg: Any) -> bool:
    """Reject parses that are clean but meaningless (an empty value where one is required)."""
    if kind == "LiteralMap":
        return all(v.WhichOneof("value") for v in msg.literals.values())
    if kind == "Literal":
        return msg.WhichOneof("value") is not None
    if kind == "ErrorDocument":
        return bool(msg.error.code or msg.error.message)
    if kind == "VariableMap":
        return all(e.key and e.value.type.WhichOneof("type") for e in msg.variables)
    if kind == "TypedInterface":
        entries = list(msg.inputs.variables) + list(msg.outputs.variables)
        return all(e.key and e.value.type.WhichOneof("type") for e in entries)
    return True


def _order(name: str) -> list[str]:
    base = name.rsplit("/", 1)[-1].lower()
    order = list(KINDS)
    if "error" in base:
        order.remove("ErrorDocument")
        order.insert(0, "ErrorDocument")
    elif "interface" in base:
        order.remove("TypedInterface")
        order.insert(0, "TypedInterface")
    return order


def detect(data: bytes, name: str = "") -> tuple[str, Message]:
    """The document's kind and message, or a DataError naming what it is not."""
    for kind in _order(name):
        msg = KINDS[kind]()
        try:
            msg.ParseFromString(data)
        except (DecodeError, RecursionError, ValueError):
            continue
        if _clean(msg) and _plausible(kind, msg):
            return kind, msg
    raise DataError(
        f"{name or 'input'}: not a Flyte document (tried {', '.join(KINDS)}; {len(data)} bytes)"
    )


def parse_as(data: bytes, kind: str, name: str = "") -> Message:
    from copilot.protobuf import parse_message

    return parse_message(KINDS[kind], data, name or "input")


def render(kind: str, msg: Any, *, raw: bool = False) -> Any:
    """Plain data for JSON/YAML: values for literals, type names for interfaces."""
    if raw:
        from google.protobuf.json_format import MessageToDict

        return MessageToDict(msg, preserving_proto_field_name=True)
    from copilot.interface import to_yaml_doc, type_spec
    from copilot.literals.to_files import python_value

    if kind == "LiteralMap":
        return {name: python_value(lit) for name, lit in sorted(msg.literals.items())}
    if kind == "Literal":
        return python_value(msg)
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
