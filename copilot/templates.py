"""Flyte's command templates, rendered the way Flyte's propeller renders them.

Propeller substitutes ``{{.inputs.x}}`` and a few run-wide names in a raw
container's command and arguments before the pod starts (flyteplugins
``pluginmachinery/core/template``).  ``copilot run`` renders the same forms
with the same rules, so a task that works here renders the same under Flyte:

- ``.`` or ``$`` before the name, any letter case, spaces inside the braces:
  ``{{.inputs.x}}``, ``{{ $Inputs.x }}``;
- input values from the *stored* inputs, before download: a File or Dir is its
  URI in the store (not a local path), a list is ``[a,b]``, a msgpack struct is
  Go's ``%v`` of the decoded value (``map[a:1 b:x]``);
- what Flyte cannot render (a map, a union or Optional, none, a protobuf
  Struct, a structured dataset) is an error here too, rather than a surprise
  after deployment;
- a ``{{.Name}}`` or ``{{$Name}}`` that Flyte does not know is an error naming it.

One deliberate difference: Flyte renders a duration as protobuf text
(``seconds:3723``, a format Go keeps unstable on purpose); here it is Go's
duration syntax (``1h2m3s``), with a warning that Flyte's differs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from flyteidl2.core import literals_pb2

from copilot.durations import format_duration_ns
from copilot.errors import UsageError
from copilot.literals.text import (
    duration_ns,
    format_float,
    format_timestamp,
)

log = logging.getLogger("copilot")

#: Anything that looks like a Flyte template: ``{{`` then ``.`` or ``$``.
_ANY = re.compile(r"\{\{\s*[.$][^{}]*\}\}")
#: ``{{.Inputs.x}}`` exactly as propeller matches it.
_INPUT = re.compile(r"\{\{\s*[.$]inputs\.([^}\s]+)\s*\}\}", re.IGNORECASE)
#: ``{{.Name}}``: the name, lower-cased, is looked up in the run's values.
_NAMED = re.compile(r"\{\{\s*[.$]([A-Za-z]+)\s*\}\}")

#: The run-wide names Flyte renders (lower case), for messages.
RUN_NAMES = (
    "Input",
    "InputPrefix",
    "OutputPrefix",
    "RawOutputDataPrefix",
    "PerRetryUniqueKey",
    "TaskTemplatePath",
    "PrevCheckpointPrefix",
    "CheckpointOutputPrefix",
    "Namespace",
)

_NOT_ALNUM = re.compile(r"[^a-zA-Z0-9_]+")
_LEADING_NON_ALPHA = re.compile(r"^[^a-zA-Z_]+")


def retry_key(name: str) -> str:
    """``{{.PerRetryUniqueKey}}`` from a unique name, sanitized as Flyte does."""
    return _NOT_ALNUM.sub("_", _LEADING_NON_ALPHA.sub("a", name))


class TemplateError(UsageError):
    """A template that cannot be rendered: unknown, malformed, or a value Flyte cannot show."""


def go_float(value: float) -> str:
    """Go's ``%v`` of a float64: shortest digits, an exponent below 1e-4 or from 1e6."""
    if value != value or value in (float("inf"), float("-inf")):
        return format_float(value)  # NaN, +Inf, -Inf: the same words in Go
    if value == 0:
        return "-0" if str(value).startswith("-") else "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    point = len(digits) + exponent  # where the decimal point falls after the digits
    exp10 = point - 1
    if -4 <= exp10 < 6:
        return format_float(value)
    text = "".join(map(str, digits))
    mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
    return f"{'-' if sign else ''}{mantissa}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"


def _go_time(value: Any) -> str:
    """Go's ``time.Time`` ``%v`` in UTC: ``2024-01-02 03:04:05.5 +0000 UTC``."""
    seconds, nanos = value.seconds, value.nanoseconds
    text = format_timestamp(seconds, nanos)[:-1].replace("T", " ")
    return text + " +0000 UTC"


def go_value(value: Any) -> str:
    """Go's ``%v`` of a value decoded from msgpack (what Flyte shows for a struct)."""
    import msgpack

    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return "[" + " ".join(str(b) for b in value) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    if isinstance(value, dict):
        # fmt prints map keys sorted: numbers by value, strings by bytes.
        def order(key: Any) -> tuple[int, Any]:
            if isinstance(key, bool):
                return (0, key)
            if isinstance(key, int | float):
                return (1, key)
            return (2, go_value(key))

        items = sorted(value.items(), key=lambda kv: order(kv[0]))
        return "map[" + " ".join(f"{go_value(k)}:{go_value(v)}" for k, v in items) + "]"
    if isinstance(value, msgpack.Timestamp):
        return _go_time(value)
    return str(value)


def _primitive(p: literals_pb2.Primitive, label: str) -> str:
    which = p.WhichOneof("value")
    if which == "integer":
        return str(p.integer)
    if which == "float_value":
        return go_float(p.float_value)
    if which == "string_value":
        return p.string_value
    if which == "boolean":
        return "true" if p.boolean else "false"
    if which == "datetime":
        return format_timestamp(p.datetime.seconds, p.datetime.nanos)
    if which == "duration":
        log.warning(
            "%s: Flyte renders a duration in a command as protobuf text (seconds:N), "
            "not as %s; read the input file for the same text everywhere",
            label,
            format_duration_ns(duration_ns(p.duration.seconds, p.duration.nanos)),
        )
        return format_duration_ns(duration_ns(p.duration.seconds, p.duration.nanos))
    raise TemplateError(f"{label}: a primitive with no value cannot be rendered in a command")


def _cannot(label: str, what: str) -> TemplateError:
    return TemplateError(
        f"{label}: Flyte cannot render {what} in a command (propeller fails the task); "
        "read it from the input directory instead"
    )


def render_literal(lit: literals_pb2.Literal, label: str) -> str:
    """A literal as the text propeller puts in a command."""
    which = lit.WhichOneof("value")
    if which == "collection":
        items = [render_literal(x, f"{label}[{i}]") for i, x in enumerate(lit.collection.literals)]
        return "[" + ",".join(items) + "]"
    if which == "map":
        raise _cannot(label, "a map (dict)")
    if which != "scalar":
        raise _cannot(label, f"a literal of kind {which or 'nothing'}")
    scalar = lit.scalar
    kind = scalar.WhichOneof("value")
    if kind == "primitive":
        return _primitive(scalar.primitive, label)
    if kind == "blob":
        return scalar.blob.uri
    if kind == "schema":
        return scalar.schema.uri
    if kind == "binary":
        if scalar.binary.tag != "msgpack":
            raise _cannot(label, f"binary data tagged {scalar.binary.tag!r} (only msgpack)")
        import msgpack

        try:
            value = msgpack.unpackb(scalar.binary.value, raw=False, strict_map_key=False)
        except (ValueError, msgpack.UnpackException) as exc:
            raise TemplateError(f"{label}: msgpack value does not decode: {exc}") from None
        return go_value(value)
    names = {
        "union": "a union or Optional value",
        "none_type": "none",
        "generic": "a protobuf Struct",
        "structured_dataset": "a structured dataset",
        "error": "an error value",
    }
    raise _cannot(label, names.get(kind or "", f"a scalar of kind {kind or 'nothing'}"))


def _unknown(whole: str, where: str) -> TemplateError:
    return TemplateError(
        f"{where}: unknown template {whole}; Flyte renders {{{{.inputs.NAME}}}} and "
        + ", ".join(f"{{{{.{n}}}}}" for n in RUN_NAMES)
    )


def _missing_input(whole: str, name: str, declared: Iterable[str], where: str) -> TemplateError:
    return TemplateError(
        f"{where}: {whole} names input {name!r}, but the task has "
        f"{', '.join(sorted(declared)) or 'no inputs'}"
    )


def input_names(text: str) -> list[str]:
    """The inputs ``text`` refers to, in order of appearance."""
    return [m.group(1) for m in _INPUT.finditer(text)]


def _unavailable(whole: str, where: str) -> TemplateError:
    return TemplateError(f"{where}: {whole} has no value in this command")


def check(
    text: str, declared: Iterable[str], where: str, available: Iterable[str] | None = None
) -> bool:
    """Fail early on a template that no value could fill (before anything is stored).

    ``available`` limits the run-wide names (lower case) to those the caller
    can give.  Returns whether ``text`` refers to any input.
    """
    names = set(declared)
    known = {name.lower() for name in RUN_NAMES}
    usable = known if available is None else set(available)
    uses_inputs = False
    for match in _ANY.finditer(text):
        whole = match.group(0)
        m = _INPUT.fullmatch(whole)
        if m:
            if m.group(1) not in names:
                raise _missing_input(whole, m.group(1), names, where)
            uses_inputs = True
            continue
        m = _NAMED.fullmatch(whole)
        if not m or m.group(1).lower() not in known:
            raise _unknown(whole, where)
        if m.group(1).lower() not in usable:
            raise _unavailable(whole, where)
    return uses_inputs


def render(
    text: str,
    inputs: literals_pb2.LiteralMap,
    run_values: Mapping[str, str | Callable[[], str]],
    where: str,
) -> str:
    """``text`` with every template replaced; an unknown or unrenderable one is an error.

    ``run_values`` maps the lower-case run-wide names to their text (or to a
    function that makes it, for values that cost something, as Flyte does for
    the task template).
    """
    known = {name.lower(): name for name in RUN_NAMES}

    def one(match: re.Match[str]) -> str:
        whole = match.group(0)
        m = _INPUT.fullmatch(whole)
        if m:
            name = m.group(1)
            if name not in inputs.literals:
                raise _missing_input(whole, name, inputs.literals, where)
            return render_literal(inputs.literals[name], f"{where}: input {name!r}")
        m = _NAMED.fullmatch(whole)
        if not m or m.group(1).lower() not in known:
            raise _unknown(whole, where)
        value = run_values.get(m.group(1).lower())
        if value is None:
            raise _unavailable(whole, where)
        return value() if callable(value) else value

    return _ANY.sub(one, text)
