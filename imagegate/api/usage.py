"""`GET /v1/usage`: the calling key's own balance and usage over a time range."""

from __future__ import annotations

from fastapi import APIRouter, Request

from imagegate.accounts.when import parse_when
from imagegate.api.deps import UsageDep, api_key
from imagegate.api.responses import JSONResponse

router = APIRouter(tags=["usage"])


@router.get("/v1/usage")
async def own_usage(request: Request, usage: UsageDep, since: str | None = None,
                    until: str | None = None) -> JSONResponse:
    """`since`/`until`: epoch seconds or ISO-8601 (UTC unless an offset is given); the range
    is [since, until), by default everything up to now. Amounts are decimal strings."""
    key = await api_key(request)
    report = await usage.for_key(
        key.id,
        None if since is None else parse_when(since, param="since"),
        None if until is None else parse_when(until, param="until"),
    )
    return JSONResponse(report)
