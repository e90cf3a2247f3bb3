"""Request-scoped helpers shared by the routers: services, authentication, JSON bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import Request

from imagegate.accounts.keys import ApiKey
from imagegate.errors import AuthenticationError, InvalidRequestError, PayloadTooLargeError
from imagegate.services import Services


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


async def api_key(request: Request) -> ApiKey:
    """The caller's key from `Authorization: Bearer …` (or `api-key` / `x-api-key`)."""
    header = request.headers.get("authorization", "")
    token = ""
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            token = value.strip()
    token = token or request.headers.get("x-api-key", "") or request.headers.get("api-key", "")
    if not token:
        raise AuthenticationError(
            "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.",
            code="missing_api_key",
        )
    key = await services(request).keys.find(token)
    if key is None or not key.active:
        # Never echo the key, not even a part of it: logs and proxies keep response bodies.
        raise AuthenticationError("Incorrect API key provided, or the key was revoked.")
    if key.expired:
        # Only the holder of the whole secret gets here, so naming the expiry leaks nothing.
        when = datetime.fromtimestamp(key.expires_at or 0, UTC).strftime("%Y-%m-%d %H:%M:%S")
        raise AuthenticationError(f"This API key expired at {when} UTC.", code="expired_api_key")
    return key


async def json_body(request: Request) -> dict[str, Any]:
    """The parsed JSON object, read with a cap: JSON is parsed in memory, so its limit
    (max_json_body_bytes) is lower than the general body limit that multipart streams under."""
    limit = services(request).settings.max_json_body_bytes
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(
                f"The JSON body is larger than the maximum of {limit} bytes; send large "
                "images as URLs or as multipart file uploads",
                param="body",
            )
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise InvalidRequestError("The request body is empty; send a JSON object",
                                  param="body", code="invalid_json")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"The request body is not valid JSON: {exc}",
                                  param="body", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequestError("The request body must be a JSON object",
                                  param="body", code="invalid_json")
    return data
