"""Which Flyte document a file is (``copilot inspect``, ``interface decode``).

The kind is detected from structural evidence, not from the first message that
happens to parse: a candidate must parse *cleanly* (no unrecognised field
anywhere, no empty value where one is required), and among those the ones whose
text fields hold text (a key or message made of control bytes is an embedded
message read as a string) and that re-encode to the same length (a singular
field given twice was merged) win.  The file name breaks remaining ties
(``error.pb`` is an error document), and the kinds still plausible are reported
so that ``--as`` can settle it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
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


def _tree(msg: Message) -> Iterator[Message | str]:
    """Every message in the tree (``msg`` first) and every string it holds (map keys
    included): the one walk that both checks in :func:`detect` read."""
    yield msg
    for fd, value in msg.ListFields():
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            yield from (k for k in value if isinstance(k, str))
            value_fd = fd.message_type.fields_by_name["value"]
            items = list(value.values())
            if value_fd.message_type is None:
                yield from (v for v in items if isinstance(v, str))
                continue
        elif fd.message_type is None:
            if fd.type == FieldDescriptor.TYPE_STRING:
                yield from value if _repeated(fd) else [value]
            continue
        else:
            items = list(value) if _repeated(fd) else [value]
        for item in items:
            yield from _tree(item)


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


def _order(name: str, kinds: tuple[str, ...] = tuple(KINDS)) -> list[str]:
    """``kinds`` with the one the file name suggests first."""
    base = name.rsplit("/", 1)[-1].lower()
    order = list(kinds)
    hints = (
        ("error", ("ErrorDocument",)),
        ("interface", ("TypedInterface", "VariableMap")),
        ("put", ("LiteralMap",)),  # inputs.pb, outputs.pb
    )
    for word, preferred in hints:
        if word in base:
            first = [k for k in preferred if k in order]
            order = first + [k for k in order if k not in first]
            break
    return order


def _text_ok(value: str) -> bool:
    return not any(ord(c) < 0x20 and c not in "\n\r\t" for c in value)


def _evidence(msg: Message) -> tuple[bool, bool]:
    """(clean: no unknown field anywhere, texty: every string is text — control bytes
    mean bytes of an embedded message were read as a string)."""
    clean = texty = True
    for node in _tree(msg):
        if isinstance(node, str):
            texty = texty and _text_ok(node)
        elif clean and len(unknown_fields.UnknownFieldSet(node)):
            clean = False
    return clean, texty


@dataclass(frozen=True)
class Detected:
    """A detected document: its kind, the message, and any other kinds that fit
    equally well (to mention ``--as``)."""

    kind: str
    message: Message
    also: tuple[str, ...] = ()


def detect(data: bytes, name: str = "", among: tuple[str, ...] | None = None) -> Detected:
    """The document's kind and message, or a DataError naming what it is not.

    ``among`` limits the kinds considered, in order of preference when the bytes
    fit several equally (``interface decode`` takes only what pods carry).
    """
    kinds = _order(name, among or tuple(KINDS))
    fits: list[tuple[tuple[bool, bool], str, Message]] = []
    for kind in kinds:
        msg = KINDS[kind]()
        try:
            msg.ParseFromString(data)
        except (DecodeError, RecursionError, ValueError):
            continue
        clean, texty = _evidence(msg)
        if clean and _plausible(kind, msg):
            evidence = (texty, len(msg.SerializeToString()) == len(data))
            fits.append((evidence, kind, msg))
    if not fits:
        raise DataError(
            f"{name or 'input'}: not a Flyte document (tried {', '.join(kinds)}; {len(data)} bytes)"
        )
    best = max(evidence for evidence, _, _ in fits)
    winners = [(kind, msg) for evidence, kind, msg in fits if evidence == best]
    kind, msg = winners[0]
    return Detected(kind, msg, tuple(k for k, _ in winners[1:]))


def parse_as(data: bytes, kind: str, name: str = "") -> Message:
    """The document read as ``kind``, refused when it is not one: bytes of another
    kind often parse as any message, into fields that mean nothing (``--as``
    settles a tie between kinds that fit, it does not make one fit)."""
    from copilot.protobuf import parse_message

    msg = parse_message(KINDS[kind], data, name or "input")
    clean, texty = _evidence(msg)
    if not (clean and texty and _plausible(kind, msg)):
        try:
            found = f"; it reads as a {detect(data, name).kind}"
        except DataError:
            found = ""
        raise DataError(
            f"{name or 'input'}: not a {kind} (its fields do not fit one{found}); "
            "leave out --as to have the kind detected"
        )
    return msg
