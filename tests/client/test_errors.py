"""Error answers in every dialect's shape become the typed error of their status."""

from __future__ import annotations

import pytest

from imagegate.client import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InsufficientBalanceError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from imagegate.client.errors import api_error, parse_retry_after


@pytest.mark.parametrize(("status", "cls"), [
    (400, BadRequestError), (413, BadRequestError), (415, BadRequestError),
    (401, AuthenticationError), (402, InsufficientBalanceError),
    (403, PermissionDeniedError), (404, NotFoundError), (409, ConflictError),
    (429, RateLimitError), (500, ServerError), (502, ServerError), (503, ServerError),
    (418, APIError),
])
def test_status_picks_the_class(status: int, cls: type[APIError]) -> None:
    error = api_error(status, b"{}", {})
    assert type(error) is cls and error.status == status


def test_openai_shape() -> None:
    body = (b'{"error": {"message": "size 1000x1000: both edges must be multiples of 16", '
            b'"type": "invalid_request_error", "param": "size", "code": "invalid_value"}}')
    error = api_error(400, body, {"X-Request-Id": "req_1"})
    assert (error.code, error.param, error.type, error.request_id) == (
        "invalid_value", "size", "invalid_request_error", "req_1")
    assert str(error) == ("400 invalid_value: size 1000x1000: both edges must be multiples "
                          "of 16 (param: size)")


def test_apimart_shape_keeps_no_numeric_code() -> None:
    body = ('{"error": {"code": 402, "message": "账户余额不足，请充值后再试", '
            '"type": "payment_required"}}')
    error = api_error(402, body.encode(), {})
    assert isinstance(error, InsufficientBalanceError)
    assert (error.code, error.type, error.message) == (None, "payment_required",
                                                       "账户余额不足，请充值后再试")
    assert str(error) == "402: 账户余额不足，请充值后再试"


def test_text_and_empty_bodies() -> None:
    assert str(api_error(502, b"<html>Bad Gateway</html>", {})) == "502: <html>Bad Gateway</html>"
    assert str(api_error(503, b"", {})) == "503: HTTP 503"
    assert str(api_error(400, b'{"error": "plain"}', {})) == "400: plain"


def test_retry_after() -> None:
    error = api_error(429, b"{}", {"Retry-After": "3"})
    assert isinstance(error, RateLimitError) and error.retry_after == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
