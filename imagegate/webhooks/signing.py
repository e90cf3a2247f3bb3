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

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300  # the spec's (and the reference libraries') five minutes


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
