"""Signatures checked by the independent `standardwebhooks` package, and URL validation."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from imagegate.errors import InvalidRequestError
from imagegate.ingest.guard import AddressPolicy
from imagegate.webhooks import signing

BODY = b'{"type":"image.task.succeeded","data":{"id":"task_1"}}'


def test_secret_format() -> None:
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24
    assert signing.new_secret() != secret


def test_reference_library_verifies_our_signature() -> None:
    secret = signing.new_secret()
    headers = signing.headers(secret, "msg_abc", int(time.time()), BODY)
    assert headers["content-type"] == "application/json"
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(BODY, headers) == {"type": "image.task.succeeded",
                                                     "data": {"id": "task_1"}}
    assert signing.verify(secret, headers, BODY)


def test_matches_the_reference_signature_exactly() -> None:
    from datetime import UTC, datetime

    secret = signing.new_secret()
    ts = 1_700_000_000
    ours = signing.sign(secret, "msg_1", ts, BODY)
    theirs = Webhook(secret).sign("msg_1", datetime.fromtimestamp(ts, UTC), BODY.decode())
    assert ours == theirs


@pytest.mark.parametrize("tamper", ["body", "timestamp", "id", "secret"])
def test_tampering_fails_both_verifiers(tamper: str) -> None:
    secret = signing.new_secret()
    now = int(time.time())
    headers = signing.headers(secret, "msg_abc", now, BODY)
    body = BODY
    check_secret = secret
    if tamper == "body":
        body = BODY.replace(b"task_1", b"task_2")
    elif tamper == "timestamp":
        headers["webhook-timestamp"] = str(now - 1)
    elif tamper == "id":
        headers["webhook-id"] = "msg_abd"
    else:
        check_secret = signing.new_secret()
    with pytest.raises(WebhookVerificationError):
        Webhook(check_secret).verify(body, headers)
    assert not signing.verify(check_secret, headers, body)


def test_verify_rejects_stale_and_missing() -> None:
    secret = signing.new_secret()
    old = int(time.time()) - 3600
    headers = signing.headers(secret, "msg_abc", old, BODY)
    assert not signing.verify(secret, headers, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, headers)
    assert signing.verify(secret, headers, BODY, now=old + 10)
    assert not signing.verify(secret, {}, BODY)
    bad = dict(headers, **{"webhook-timestamp": "soon"})
    assert not signing.verify(secret, bad, BODY, now=old)


def test_verify_accepts_any_of_several_signatures() -> None:
    secret, other = signing.new_secret(), signing.new_secret()
    now = int(time.time())
    headers = signing.headers(secret, "msg_abc", now, BODY)
    headers["webhook-signature"] = (
        signing.sign(other, "msg_abc", now, BODY) + " " + headers["webhook-signature"]
    )
    assert signing.verify(secret, headers, BODY)
    Webhook(secret).verify(BODY, headers)


@pytest.mark.parametrize("url", [
    "https://example.com/hook",
    "http://example.com:8080/a/b?x=1",
    "https://hooks.example.org",
])
def test_valid_urls(url: str) -> None:
    assert signing.validate_webhook_url(url) == url


@pytest.mark.parametrize("url", [
    "", "   ", "ftp://example.com/x", "file:///etc/passwd", "javascript:alert(1)",
    "/relative/path", "example.com/hook", "http://", "https:///nohost",
    "https://user:pw@example.com/", "https://user@example.com/",
    "https://example.com/" + "a" * 2100, "https://exa mple.com/", "https://example.com/\n",
    "http://example.com:99999/", "http://example.com:0/",
])
def test_invalid_urls(url: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        signing.validate_webhook_url(url)
    assert info.value.param == "webhook_url"
    assert info.value.code == "invalid_webhook_url"
    assert info.value.status_code == 400


@pytest.mark.parametrize("value", [None, 42, ["https://example.com"]])
def test_non_strings_are_invalid(value: object) -> None:
    with pytest.raises(InvalidRequestError):
        signing.validate_webhook_url(value)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/hook", "http://10.0.0.5/hook", "http://169.254.169.254/latest",
    "http://[::1]:8080/", "http://2130706433/", "http://0x7f.1/",
])
def test_private_literals_refused_with_a_policy(url: str) -> None:
    policy = AddressPolicy()
    assert signing.validate_webhook_url(url) == url  # syntax alone is fine
    with pytest.raises(InvalidRequestError) as info:
        signing.validate_webhook_url(url, policy)
    assert info.value.code == "invalid_webhook_url"


def test_policy_allowlist_and_names_pass() -> None:
    policy = AddressPolicy.from_config([], ["127.0.0.1/32"])
    assert signing.validate_webhook_url("http://127.0.0.1:9/x", policy)
    # names are judged after DNS, at delivery time
    assert signing.validate_webhook_url("http://localhost/x", AddressPolicy())
