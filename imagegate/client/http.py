"""What both drivers share about httpx: a `Call` as an `httpx.Request`, an `httpx.Response`
as an `Answer`, and httpx's transport errors as a `TransportFailure`."""

from __future__ import annotations

from typing import Any

import httpx

from imagegate import __version__
from imagegate.client.errors import InputError
from imagegate.client.steps import Answer, Call, TransportFailure

USER_AGENT = f"imagegate-client/{__version__}"
CONNECT_TIMEOUT = 10.0


def normalize_base_url(base_url: str) -> str:
    """Without a trailing `/` or `/v1`: every dialect's paths start with `/v1`, and people
    write a base URL both ways (the openai SDK wants the `/v1`)."""
    url = base_url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise InputError(f"the server URL must start with http:// or https://, not {base_url!r}")
    return url.removesuffix("/v1")


def build(http: httpx.Client | httpx.AsyncClient, call: Call, *, base_url: str,
          api_key: str | None, timeout: float) -> httpx.Request:
    url = call.url if "://" in call.url else base_url + call.url
    headers = {"User-Agent": USER_AGENT, **call.headers}
    if call.auth and api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    seconds = call.timeout if call.timeout is not None else timeout
    options: dict[str, Any] = {}
    if call.json is not None:
        options["json"] = call.json
    elif call.content is not None:
        options["content"] = call.content
    return http.build_request(call.method, url, params=call.params, headers=headers,
                              timeout=httpx.Timeout(seconds, connect=min(seconds,
                                                                         CONNECT_TIMEOUT)),
                              **options)


def answer(response: httpx.Response, content: bytes) -> Answer:
    return Answer(response.status_code, {k.lower(): v for k, v in response.headers.items()},
                  content, str(response.url))


def failure(exc: httpx.HTTPError) -> TransportFailure:
    """A connection that was never made means the request surely never arrived."""
    detail = str(exc) or type(exc).__name__
    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    return TransportFailure(detail, sent=not never_sent,
                            timeout=isinstance(exc, httpx.TimeoutException))
