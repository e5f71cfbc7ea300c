"""Primitive values as the text a container reads: the exact formats of SPEC §4.

These match what Go's flytecopilot writes (``strconv.FormatFloat(f, 'f', -1,
64)``, RFC 3339 with trimmed nanoseconds, ``time.Duration.String()``), so
scripts written against the Go helper keep working.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from decimal import Decimal

from copilot.durations import parse_go_duration

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_NS = 1_000_000_000


def format_float(value: float) -> str:
    """Shortest text that reads back as the same float, never with an exponent."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def format_timestamp(seconds: int, nanos: int) -> str:
    """RFC 3339 in UTC, fractional seconds without trailing zeros: ``…05.5Z``."""
    if not 0 <= nanos < _NS:
        raise ValueError(f"nanos out of range: {nanos}")
    try:
        moment = _EPOCH + _dt.timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"timestamp out of range: {seconds} seconds since 1970") from None
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.year < 1000:
        text = f"{moment.year:04d}" + text[text.index("-") :]
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    return text + "Z"


def duration_ns(seconds: int, nanos: int) -> int:
    """Total nanoseconds of a protobuf Duration."""
    return seconds * _NS + nanos


# -- reading values back (sidecar) ---------------------------------------------

_INT_RE = re.compile(r"[+-]?[0-9]+\Z")
_FLOAT_RE = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\Z")
_SPECIAL_FLOATS = {
    "nan": math.nan,
    "+nan": math.nan,
    "-nan": math.nan,
    "inf": math.inf,
    "+inf": math.inf,
    "infinity": math.inf,
    "+infinity": math.inf,
    "-inf": -math.inf,
    "-infinity": -math.inf,
}
TRUE_WORDS = frozenset({"1", "t", "T", "TRUE", "true", "True"})
FALSE_WORDS = frozenset({"0", "f", "F", "FALSE", "false", "False"})
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class OutOfRange(ValueError):
    """A number of the right form that does not fit its type: said as such."""


def parse_int(text: str) -> int:
    """A decimal 64-bit integer (``-42``, ``+7``)."""
    if not _INT_RE.match(text):
        raise ValueError(f"{text!r} is not an integer")
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise OutOfRange(
            f"{text} is out of range for a 64-bit integer ({INT64_MIN} to {INT64_MAX})"
        )
    return value


def parse_float(text: str) -> float:
    """Decimal or exponent notation, or NaN / Inf in Go's or Python's spelling."""
    special = _SPECIAL_FLOATS.get(text.lower())
    if special is not None:
        return special
    if not _FLOAT_RE.match(text):
        raise ValueError(f"{text!r} is not a number")
    return float(text)


def parse_bool(text: str) -> bool:
    """Go's ``strconv.ParseBool`` spellings."""
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ValueError(f"{text!r} is not a boolean (use true or false)")


_DT_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|z|UTC|[+-]\d{2}(?::?\d{2})?)?\Z"
)


def parse_timestamp(text: str) -> tuple[int, int]:
    """RFC 3339 or Python ``isoformat()`` / ``str()`` output -> (seconds, nanos) since 1970 UTC.

    A time without an offset is taken as UTC; a bare date is midnight UTC.
    """
    m = _DT_RE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not an RFC 3339 datetime")
    year, month, day, hour, minute, second, frac, zone = m.groups()
    try:
        moment = _dt.datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0)
        )
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid datetime ({exc})") from None
    offset = 0
    if zone and zone not in ("Z", "z", "UTC"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        hours, mins = int(digits[:2]), int(digits[2:] or 0)
        if hours > 23 or mins > 59:
            raise ValueError(f"{text!r} has an invalid UTC offset")
        offset = sign * (hours * 3600 + mins * 60)
    naive_epoch = _dt.datetime(1970, 1, 1)
    seconds = (moment - naive_epoch) // _dt.timedelta(seconds=1) - offset
    nanos = int((frac or "").ljust(9, "0")) if frac else 0
    return seconds, nanos


_TIMEDELTA_RE = re.compile(r"(?:(-?\d+) days?, )?(-?\d+):(\d{2}):(\d{2})(?:\.(\d{1,9}))?\Z")
_ISO_DURATION_RE = re.compile(
    r"([+-])?P(?:(\d+(?:[.,]\d+)?)W)?(?:(\d+(?:[.,]\d+)?)D)?"
    r"(?:T(?:(\d+(?:[.,]\d+)?)H)?(?:(\d+(?:[.,]\d+)?)M)?(?:(\d+(?:[.,]\d+)?)S)?)?\Z",
    re.IGNORECASE,
)


def parse_duration_text(text: str) -> int:
    """Go syntax, Python's ``str(timedelta)`` or ISO 8601 (``PT1H2M``) -> nanoseconds."""
    try:
        return parse_go_duration(text)
    except ValueError:
        pass
    m = _TIMEDELTA_RE.match(text)
    if m:
        days, hours, minutes, seconds, frac = m.groups()
        total = (
            int(days or 0) * 86400 * _NS
            + int(hours) * 3600 * _NS
            + int(minutes) * 60 * _NS
            + int(seconds) * _NS
        )
        if frac:
            total += int(frac.ljust(9, "0"))
        return total
    m = _ISO_DURATION_RE.match(text)
    if m and any(m.groups()[1:]):
        sign, weeks, days, hours, minutes, seconds = m.groups()
        exact = Decimal(0)
        for part, unit in (
            (weeks, 7 * 86400),
            (days, 86400),
            (hours, 3600),
            (minutes, 60),
            (seconds, 1),
        ):
            if part:
                exact += Decimal(part.replace(",", ".")) * unit * _NS
        return (-1 if sign == "-" else 1) * int(exact)
    raise ValueError(
        f"{text!r} is not a duration (use Go syntax like 1h2m3s, Python's 1 day, 2:03:04, "
        "or ISO 8601 like PT1H2M)"
    )
