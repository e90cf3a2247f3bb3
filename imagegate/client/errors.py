"""The client's errors: one tree, so a caller can catch as broadly or as narrowly as it needs.

    ClientError                        anything this client raises on purpose
    ├── APIError                       the server answered with an error status
    │   ├── BadRequestError            400, 413, 415, 422 (`param` names the field)
    │   ├── AuthenticationError        401
    │   ├── InsufficientBalanceError   402
    │   ├── PermissionDeniedError      403
    │   ├── NotFoundError              404
    │   ├── ConflictError              409
    │   ├── RateLimitError             429 (`retry_after`)
    │   └── ServerError                5xx
    ├── APIConnectionError             no answer: refused, unreachable, reset (APITimeoutError)
    ├── UnexpectedResponseError        an answer that is not the service's (a proxy page, …)
    ├── TaskFailedError                a task this client waited on failed or was cancelled
    ├── TaskTimeoutError               a wait ran past its timeout; the task runs on
    ├── UnsupportedError               the dialect or this server has no such operation
    └── InputError                     an input the client could not read (a missing file)

Error bodies are read in every dialect's shape: OpenAI's `{"error": {message, type, param,
code}}`, apimart's `{"error": {code: <status>, message, type}}` (its numeric `code` is the
status, so it is not kept as a code) and anything else as text.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any

import orjson


class ClientError(Exception):
    """Base of every error the client raises on purpose."""


class APIError(ClientError):
    """The server answered with an error status."""

    def __init__(self, status: int, message: str, *, code: str | None = None,
                 type: str | None = None, param: str | None = None,
                 request_id: str | None = None, body: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.message = message
        self.code = code
        self.type = type
        self.param = param
        self.request_id = request_id
        self.body = body
        self.headers = headers or {}
        label = f"{status} {code}" if code else str(status)
        where = f" (param: {param})" if param else ""
        super().__init__(f"{label}: {message}{where}")


class BadRequestError(APIError):
    """400 (and 413, 415, 422): a field is wrong; `param` names it when the server says."""


class AuthenticationError(APIError):
    """401: no key, or a wrong, revoked or expired one."""


class InsufficientBalanceError(APIError):
    """402: the key's balance cannot pay for the request; nothing was created."""


class PermissionDeniedError(APIError):
    """403: the key may not do this (a model it is not allowed, an expired image link)."""


class NotFoundError(APIError):
    """404: no such task, model or route."""


class ConflictError(APIError):
    """409: an `Idempotency-Key` reused with another body, a cancelled synchronous task."""


class RateLimitError(APIError):
    """429: too many requests or tasks; `retry_after` is the server's advice in seconds."""

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("retry-after"))


class ServerError(APIError):
    """5xx: the server or its upstream failed."""


class APIConnectionError(ClientError):
    """No answer at all: the server is down, unreachable, or the connection broke."""

    def __init__(self, url: str, detail: str) -> None:
        self.url = url
        self.detail = detail
        super().__init__(f"cannot reach {url}: {detail}")


class APITimeoutError(APIConnectionError):
    """The server did not answer within the client's timeout."""


class UnexpectedResponseError(ClientError):
    """Something answered, but not with what the dialect's service sends."""


class TaskFailedError(ClientError):
    """A task this client waited for ended `failed` or `cancelled`; `task` is its last state."""

    def __init__(self, task: Any) -> None:
        self.task = task
        error = task.error or {}
        self.code: str | None = error.get("code") if isinstance(error.get("code"), str) else None
        self.message: str = str(error.get("message") or f"the task was {task.status}")
        label = f" ({self.code})" if self.code else ""
        super().__init__(f"task {task.id} {task.status}{label}: {self.message}")


class TaskTimeoutError(ClientError, TimeoutError):
    """A wait gave up; the task itself keeps running on the server."""

    def __init__(self, task: Any, timeout: float) -> None:
        self.task = task
        super().__init__(f"task {task.id} still {task.status} after {timeout:g}s")


class UnsupportedError(ClientError):
    """The dialect, or this version of the server, has no such operation."""


class InputError(ClientError, ValueError):
    """An input the client could not read or does not understand (a file that is missing)."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError, 413: BadRequestError, 415: BadRequestError, 422: BadRequestError,
    401: AuthenticationError, 402: InsufficientBalanceError, 403: PermissionDeniedError,
    404: NotFoundError, 409: ConflictError, 429: RateLimitError,
}


def api_error(status: int, content: bytes, headers: dict[str, str]) -> APIError:
    """The typed error for an error answer, its fields read from the body if it has them."""
    body: Any
    try:
        body = orjson.loads(content) if content else None
    except orjson.JSONDecodeError:
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        message = str(err.get("message") or f"HTTP {status}")
        code = err.get("code")
        fields = {"code": code if isinstance(code, str) else None,
                  "type": _str(err.get("type")), "param": _str(err.get("param"))}
    elif isinstance(err, str):  # some services send {"error": "text"}
        message, fields = err, {}
    else:
        text = content.decode("utf-8", "replace").strip()
        message = text[:200] if text else f"HTTP {status}"
        fields = {}
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else APIError)
    lowered = {k.lower(): v for k, v in headers.items()}
    return cls(status, message, request_id=lowered.get("x-request-id"), body=body,
               headers=lowered, **fields)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` in seconds (a number; an HTTP date is read as seconds from now)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
