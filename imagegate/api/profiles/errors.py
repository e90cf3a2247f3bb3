"""How each surface spells an error. The exception tree (`imagegate.errors`) decides status
and meaning once; a profile only chooses the body's shape, picked here by path prefix so the
route handlers, the app's exception handlers and the outer middleware all agree.

- native (`/v1`) and openai (`/openai/v1`): OpenAI's `{"error": {message, type, param, code}}`.
- apimart (`/apimart/v1`): the 002 seed's `{"error": {code: <HTTP status>, message, type}}`.

Unknown paths are not any profile's: they answer 404 in the native shape wherever they are.
"""

from __future__ import annotations

from typing import Any

from imagegate.errors import ImagegateError

APIMART_PREFIX = "/apimart/"

# The 002 seed documents 400/401/402/429/500/503 with these types; the statuses it does not
# document keep their meaning and get the nearest type. Keyed on status, not class, so an
# error class added later (402 from billing) is spelled right without touching this module.
_APIMART_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "payment_required",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "service_unavailable",
    504: "service_unavailable",
}
# The seed's 503 is "upstream temporarily unavailable" — what our 502 (the backend failed)
# means; clients written against the seed retry a 503 and know no 502.
_APIMART_STATUS: dict[int, int] = {502: 503}


def apimart_error(exc: ImagegateError, status: int | None = None) -> tuple[dict[str, Any], int]:
    """(inner error object, HTTP status) in the apimart profile's spelling."""
    status = _APIMART_STATUS.get(status or exc.status_code, status or exc.status_code)
    kind = _APIMART_TYPES.get(status, "server_error" if status >= 500 else exc.error_type)
    return {"code": status, "message": exc.message, "type": kind}, status


def render_error(exc: ImagegateError, path: str | None, status: int | None = None
                 ) -> tuple[dict[str, Any], int]:
    """(body, HTTP status) for `exc` raised while serving `path`. `status` overrides the
    class's own (405 is raised as a 400-class error); `path=None` means the native shape."""
    if path is not None and path.startswith(APIMART_PREFIX):
        inner, code = apimart_error(exc, status)
        return {"error": inner}, code
    return exc.to_body(), status or exc.status_code
