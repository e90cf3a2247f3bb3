"""Signatures checked by the independent `standardwebhooks` package."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from imagegate.webhooks import signing

BODY = b'{"type":"task.succeeded","data":{"id":"task_1"}}'


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
    assert Webhook(secret).verify(BODY, headers) == {"type": "task.succeeded",
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
