"""Points in time as operators and clients write them: epoch seconds, ISO-8601 dates and
datetimes (UTC unless they say otherwise) and, where a direction is given, spans such as
"7d" or "12h" counted back (`since`) or forward (`--expires`) from now."""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime
from typing import Literal

from imagegate.domain.numbers import parse_decimal
from imagegate.errors import InvalidRequestError

_SPAN = re.compile(r"([0-9]+)\s*([smhdw])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
# datetime's own limit; an epoch beyond it is a typo (milliseconds, usually).
_LATEST = datetime(9999, 12, 31, tzinfo=UTC).timestamp()


def parse_when(value: str | float | int, *, param: str, now: float | None = None,
               span: Literal[-1, 1] | None = None) -> float:
    """Epoch seconds for `value`. With `span`, "7d" means 7 days before (-1) or after (+1)
    `now`; without it spans are refused. InvalidRequestError naming `param` otherwise."""
    bad = InvalidRequestError(
        f"{param} must be epoch seconds or an ISO-8601 date like 2026-01-31"
        + (" or a span like 7d or 12h" if span else ""), param=param)
    if isinstance(value, bool):
        raise bad
    if isinstance(value, int | float):
        seconds = float(value)
    elif not isinstance(value, str):  # a JSON list or object where a time was expected
        raise bad
    else:
        text = value.strip()
        match = _SPAN.fullmatch(text.lower())
        if match and span is not None:
            base = time.time() if now is None else now
            return base + span * int(match[1]) * _UNIT[match[2]]
        # Epoch seconds in canonical ASCII form only (`domain/numbers.py`); `float()` would
        # also take `+5`, `1_0`, `1e9`, ` 5` and digits of every script.
        number = parse_decimal(value)
        seconds = number if number is not None else _iso(text, bad)
    if not math.isfinite(seconds) or not 0 <= seconds <= _LATEST:
        raise bad
    return seconds


def _iso(text: str, bad: InvalidRequestError) -> float:
    if not text.isascii():
        raise bad
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise bad from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def format_when(epoch: float | None) -> str:
    """`2026-01-31 12:00` (UTC) for tables; "-" for none."""
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M")


def iso(epoch: float | None) -> str | None:
    """ISO-8601 UTC for JSON (`2026-01-31T12:00:00Z`)."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
