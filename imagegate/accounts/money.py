"""Money in and out of the integer micro-units (1e-6 of the currency) used everywhere inside.

Amounts arrive as text from operators ("10", "10.50", "0.000001") or as JSON numbers; they are
parsed through `Decimal`, never through float arithmetic, so "0.1" is exactly 100000 micros.
Floats (JSON numbers) go through their shortest repr first, which is the number the client
wrote. Anything finer than a micro-unit is refused rather than rounded: a silently rounded
top-up would leave the ledger disagreeing with what the operator typed.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

from imagegate.errors import InvalidRequestError

MICROS = 1_000_000
# One amount (a top-up, a balance) is at most a billion currency units: far above any real
# balance, far below BigInteger's 9.2e18 micros even after many top-ups.
MAX_AMOUNT = 1_000_000_000 * MICROS
_MICRO = Decimal("0.000001")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def _bad(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="invalid_amount")


def parse_amount(text: str | int | float | Decimal, *, signed: bool = False,
                 param: str = "amount") -> int:
    """A currency amount as micro-units. Accepts "10", "10.5", "0.000001", 10, 10.5.

    Refused (InvalidRequestError naming `param`): non-numeric text, NaN and infinities, more
    than 6 decimals, more than `MAX_AMOUNT` in size, and negatives unless `signed`."""
    if isinstance(text, bool):  # bool is an int subclass; `true` is not an amount
        raise _bad(f"{param} must be a number, not a boolean", param)
    if isinstance(text, float):
        if not math.isfinite(text):
            raise _bad(f"{param} must be a finite number", param)
        value = Decimal(repr(text))
    elif isinstance(text, int | Decimal):
        value = Decimal(text)
    elif isinstance(text, str):
        cleaned = text.strip()
        if not _DECIMAL.fullmatch(cleaned):
            raise _bad(f"{param} must be a decimal number like 10 or 10.50, got {text[:40]!r}",
                       param)
        value = Decimal(cleaned)
    else:
        raise _bad(f"{param} must be a number or a decimal string", param)
    if not value.is_finite():
        raise _bad(f"{param} must be a finite number", param)
    if value < 0 and not signed:
        raise _bad(f"{param} must not be negative", param)
    # Size first: comparisons are exact, while arithmetic on a huge value would round.
    if abs(value) > Decimal(MAX_AMOUNT) / MICROS:
        raise _bad(f"{param} is larger than the maximum of {format_amount(MAX_AMOUNT)}", param)
    micros = value.quantize(_MICRO)
    if micros != value:
        raise _bad(f"{param} has more than 6 decimal places", param)
    return int(micros * MICROS)


def format_amount(micros: int) -> str:
    """Micro-units as a decimal string with at least 2 decimals: 10500000 -> "10.50",
    1 -> "0.000001", -1500000 -> "-1.50"."""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS)
    digits = f"{frac:06d}".rstrip("0")
    return f"{sign}{whole}.{digits.ljust(2, '0')}"


def to_float(micros: int) -> float:
    """For JSON fields that are numbers by contract (apimart's `cost`); never for sums."""
    return micros / MICROS
