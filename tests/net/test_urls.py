"""Outbound (webhook) URL validation: syntax, and IP literals the SSRF guard refuses."""

from __future__ import annotations

import pytest

from imagegate.errors import InvalidRequestError
from imagegate.net.guard import AddressPolicy
from imagegate.net.urls import validate_webhook_url


@pytest.mark.parametrize("url", [
    "https://example.com/hook",
    "http://example.com:8080/a/b?x=1",
    "https://hooks.example.org",
])
def test_valid_urls(url: str) -> None:
    assert validate_webhook_url(url) == url


@pytest.mark.parametrize("url", [
    "", "   ", "ftp://example.com/x", "file:///etc/passwd", "javascript:alert(1)",
    "/relative/path", "example.com/hook", "http://", "https:///nohost",
    "https://user:pw@example.com/", "https://user@example.com/",
    "https://example.com/" + "a" * 2100, "https://exa mple.com/", "https://example.com/\n",
    "http://example.com:99999/", "http://example.com:0/",
])
def test_invalid_urls(url: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        validate_webhook_url(url)
    assert info.value.param == "webhook_url"
    assert info.value.code == "invalid_webhook_url"
    assert info.value.status_code == 400


@pytest.mark.parametrize("value", [None, 42, ["https://example.com"]])
def test_non_strings_are_invalid(value: object) -> None:
    with pytest.raises(InvalidRequestError):
        validate_webhook_url(value)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/hook", "http://10.0.0.5/hook", "http://169.254.169.254/latest",
    "http://[::1]:8080/", "http://2130706433/", "http://0x7f.1/",
])
def test_private_literals_refused_with_a_policy(url: str) -> None:
    policy = AddressPolicy()
    assert validate_webhook_url(url) == url  # syntax alone is fine
    with pytest.raises(InvalidRequestError) as info:
        validate_webhook_url(url, policy)
    assert info.value.code == "invalid_webhook_url"


def test_policy_allowlist_and_names_pass() -> None:
    policy = AddressPolicy.from_config([], ["127.0.0.1/32"])
    assert validate_webhook_url("http://127.0.0.1:9/x", policy)
    # names are judged after DNS, at delivery time
    assert validate_webhook_url("http://localhost/x", AddressPolicy())
