"""Go's duration syntax (``1h2m3s``, ``300ms``, ``1.5µs``), both ways.

The flags Flyte passes (``--timeout 1h0m0s``) and the duration values a
container reads and writes use the same syntax, so both the command line and
the literal codecs use this module.
"""

from __future__ import annotations

from decimal import Decimal

_NS = 1_000_000_000


def _frac(value: int, digits: int) -> str:
    """``value / 10**digits`` printed without trailing zeros (Go's fmtFrac + fmtInt)."""
    whole, rest = divmod(value, 10**digits)
    if rest == 0:
        return str(whole)
    return f"{whole}." + f"{rest:0{digits}d}".rstrip("0")


def format_duration_ns(total_ns: int) -> str:
    """Go's ``time.Duration.String()``: ``1h2m3s``, ``1.5s``, ``300ms``, ``0s``."""
    if total_ns == 0:
        return "0s"
    sign = "-" if total_ns < 0 else ""
    u = abs(total_ns)
    if u < _NS:
        if u < 1_000:
            return f"{sign}{u}ns"
        if u < 1_000_000:
            return f"{sign}{_frac(u, 3)}µs"
        return f"{sign}{_frac(u, 6)}ms"
    secs, frac = divmod(u, _NS)
    text = f"{secs % 60}"
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    text += "s"
    minutes = secs // 60
    if minutes:
        text = f"{minutes % 60}m" + text
        hours = minutes // 60
        if hours:
            text = f"{hours}h" + text
    return sign + text


_GO_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC greek mu
    "ms": 1_000_000,
    "s": _NS,
    "m": 60 * _NS,
    "h": 3600 * _NS,
}


def parse_go_duration(text: str) -> int:
    """Parse Go's duration syntax (``1h30m``, ``1.5s``, ``-300ms``, ``0``) into nanoseconds.

    Raises ValueError with the offending text on anything else.
    """
    s = text.strip()
    if not s:
        raise ValueError("empty duration")
    sign = 1
    if s[0] in "+-":
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(f"invalid duration {text!r}")
    total = Decimal(0)
    i = 0
    while i < len(s):
        start = i
        while i < len(s) and (s[i].isdigit() or s[i] == "."):
            i += 1
        number = s[start:i]
        if not number or number == "." or number.count(".") > 1:
            raise ValueError(f"invalid duration {text!r}")
        ustart = i
        while i < len(s) and not (s[i].isdigit() or s[i] == "."):
            i += 1
        unit = s[ustart:i]
        if unit not in _GO_UNITS:
            what = f"unknown unit {unit!r}" if unit else "missing unit"
            raise ValueError(f"invalid duration {text!r}: {what}")
        total += Decimal(number) * _GO_UNITS[unit]
    return sign * int(total)
