"""Numbers that arrive as text (a `WxH` size, a query parameter, a multipart field, a signed
URL's expiry and index) are read by one rule: ASCII digits in canonical form.

Python's `int()` and `str.isdigit()` are far more forgiving than any client needs: `int()`
takes `+5`, ` 5 `, `1_000` and the digits of every script (`１０２４`, `𝟏𝟎𝟐𝟒`), and `isdigit()`
says yes to `²`. Each extra spelling of a number is a second cache key, a second signed URL
for one image, a second idempotency fingerprint, and a way past checks that compare text;
no client means to send one. So a number is `0`, or a non-zero ASCII digit followed by ASCII
digits (with a leading `-` where a sign is allowed), and nothing else.
"""

from __future__ import annotations

import re

# `[0-9]` (never `\d`): in a str pattern `\d` matches every Unicode decimal digit.
_UNSIGNED = re.compile(r"0|[1-9][0-9]*")
_SIGNED = re.compile(r"0|-?[1-9][0-9]*")
_DECIMAL = re.compile(r"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")

# 18 digits always fit a signed 64-bit integer (what the database and orjson hold); longer
# text is refused before `int()` spends time on it.
MAX_DIGITS = 18


def parse_int(text: str, *, signed: bool = False, max_digits: int = MAX_DIGITS) -> int | None:
    """The integer `text` spells canonically, or None (the caller answers in its own way)."""
    pattern = _SIGNED if signed else _UNSIGNED
    digits = len(text) - (text[:1] == "-")
    if not 0 < digits <= max_digits or pattern.fullmatch(text) is None:
        return None
    return int(text)


def parse_decimal(text: str, *, max_digits: int = MAX_DIGITS) -> float | None:
    """A non-negative decimal (`1700000000`, `1700000000.5`) in canonical form, or None."""
    if not 0 < len(text) <= 2 * max_digits + 1 or _DECIMAL.fullmatch(text) is None:
        return None
    return float(text)
