"""`/healthz` (the process answers) and `/readyz` (its backends answer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.e2e import free_port
from tests.support.profiles import open_env
from tests.support.redis import REDIS_URL, require_redis

pytestmark = pytest.mark.anyio


async def test_ready_when_the_database_and_blob_store_answer(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        r = await env.client.get("/readyz")
        assert r.status_code == 200
        assert r.json() == {"status": "ready",
                            "checks": {"database": "ok", "blob_store": "ok"}}
        assert (await env.client.head("/readyz")).status_code == 200
        assert (await env.client.get("/healthz")).json() == {"status": "ok"}


async def test_redis_is_checked_when_configured(tmp_path: Path) -> None:
    await require_redis()
    async with open_env(tmp_path, redis_url=REDIS_URL) as env:
        r = await env.client.get("/readyz")
        assert r.status_code == 200 and r.json()["checks"]["redis"] == "ok"


async def test_a_backend_that_does_not_answer_makes_it_unready_not_dead(tmp_path: Path
                                                                        ) -> None:
    down = f"redis://:pw@127.0.0.1:{free_port()}/0"  # nothing listens there
    async with open_env(tmp_path, redis_url=down) as env:
        r = await env.client.get("/readyz")
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "unavailable"
        assert body["checks"]["database"] == "ok" and body["checks"]["blob_store"] == "ok"
        assert body["checks"]["redis"].startswith("cannot connect to Redis")
        assert "pw@" not in r.text
        assert (await env.client.get("/healthz")).status_code == 200


async def test_metrics_show_the_event_bus(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        text = (await env.client.get("/metrics")).text
        assert "\nimagegate_event_bus_connected 1.0\n" in text


async def test_a_worker_shows_metrics_and_probes_on_its_own_app(tmp_path: Path) -> None:
    import httpx

    from imagegate.app import build_probe_app

    async with open_env(tmp_path) as env:
        probe = build_probe_app(env.backends)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=probe),
                                     base_url="http://worker") as client:
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).json()["status"] == "ready"
            assert "imagegate_tasks" in (await client.get("/metrics")).text
            assert (await client.get("/v1/models")).status_code == 404  # no API here
