"""Deadlines as clients spell them (issue 14, item 5): `Cancel-After` and `deadline_seconds`."""

from __future__ import annotations

import pytest

from imagegate.domain.catalog import load_catalog
from imagegate.domain.deadlines import check_deadline, parse_cancel_after
from imagegate.domain.normalize import normalize
from imagegate.errors import InvalidRequestError


@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90), ("90S", 90), ("5m", 300), ("1h", 3600), ("120", 120), (" 45s ", 45),
    ("2.5", 2.5), ("1.5m", 90), ("86400", 86400),
])
def test_cancel_after_formats(text: str, seconds: float) -> None:
    assert parse_cancel_after(text, 86400) == seconds


@pytest.mark.parametrize("text", [
    "1500ms", "90d", "-5", "0", "0s", "", "s", "abc", "1e3", "1 h", "+5", "5m30s", "NaN",
    "inf", "86401", "25h",
])
def test_bad_cancel_after_is_a_400_naming_the_header(text: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_cancel_after(text, 86400)
    assert info.value.param == "Cancel-After" and info.value.status_code == 400


@pytest.mark.parametrize("value", [0, -1, True, "90", None, float("nan"), float("inf"),
                                   86400.5])
def test_bad_deadline_seconds(value: object) -> None:
    with pytest.raises(InvalidRequestError) as info:
        check_deadline(value, "deadline_seconds", 86400)
    assert info.value.param == "deadline_seconds"


def test_normalize_reads_deadline_seconds() -> None:
    catalog = load_catalog()
    assert normalize({"prompt": "p", "deadline_seconds": 30}, catalog).deadline_seconds == 30
    assert normalize({"prompt": "p", "deadline_seconds": None}, catalog).deadline_seconds \
        is None
    request = normalize({"prompt": "p", "deadline_seconds": 2.5}, catalog)
    assert "deadline_seconds" not in request.ignored_fields
    assert type(request).from_json(request.to_json()) == request
    with pytest.raises(InvalidRequestError) as info:
        normalize({"prompt": "p", "deadline_seconds": -3}, catalog)
    assert info.value.param == "deadline_seconds"
