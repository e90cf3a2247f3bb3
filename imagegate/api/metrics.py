"""`GET /metrics` (Prometheus) and `GET /admin/channels` (the live state of each upstream).

`/metrics` needs no credentials, as with most exporters: it holds counts, latencies and
channel names, never keys, prompts or task ids, and Prometheus scrapers rarely carry tokens.
Operators who consider channel names sensitive keep `/metrics` off their public proxy.
`/admin/channels` is an admin route (the admin token) because it shows upstream hosts and
error messages.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Response

from imagegate.api.admin_auth import require_admin
from imagegate.api.deps import MetricsDep, ProvidersDep
from imagegate.providers.breaker import BreakerState
from imagegate.providers.routing import Channel

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def prometheus(metrics: MetricsDep) -> Response:
    await metrics.refresh()
    body, content_type = metrics.render()
    return Response(body, headers={"content-type": content_type})


def host_of(base_url: str) -> str:
    """`host[:port]` of a base URL: no scheme, no path, and never any userinfo."""
    return urlsplit(base_url).netloc.rpartition("@")[2]


def health(channel: Channel) -> str:
    state = channel.breaker.state
    if state is BreakerState.OPEN:
        return "down"
    if state is BreakerState.HALF_OPEN:
        return "probing"
    return "degraded" if channel.stats().errors else "ok"


def channel_info(channel: Channel) -> dict[str, Any]:
    """One channel as `/admin/channels` shows it (no key, no full URL)."""
    cfg = channel.config
    stats = channel.stats()
    return {
        "name": cfg.name,
        "adapter": cfg.adapter,
        "host": host_of(cfg.base_url),
        "models": list(cfg.models),
        "priority": cfg.priority,
        "weight": cfg.weight,
        "official": cfg.official,
        "health": health(channel),
        "breaker": channel.breaker.state.label,
        "breaker_retry_in": round(channel.breaker.retry_in(), 3),
        "consecutive_failures": channel.breaker.consecutive_failures,
        "in_flight": channel.in_flight,
        "concurrency": cfg.concurrency,
        "requests": stats.requests,
        "errors": stats.errors,
        "error_rate": round(stats.error_rate, 4),
        "p50_seconds": None if stats.p50_seconds is None else round(stats.p50_seconds, 4),
        "last_error": stats.last_error,
    }


@router.get("/admin/channels", dependencies=[Depends(require_admin)], include_in_schema=False)
async def admin_channels(providers: ProvidersDep) -> list[dict[str, Any]]:
    """Every configured channel's live state (empty when the sandbox serves everything)."""
    return [channel_info(c) for c in providers.channels()]
