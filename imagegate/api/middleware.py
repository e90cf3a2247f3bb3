"""Cross-cutting request handling as small ASGI wrappers: a request id on every request and
response, a JSON 500 (never a bare page) for anything unexpected, the body-size cap, and the
process-wide budget of body bytes held at once."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imagegate.api.profiles.errors import render_error
from imagegate.domain.numbers import parse_int
from imagegate.errors import ImagegateError, PayloadTooLargeError
from imagegate.ingest.budget import Lease

log = logging.getLogger("imagegate.api")


def _json_response(status: int, body: dict[str, object], request_id: str | None,
                   headers: dict[str, str] | None = None) -> list[Message]:
    payload = orjson.dumps(body)
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    if request_id:  # None when sent through RequestContextMiddleware, which adds it
        raw.append((b"x-request-id", request_id.encode()))
    raw.extend((k.lower().encode(), v.encode()) for k, v in (headers or {}).items())
    return [
        {"type": "http.response.start", "status": status, "headers": raw},
        {"type": "http.response.body", "body": payload},
    ]


class RequestContextMiddleware:
    """Outermost wrapper: request id in, request id out, and the last line of defence."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = "req_" + secrets.token_hex(12)  # uuid4 costs ~3% of a task poll
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []),
                                      (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if isinstance(exc, ImagegateError):  # raised outside a route (e.g. body reading)
                err = exc
            else:
                log.exception("unhandled error, request_id=%s path=%s", request_id,
                              scope.get("path"))
                err = ImagegateError(
                    f"The server had an error while processing your request "
                    f"(request id {request_id}). Retry, or contact the operator "
                    "with the request id.",
                )
            # In the shape of the profile that owns the path (apimart's differs).
            body, status = render_error(err, scope.get("path", ""))
            headers = err.headers
            if started:  # the response is half sent; nothing valid can follow
                raise
            for message in _json_response(status, body, request_id, headers):
                await send(message)


class BodyLimitMiddleware:
    """413 for bodies over the limit: refused from Content-Length before reading, and counted
    while streaming for chunked bodies, so an oversized upload is never held in memory."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            f"The request body is larger than the maximum of {self.max_bytes} bytes",
            param="body",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                declared = parse_int(value.decode("latin-1")) or 0
                if declared > self.max_bytes:
                    body, status = render_error(self._too_large(), scope.get("path", ""))
                    for message in _json_response(status, body, None):
                        await send(message)
                    return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise self._too_large()
            return message

        await self.app(scope, counting_receive, send)


class BodyBudgetMiddleware:
    """Counts every request's body bytes against the process-wide memory budget
    (`ingest/budget.py`) and gives them back when the response starts (a handler holds its
    parsed body until it answers: a synchronous request while it waits, a stream only until
    its first event) or the request ends.

    A body with a `Content-Length` is admitted whole before its first byte is taken from the
    server: requests that each hold half a body cannot block one another. A chunked body is
    counted chunk by chunk as it arrives. Beyond the budget, reading waits up to
    `inflight_body_wait_seconds`, then raises 503 `server_busy` with `Retry-After` inside the
    route's body read, before the request created anything. The budget is a backend
    (`wiring.py`), read off the app like every other one.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        backends = getattr(scope["app"].state, "backends", None) if "app" in scope else None
        if scope["type"] != "http" or backends is None:
            await self.app(scope, receive, send)
            return
        lease: Lease = backends.body_budget.lease()
        declared = _content_length(scope)
        admitted = False
        seen = counted = 0

        async def counted_receive() -> Message:
            nonlocal admitted, seen, counted
            if not admitted:
                admitted = True
                await lease.grow(declared, param="body")
                counted = declared
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > counted:
                    await lease.grow(seen - counted, param="body")
                    counted = seen
            return message

        async def release_on_start(message: Message) -> None:
            if message["type"] == "http.response.start":
                lease.close()
            await send(message)

        try:
            await self.app(scope, counted_receive, release_on_start)
        finally:
            lease.close()


def _content_length(scope: Scope) -> int:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            # The HTTP server has checked it; anything odd counts as unknown (chunk by chunk).
            return parse_int(value.decode("latin-1")) or 0
    return 0


Endpoint = Callable[[Request], Awaitable[Response]]


class HotRoutesMiddleware:
    """The outermost layer: serves the hottest routes with only what they need around them,
    ahead of everything else the app stacks up; every other request goes to `app` unchanged.

    - GET task polls and `/healthz`: a request id and error rendering
      (`RequestContextMiddleware`). Polling is the hottest path of the service (clients
      poll every second or two while a 4K image takes minutes), and load balancers probe
      `/healthz` all day. Starlette's error layers, the body limits (a GET has no body),
      FastAPI's router and its dependency machinery were measured at more than half of a
      poll's cost and ~80% of a probe's.
    - `POST /v1/images/generations` (`posts`): the same, plus the body limit and the body
      budget — the layers the app stacks for every request, in the same order. FastAPI's
      router and dependency resolution were ~8% of the main thread's time per relayed
      image; skipping them cut the CPU per relayed 4 KiB image by ~8% (bench/README).

    The endpoints are the same functions the router holds, so behaviour is identical; the
    router keeps its routes (OpenAPI, 405s for other methods).
    """

    def __init__(self, app: ASGIApp, routes: Sequence[tuple[re.Pattern[str], Endpoint]],
                 exact: Mapping[str, Endpoint] | None = None, *,
                 posts: Mapping[str, Endpoint] | None = None,
                 max_body_bytes: int | None = None) -> None:
        if posts and max_body_bytes is None:
            raise ValueError("POST routes need the body limit (max_body_bytes)")
        self.app = app
        self.routes = routes
        self.exact = exact or {}
        self.posts = posts or {}
        self._served = RequestContextMiddleware(self._serve)
        self._posted = RequestContextMiddleware(BodyLimitMiddleware(
            BodyBudgetMiddleware(self._serve), max_body_bytes or 0))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            path: str = scope["path"]
            endpoint = self.exact.get(path)
            if endpoint is not None:
                scope["path_params"] = {}
                scope["endpoint"] = endpoint
                await self._served(scope, receive, send)
                return
            for pattern, endpoint in self.routes:
                match = pattern.fullmatch(path)
                if match is not None:
                    scope["path_params"] = match.groupdict()
                    scope["endpoint"] = endpoint
                    await self._served(scope, receive, send)
                    return
        elif scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self.posts.get(scope["path"])
            if endpoint is not None:
                scope["path_params"] = {}
                scope["endpoint"] = endpoint
                await self._posted(scope, receive, send)
                return
        await self.app(scope, receive, send)

    @staticmethod
    async def _serve(scope: Scope, receive: Receive, send: Send) -> None:
        response = await scope["endpoint"](Request(scope, receive))
        await response(scope, receive, send)
