"""The `limit` of every cursor-paged list (`GET /v1/tasks`, `GET /admin/tasks`, webhook
deliveries): the same default, the same cap, the same 400."""

from __future__ import annotations

from imagegate.domain.numbers import parse_int
from imagegate.errors import InvalidRequestError

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def page_limit(raw: str | None) -> int:
    """The `limit` query parameter: absent → the default; anything but an integer from 1 to
    MAX_LIMIT in canonical form → 400 naming `limit`."""
    if raw is None:
        return DEFAULT_LIMIT
    value = parse_int(raw)
    if value is None or not 1 <= value <= MAX_LIMIT:
        raise InvalidRequestError(f"limit must be an integer from 1 to {MAX_LIMIT}",
                                  param="limit")
    return value
