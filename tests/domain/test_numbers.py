"""Numbers read from text: ASCII digits in canonical form, and nothing Python's `int()` or
`str.isdigit()` would also take."""

from __future__ import annotations

import pytest

from imagegate.domain.numbers import MAX_DIGITS, parse_decimal, parse_int


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("7", 7), ("1024", 1024),
                                             ("1795323600000", 1_795_323_600_000)])
def test_canonical_integers(text: str, value: int) -> None:
    assert parse_int(text) == value


@pytest.mark.parametrize("text", [
    "", "+5", "-5", " 5", "5 ", "05", "00", "1_000", "1,000", "5.0", "1e3", "0x10",
    "１０２４",  # full-width digits
    "𝟏𝟎𝟐𝟒",  # mathematical bold digits
    "١٢",  # Arabic-Indic digits
    "²",  # isdigit() says yes
    "5\n",
])
def test_other_spellings_are_refused(text: str) -> None:
    assert parse_int(text) is None


def test_python_would_have_taken_them() -> None:
    # The reason this module exists: each of these is an int to Python.
    for text in ("+5", " 5 ", "1_000", "１０２４", "𝟏𝟎𝟐𝟒"):
        int(text)
        assert parse_int(text) is None


def test_signed() -> None:
    assert parse_int("-5", signed=True) == -5
    assert parse_int("0", signed=True) == 0
    for text in ("-0", "--5", "+5", "-05", "- 5"):
        assert parse_int(text, signed=True) is None


def test_digit_cap() -> None:
    assert parse_int("9" * MAX_DIGITS) == int("9" * MAX_DIGITS)
    assert parse_int("9" * (MAX_DIGITS + 1)) is None
    assert parse_int("1" * 6, max_digits=5) is None
    assert parse_int("9" * 100_000) is None  # refused by length, before int() sees it


@pytest.mark.parametrize(("text", "value"), [("0", 0.0), ("1700000000", 1.7e9),
                                             ("1700000000.5", 1_700_000_000.5), ("0.25", 0.25)])
def test_decimals(text: str, value: float) -> None:
    assert parse_decimal(text) == value


@pytest.mark.parametrize("text", ["", "+1", "01", "1.", ".5", "1e9", "nan", "inf", " 1",
                                  "1_0", "１", "-1", "1.5.5"])
def test_decimal_refusals(text: str) -> None:
    assert parse_decimal(text) is None
