"""`GET /v1/usage`: the calling key's own balance and usage over a time range."""

from __future__ import annotations

from fastapi import APIRouter, Request

from imagegate.accounts.when import parse_when
from imagegate.api import openapi
from imagegate.api.deps import UsageDep, api_key
from imagegate.api.responses import JSONResponse

router = APIRouter(tags=["usage"])

_WHEN = {"type": "string", "examples": ["1767225600", "2026-01-01", "2026-01-01T12:00:00+02:00"]}
_PARAMETERS = [
    openapi.query("since", _WHEN, "Start of the range (inclusive): epoch seconds or ISO-8601 "
                  "(UTC unless an offset is given). Default: the beginning."),
    openapi.query("until", _WHEN, "End of the range (exclusive), later than since. "
                  "Default: now."),
]


# The range is read from the query by the route (not FastAPI parameters), so the document
# declares them as what they are, optional strings, and a bad one answers the usual 400.
@router.get("/v1/usage", openapi_extra={"parameters": _PARAMETERS},
            responses=openapi.responses(
                {200: openapi.json_ok("Usage", "The key's balance and usage")},
                (400, 401, 500), why={400: "since or until is not a time, or until is not "
                                           "later than since"}))
async def own_usage(request: Request, usage: UsageDep) -> JSONResponse:
    """`since`/`until`: epoch seconds or ISO-8601 (UTC unless an offset is given); the range
    is [since, until), by default everything up to now. Amounts are decimal strings."""
    key = await api_key(request)
    since = request.query_params.get("since")
    until = request.query_params.get("until")
    report = await usage.for_key(
        key.id,
        None if since is None else parse_when(since, param="since"),
        None if until is None else parse_when(until, param="until"),
    )
    return JSONResponse(report)
