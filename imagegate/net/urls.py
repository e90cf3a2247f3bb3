"""Outbound URLs a client or operator names for imagegate to call later (webhook receivers):
checked once when they are given, so a bad one is refused at once with a 400 naming the field
instead of failing quietly in a delivery log.

Only the syntax and IP-literal hosts can be judged here; host names are judged after DNS, at
connection time, by the guarded session (`net/session.py`).
"""

from __future__ import annotations

from yarl import URL

from imagegate.errors import InvalidRequestError
from imagegate.net.guard import AddressPolicy, parse_host_literal

MAX_URL_LENGTH = 2048
_SCHEMES = frozenset({"http", "https"})


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
