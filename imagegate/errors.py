"""One exception tree for the whole service, mapped to HTTP in exactly one place.

    ImagegateError                      500 server_error
    ├── InvalidRequestError             400 invalid_request_error
    │   ├── ContentPolicyError          400 invalid_request_error / content_policy_violation
    │   ├── PayloadTooLargeError        413 invalid_request_error / payload_too_large
    │   └── UnsupportedMediaTypeError   415 invalid_request_error / unsupported_media_type
    ├── AuthenticationError             401 authentication_error / invalid_api_key
    ├── InsufficientBalanceError        402 payment_required / insufficient_balance
    ├── PermissionDeniedError           403 permission_error
    │   └── ModelNotAllowedError        403 permission_error / model_not_allowed
    ├── NotFoundError                   404 invalid_request_error / not_found
    │   └── ModelNotFoundError          404 invalid_request_error / model_not_found
    ├── ConflictError                   409 invalid_request_error / conflict
    │   └── TaskCancelledError          409 invalid_request_error / task_cancelled
    │       └── DeadlineExceededError   409 invalid_request_error / deadline_exceeded
    ├── RateLimitError                  429 rate_limit_error
    ├── ProviderError                   502 upstream_error  (the backend failed)
    │   └── ProviderRejectedError       400 invalid_request_error (the backend blamed the request)
    └── ServiceUnavailableError         503 service_unavailable

`app.py` (routes) and `api/middleware.py` (the rest) render any of these, by path, in the
profile's shape (`api/profiles/errors.py`): OpenAI's `{"error": {message, type, param, code}}`
for /v1 and /openai/v1, apimart's `{"error": {code, message, type}}` for /apimart/v1.
Anything that is not an `ImagegateError` becomes a 500 carrying a request id.
"""

from __future__ import annotations

from typing import Any


class _Default:
    """Marks "use the class's default code", so `code=None` can mean a null code."""


DEFAULT_CODE = _Default()


class ImagegateError(Exception):
    status_code = 500
    error_type = "server_error"
    default_code: str | None = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | _Default | None = DEFAULT_CODE,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = self.default_code if isinstance(code, _Default) else code
        self.headers = headers or {}

    def to_body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }

    def to_json(self) -> dict[str, Any]:
        """How a failed task records its error (the same shape as the HTTP body's inner object)."""
        body: dict[str, Any] = self.to_body()["error"]
        return body


class InvalidRequestError(ImagegateError):
    status_code = 400
    error_type = "invalid_request_error"
    default_code = "invalid_value"


CONTENT_POLICY = "content_policy_violation"
"""The one code of every content-policy refusal: this service's own moderation (blocklists,
the moderation model) and an upstream's safety system alike."""


class ContentPolicyError(InvalidRequestError):
    """The request was refused by content moderation before anything was created or
    charged. `source` (blocklist, model) and `category` are for metrics and logs; the
    message names the category, never the matched term or the list."""

    default_code = CONTENT_POLICY

    def __init__(self, message: str, *, source: str = "blocklist", category: str = "",
                 **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.source = source
        self.category = category


class PayloadTooLargeError(InvalidRequestError):
    status_code = 413
    default_code = "payload_too_large"


class UnsupportedMediaTypeError(InvalidRequestError):
    status_code = 415
    default_code = "unsupported_media_type"


class AuthenticationError(ImagegateError):
    status_code = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"


class InsufficientBalanceError(ImagegateError):
    """The key's balance cannot cover the hold a request needs (nothing was created)."""

    status_code = 402
    error_type = "payment_required"
    default_code = "insufficient_balance"


class PermissionDeniedError(ImagegateError):
    status_code = 403
    error_type = "permission_error"
    default_code = "permission_denied"


class ModelNotAllowedError(PermissionDeniedError):
    default_code = "model_not_allowed"


class NotFoundError(ImagegateError):
    status_code = 404
    error_type = "invalid_request_error"
    default_code = "not_found"


class ModelNotFoundError(NotFoundError):
    default_code = "model_not_found"


class ConflictError(ImagegateError):
    status_code = 409
    error_type = "invalid_request_error"
    default_code = "conflict"


class TaskCancelledError(ConflictError):
    """A sync request's task was cancelled (by its owner) before it finished."""

    default_code = "task_cancelled"

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        # The official SDKs retry a 409 on their own; that would undo the owner's cancel by
        # starting a new generation.
        self.headers.setdefault("x-should-retry", "false")


class DeadlineExceededError(TaskCancelledError):
    """The task did not finish before the deadline its request set (`Cancel-After`,
    `deadline_seconds`), so it was cancelled and refunded."""

    default_code = "deadline_exceeded"


class RateLimitError(ImagegateError):
    status_code = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class ProviderError(ImagegateError):
    """The backend failed (timeout, 5xx, a sandbox-injected failure). Retryable by routing.

    `retryable` False means another try cannot help (e.g. an interrupted synchronous upstream
    call: it may have been charged upstream, so it is failed, never resubmitted);
    `retry_after` carries an upstream's `Retry-After` (seconds) for the routing's backoff."""

    status_code = 502
    error_type = "upstream_error"
    default_code = "upstream_error"

    def __init__(self, message: str, *, retryable: bool = True,
                 retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retryable = retryable
        self.retry_after = retry_after


class ProviderRejectedError(ProviderError):
    """The backend refused the request itself (content policy, bad size): never retried,
    never charged; the client sees the upstream's message."""

    status_code = 400
    error_type = "invalid_request_error"
    default_code = "upstream_rejected"

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("retryable", False)
        super().__init__(message, **kwargs)


class ServiceUnavailableError(ImagegateError):
    status_code = 503
    error_type = "service_unavailable"
    default_code = "service_unavailable"


class BackendUnavailableError(Exception):
    """A backend the process needs (the database, Redis, the blob store) cannot be reached or
    refuses us. Not an HTTP error: it stops a start (`imagegate serve | worker` print it and
    exit) and marks a check of `/readyz` as failed. `setting` names what to fix, so the
    message can say it."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting
        self.message = message


def error_from_json(data: dict[str, Any]) -> ImagegateError:
    """Rebuild the exception a failed task recorded, so a sync waiter can raise it."""
    wanted = data.get("type")
    for cls in _all_subclasses(ImagegateError):
        if cls.error_type == wanted and cls.default_code == data.get("code"):
            return cls(str(data.get("message", "")), param=data.get("param"))
    for cls in _all_subclasses(ImagegateError):
        if cls.error_type == wanted:
            return cls(str(data.get("message", "")), param=data.get("param"), code=data.get("code"))
    return ImagegateError(
        str(data.get("message", "")), param=data.get("param"), code=data.get("code")
    )


def _all_subclasses(cls: type[ImagegateError]) -> list[type[ImagegateError]]:
    out: list[type[ImagegateError]] = [cls]
    for sub in cls.__subclasses__():
        out.extend(_all_subclasses(sub))
    return out
