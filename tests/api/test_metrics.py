"""`/metrics` shows per-channel series after routed calls; `/admin/channels` needs the admin
token and never shows a key, in the shape `imagegate channels` renders. (The admin client is
tested in tests/client, the command itself in tests/cli.)"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from imagegate.api import deps
from imagegate.api import metrics as metrics_api
from imagegate.cli.channels import live_table
from imagegate.config import load_settings
from imagegate.domain.catalog import load_catalog
from imagegate.errors import ImagegateError, ProviderError, ProviderRejectedError
from imagegate.metrics import Metrics
from imagegate.providers.factory import build_providers
from imagegate.providers.registry import ProviderRegistry
from tests.support.routing import Scripted, make_job, no_progress

pytestmark = pytest.mark.anyio

ADMIN = "iga_admin-token-for-tests"
SECRET = "sk-channel-secret-value"


async def _error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ImagegateError)
    return JSONResponse(exc.to_body(), status_code=exc.status_code)


def small_app(registry: ProviderRegistry, metrics: Metrics) -> FastAPI:
    app = FastAPI()
    # Only what these routes depend on, nothing else built.
    app.dependency_overrides.update({deps.providers: lambda: registry,
                                     deps.metrics: lambda: metrics,
                                     deps.admin_token: lambda: ADMIN})
    app.add_exception_handler(ImagegateError, _error)
    app.include_router(metrics_api.router)
    return app


class Env:
    def __init__(self, client: httpx.AsyncClient, registry: ProviderRegistry,
                 fakes: dict[str, Scripted]) -> None:
        self.client, self.registry, self.fakes = client, registry, fakes


@pytest.fixture
async def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    fakes = {
        "alpha": Scripted("alpha", [ProviderError("upstream 503", code="upstream_error"),
                                    ProviderRejectedError("flagged by moderation")]),
        "beta": Scripted("beta"),
    }
    settings = load_settings(None, data_dir=tmp_path, upstream_backoff_seconds=0, channels=[
        {"name": "alpha", "adapter": "openai_compatible", "base_url": "https://alpha.example/v1",
         "api_key": SECRET, "models": ["gpt-image-2"], "priority": 1, "concurrency": 3},
        {"name": "beta", "adapter": "apimart", "base_url": "https://beta.example",
         "api_key": SECRET, "models": ["gpt-image-2", "gpt-image-1"]},
    ])
    metrics = Metrics()
    registry = build_providers(
        settings, load_catalog(), metrics=metrics, rng=random.Random(5),
        adapters={"openai_compatible": lambda ch, dl: fakes["alpha"],
                  "apimart": lambda ch, dl: fakes["beta"]})
    app = small_app(registry, metrics)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://testserver") as client:
            yield Env(client, registry, fakes)
    finally:
        await registry.aclose()


async def routed_calls(env: Env) -> None:
    route = env.registry.for_model("gpt-image-2")
    await route.generate(make_job("t1"), no_progress)  # alpha 503, then beta
    with pytest.raises(ProviderRejectedError):
        await route.generate(make_job("t2"), no_progress)  # alpha rejects: not retried
    await route.generate(make_job("t3"), no_progress)  # alpha succeeds


def sample(text: str, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{"):
            got = line[len(name) + 1:line.index("}")].split(",")
            if ",".join(sorted(got)) == want:
                return float(line.rsplit(" ", 1)[1])
    return None


async def test_scrape_shows_per_channel_series(env: Env) -> None:
    await routed_calls(env)
    resp = await env.client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    text = resp.text
    total = "imagegate_upstream_requests_total"
    assert sample(text, total, channel="alpha", model="gpt-image-2", outcome="error") == 1
    assert sample(text, total, channel="alpha", model="gpt-image-2", outcome="rejected") == 1
    assert sample(text, total, channel="alpha", model="gpt-image-2", outcome="success") == 1
    assert sample(text, total, channel="beta", model="gpt-image-2", outcome="success") == 1
    assert sample(text, "imagegate_upstream_request_seconds_count", channel="alpha") == 3
    assert sample(text, "imagegate_upstream_breaker_state", channel="alpha") == 0
    assert sample(text, "imagegate_upstream_in_flight", channel="beta") == 0
    assert SECRET not in text


async def test_two_metrics_objects_do_not_clash() -> None:
    one, two = Metrics(), Metrics()
    one.observe_call("c", "m", "success", 0.1)
    assert b'channel="c"' in one.render()[0]
    assert b'channel="c"' not in two.render()[0]


async def test_task_gauge_is_read_at_scrape_time() -> None:
    metrics = Metrics()
    counts = {"queued": 2, "succeeded": 5}

    async def source() -> dict[str, int]:
        return dict(counts)

    metrics.watch_tasks(source)
    await metrics.refresh()
    body = metrics.render()[0].decode()
    assert sample(body, "imagegate_tasks", status="queued") == 2
    assert sample(body, "imagegate_tasks", status="succeeded") == 5


async def test_admin_channels_needs_the_admin_token(env: Env) -> None:
    assert (await env.client.get("/admin/channels")).status_code == 401
    wrong = await env.client.get("/admin/channels", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 403


async def test_admin_channels_live_state_without_secrets(env: Env) -> None:
    await routed_calls(env)
    resp = await env.client.get("/admin/channels", headers={"authorization": f"Bearer {ADMIN}"})
    assert resp.status_code == 200
    assert SECRET not in resp.text
    rows = {r["name"]: r for r in resp.json()}
    alpha = rows["alpha"]
    assert alpha["adapter"] == "openai_compatible" and alpha["host"] == "alpha.example"
    assert alpha["models"] == ["gpt-image-2"]
    assert (alpha["priority"], alpha["weight"], alpha["official"]) == (1, 1, False)
    assert alpha["breaker"] == "closed" and alpha["in_flight"] == 0
    assert alpha["concurrency"] == 3
    # error + rejected + success: the rejection is the request's fault, not an error.
    assert (alpha["requests"], alpha["errors"]) == (3, 1)
    assert alpha["error_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert alpha["health"] == "degraded" and alpha["last_error"] == "upstream 503"
    assert alpha["p50_seconds"] is not None
    assert rows["beta"]["models"] == ["gpt-image-2", "gpt-image-1"]
    assert rows["beta"]["health"] == "ok" and rows["beta"]["last_error"] is None
    live_table(resp.json())  # the CLI renders exactly this shape
