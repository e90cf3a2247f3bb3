"""Task deadlines: how long a client lets a task run before it is cancelled.

Two spellings, one meaning. The `Cancel-After` header (Replicate's) takes a duration with a
unit, `90s`, `5m`, `1h`, or a plain number of seconds; the body field `deadline_seconds` takes
a number. Both must be above zero and at most the operator's `max_deadline_seconds`; anything
else is a 400 naming where it came from, before anything is created or charged.
"""

from __future__ import annotations

import math
import re

from imagegate.errors import InvalidRequestError

HEADER = "Cancel-After"
FIELD = "deadline_seconds"

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}
# Digits with an optional fraction, then an optional unit; nothing else (no `ms`, no sign).
_DURATION = re.compile(r"([0-9]{1,9}(?:\.[0-9]{1,6})?)([smh]?)", re.IGNORECASE)


def parse_cancel_after(text: str, max_seconds: float) -> float:
    """The seconds a `Cancel-After` header value stands for, or a 400 naming the header."""
    m = _DURATION.fullmatch(text.strip())
    if m is None:
        raise InvalidRequestError(
            f"{HEADER} must be a duration such as 90s, 5m or 1h, or a number of seconds; "
            f"got {text[:40]!r}", param=HEADER, code="invalid_value")
    return check_deadline(float(m.group(1)) * _UNITS[m.group(2).lower()], HEADER, max_seconds)


def check_deadline(seconds: object, param: str, max_seconds: float) -> float:
    """`seconds` as a deadline: a number above zero and at most `max_seconds`."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise InvalidRequestError(f"{param} must be a number of seconds", param=param,
                                  code="invalid_type")
    value = float(seconds)
    if not math.isfinite(value) or value <= 0:
        raise InvalidRequestError(f"{param} must be above 0 seconds", param=param,
                                  code="invalid_value")
    if value > max_seconds:
        raise InvalidRequestError(
            f"{param} must be at most {max_seconds:g} seconds (this server's "
            "max_deadline_seconds)", param=param, code="invalid_value")
    return value
