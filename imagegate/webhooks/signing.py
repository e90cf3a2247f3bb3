"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

A secret is `whsec_` + base64 of random bytes; the signature of one message is
`v1,<base64 HMAC-SHA256(secret, "{msg_id}.{timestamp}.{body}")>`, sent in `webhook-signature`
next to `webhook-id` and `webhook-timestamp` (integer epoch seconds). The id and timestamp are
under the signature so a captured message cannot be replayed under another id or later time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

from yarl import URL

from imagegate.errors import InvalidRequestError
from imagegate.ingest.guard import AddressPolicy, parse_host_literal

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"
MAX_URL_LENGTH = 2048
DEFAULT_TOLERANCE_SECONDS = 300  # the spec's (and the reference libraries') five minutes

_SCHEMES = frozenset({"http", "https"})


def new_secret(nbytes: int = 32) -> str:
    """A fresh signing secret. 24 bytes is the spec's minimum; 32 matches HMAC-SHA256's size."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(max(24, nbytes))).decode()


def _key(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        # Padding added because some tools hand out unpadded base64 (b64decode ignores extra).
        key = base64.b64decode(raw + "==", validate=False)
    except (binascii.Error, ValueError):
        raise ValueError("the webhook secret is not valid base64") from None
    if not key:
        raise ValueError("the webhook secret is empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<signature>` over `msg_id.timestamp.body`."""
    signed = f"{msg_id}.{int(timestamp)}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one delivery attempt of `body`."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
        "content-type": "application/json",
    }


def verify(
    secret: str,
    received: Mapping[str, str],
    body: bytes,
    *,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """Whether `received` headers carry a valid, fresh signature of `body` by `secret`.

    The signature header may list several space-separated signatures (during a secret
    rotation); any matching `v1` one is enough. Compared in constant time.
    """
    lowered = {k.lower(): v for k, v in received.items()}
    msg_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not (msg_id and stamp and signatures):
        return False
    try:
        timestamp = int(stamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    expected = sign(secret, msg_id, timestamp, body).encode()
    found = False
    for candidate in signatures.split():
        # No early exit: every candidate is compared, so timing says nothing about which one.
        found |= hmac.compare_digest(expected, candidate.encode())
    return found


def _invalid(message: str) -> InvalidRequestError:
    return InvalidRequestError(message, param="webhook_url", code="invalid_webhook_url")


def validate_webhook_url(url: object, policy: AddressPolicy | None = None) -> str:
    """The URL as given when it is an absolute http(s) URL with a host and no credentials.

    With `policy`, an IP-literal host the SSRF guard would refuse is refused now, so the
    client hears about it at once instead of in the delivery log. Host names are judged at
    delivery time, after DNS, by the dispatcher.
    """
    if not isinstance(url, str) or not url.strip():
        raise _invalid("webhook_url must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise _invalid(f"webhook_url is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise _invalid("webhook_url must not contain whitespace or control characters")
    try:
        parsed = URL(url)
        port = parsed.port  # an out-of-range port only fails when read
    except (ValueError, TypeError):
        raise _invalid("webhook_url is not a valid URL") from None
    if not parsed.absolute or parsed.scheme not in _SCHEMES:
        raise _invalid("webhook_url must be an absolute http or https URL")
    host = parsed.raw_host
    if not host:
        raise _invalid("webhook_url has no host")
    if parsed.raw_user is not None or parsed.raw_password is not None:
        raise _invalid("webhook_url must not contain credentials")
    if port == 0:
        raise _invalid("webhook_url has an invalid port")
    if policy is not None and not policy.host_allowed(host):
        literal = parse_host_literal(host)
        verdict = policy.classify(literal) if literal is not None else None
        if verdict is not None:
            raise _invalid(f"webhook_url points to {verdict.kind_phrase}, which is not allowed")
    return url
