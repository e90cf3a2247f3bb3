"""Amounts as text <-> integer micro-units: exact, strict, round-trippable."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagegate.accounts.money import MAX_AMOUNT, format_amount, parse_amount, to_float
from imagegate.errors import InvalidRequestError


@pytest.mark.parametrize(
    ("given_value", "micros"),
    [("10", 10_000_000), ("10.5", 10_500_000), ("0.000001", 1), (" 3 ", 3_000_000),
     (".5", 500_000), ("0", 0), ("+2", 2_000_000), (10, 10_000_000), (10.5, 10_500_000),
     (0.1, 100_000), (1e-6, 1), (Decimal("1.10"), 1_100_000), ("1000000000", MAX_AMOUNT)],
)
def test_parse(given_value: str | int | float, micros: int) -> None:
    assert parse_amount(given_value) == micros


@pytest.mark.parametrize(
    "bad",
    ["-1", "-0.01", -5, "abc", "", " ", "1e3", "nan", "inf", "1,5", "1_000", "١", "0x10",
     "0.0000001", "1000000000.000001", "1" + "0" * 40, "1.0000000000000000000000000000001",
     float("nan"), float("inf"), -0.5, 1e300, True, None, [1]],
)
def test_parse_rejects(bad: object) -> None:
    with pytest.raises(InvalidRequestError) as err:
        parse_amount(bad)  # type: ignore[arg-type]
    assert err.value.param == "amount" and err.value.status_code == 400


def test_signed_and_param() -> None:
    assert parse_amount("-2.5", signed=True) == -2_500_000
    with pytest.raises(InvalidRequestError) as err:
        parse_amount("x", param="balance")
    assert err.value.param == "balance"


@pytest.mark.parametrize(
    ("micros", "text"),
    [(10_500_000, "10.50"), (1, "0.000001"), (-1_500_000, "-1.50"), (0, "0.00"),
     (123_456_789, "123.456789"), (10_000_000, "10.00"), (10_120_000, "10.12")],
)
def test_format(micros: int, text: str) -> None:
    assert format_amount(micros) == text


@given(st.integers(min_value=-MAX_AMOUNT, max_value=MAX_AMOUNT))
def test_round_trip(micros: int) -> None:
    text = format_amount(micros)
    assert parse_amount(text, signed=True) == micros
    assert Decimal(text) == Decimal(micros) / 1_000_000
    assert to_float(micros) == pytest.approx(micros / 1e6)


@given(st.decimals(min_value=0, max_value=1_000_000_000, places=6, allow_nan=False))
def test_decimal_strings_parse_exactly(value: Decimal) -> None:
    assert parse_amount(format(value, "f")) == int(value * 1_000_000)
