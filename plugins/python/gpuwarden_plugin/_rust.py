"""Text rules shared with the Rust SDK, so a Python plugin reads configuration, classifies XIDs
and words its findings exactly as the Rust one does.

Python's own rules differ in small ways that matter here: ``float("1_000")`` and
``int("٣")`` succeed where Rust's ``parse`` fails, ``str.strip`` removes a few control
characters Rust keeps, ``str.lower`` folds non-ASCII letters, and ``str(97.0)`` is ``"97.0"``
where Rust prints ``97``.
"""

from __future__ import annotations

import math
import re

U64_MAX = (1 << 64) - 1

# Rust's `char::is_whitespace`: the Unicode White_Space property.
WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)

_FLOAT = re.compile(
    r"[+-]?(?:inf|infinity|nan|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)",
    re.IGNORECASE | re.ASCII,
)
_UNSIGNED = re.compile(r"\+?[0-9]+", re.ASCII)


def trim(s: str) -> str:
    """`str::trim`."""
    return s.strip(WHITESPACE)


def ascii_lower(s: str) -> str:
    """`str::to_ascii_lowercase`: only A-Z change."""
    return s.translate(_ASCII_LOWER)


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def parse_f64(s: str) -> float | None:
    """`s.parse::<f64>().ok()` (no trimming)."""
    if not _FLOAT.fullmatch(s):
        return None
    return float(s)


def parse_u64(s: str) -> int | None:
    """`s.parse::<u64>().ok()` (no trimming): ASCII digits, an optional `+`, at most 2^64-1."""
    if not _UNSIGNED.fullmatch(s):
        return None
    n = int(s, 10)
    return n if n <= U64_MAX else None


def fmt_f64(x: float) -> str:
    """How Rust's `{}` prints an f64: `97`, `97.5`, `0.0000001`, `inf`, `NaN`."""
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    r = repr(x)
    if "e" in r:
        r = _expand_exponent(r)
    if r.endswith(".0"):
        r = r[:-2]
    return r


def _expand_exponent(r: str) -> str:
    mantissa, exp = r.split("e")
    sign = ""
    if mantissa.startswith("-"):
        sign, mantissa = "-", mantissa[1:]
    whole, _, frac = mantissa.partition(".")
    # The position of the decimal point, counted from the first digit of `whole + frac`.
    point = len(whole) + int(exp)
    lead = len(whole + frac) - len((whole + frac).lstrip("0"))
    digits = (whole + frac)[lead:]
    point -= lead
    if point <= 0:
        out = "0." + "0" * (-point) + digits
    elif point >= len(digits):
        out = digits + "0" * (point - len(digits))
    else:
        out = digits[:point] + "." + digits[point:]
    return sign + out
