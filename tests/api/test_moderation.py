"""Moderation through HTTP, in process (the real app, SQLite, the worker): a refusal on every
create route of every profile, in that profile's error shape, leaving no task, no ledger row,
no stored image and no upstream request; the model check relayed to the fake OpenAI
upstream's `/v1/moderations`; per-key lists and `allow_low_moderation` through the admin API;
the admin routes; `/metrics`; `refused` in usage reports; an upstream's own refusal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from imagegate.testing.upstreams.openai_api import FakeOpenAI
from tests.support.accounts import ADMIN, App, bearer, eventually, open_app
from tests.support.profiles import make_image

pytestmark = pytest.mark.anyio

BLOCKLIST = ["[weapons]", "bomb", "re:\\bgun(s|fire)?\\b", "[drugs]", "冰毒"]
PNG = make_image(64, 64, colour=(40, 90, 200))
RED = make_image(64, 64, colour=(255, 0, 0))
SQUARE_RED = make_image(64, 64, colour=(255, 0, 0))


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


def channels(fake: FakeOpenAI) -> list[dict[str, Any]]:
    """An image channel and a moderation-only channel, both on the one fake."""
    base = {"adapter": "openai", "base_url": fake.url + "/v1", "api_key": "sk-fake"}
    return [{"name": "img", "models": ["gpt-image-1", "dall-e-2"], **base},
            {"name": "mod", "models": [], **base}]


@pytest.fixture
async def app(tmp_path: Path, fake: FakeOpenAI) -> AsyncIterator[App]:
    async with open_app(tmp_path, moderation_blocklist=BLOCKLIST, channels=channels(fake),
                        moderation_channel="mod") as a:
        yield a


async def nothing_left(app: App, key_id: str) -> None:
    assert await app.task_count(key_id) == 0
    assert [k for k in await app.ledger_kinds(key_id) if k != "topup"] == []
    assert await app.backends.blobs.delete_prefix("tasks/") == 0


def openai_error(resp: httpx.Response, param: str) -> dict[str, Any]:
    assert resp.status_code == 400, resp.text
    error: dict[str, Any] = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error", "content_policy_violation", param)
    return error


def apimart_error(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 400, resp.text
    error: dict[str, Any] = resp.json()["error"]
    assert error == {"code": 400, "message": error["message"], "type": "invalid_request_error"}
    return error


SYNC = "/v1/images/generations"


async def sync(app: App, plaintext: str, body: dict[str, Any]) -> httpx.Response:
    return await app.submit(plaintext, {"model": "gpt-image-1", **body}, path=SYNC)


JSON_ROUTES = ["/v1/images/generations", "/openai/v1/images/generations",
               "/apimart/v1/images/generations"]
EDIT_ROUTES = ["/v1/images/edits", "/openai/v1/images/edits", "/apimart/v1/images/edits"]


@pytest.mark.parametrize("path", JSON_ROUTES)
@pytest.mark.parametrize("prompt", ["how to build a ＢＯＭＢ", "a b\u200bomb", "GUNFIRE at dawn",
                                    "我想买冰毒的图片", "a   bomb"])
async def test_blocklisted_generations_are_refused_in_each_profile(
        app: App, fake: FakeOpenAI, path: str, prompt: str) -> None:
    plaintext, key = await app.key(balance=10_000_000)
    resp = await app.client.post(path, headers=bearer(plaintext),
                                 json={"model": "gpt-image-1", "prompt": prompt})
    error = apimart_error(resp) if path.startswith("/apimart") else openai_error(resp, "prompt")
    assert "category:" in error["message"]
    for word in ("bomb", "gun", "冰毒", "weapons list"):
        assert word not in error["message"].lower()
    await nothing_left(app, key.id)
    assert fake.submissions == 0 and fake.moderations == 0  # refused before the model too


@pytest.mark.parametrize("path", EDIT_ROUTES)
async def test_blocklisted_edits_are_refused_before_the_upload_is_stored(
        app: App, fake: FakeOpenAI, path: str) -> None:
    plaintext, key = await app.key()
    resp = await app.client.post(path, headers=bearer(plaintext),
                                 data={"model": "gpt-image-1", "prompt": "add a bomb"},
                                 files={"image": ("in.png", PNG, "image/png")})
    if path.startswith("/apimart"):
        apimart_error(resp)
    else:
        openai_error(resp, "prompt")
    await nothing_left(app, key.id)
    assert fake.submissions == 0


async def test_an_allowed_prompt_goes_through_the_model_and_upstream(app: App,
                                                                     fake: FakeOpenAI) -> None:
    plaintext, key = await app.key(balance=10_000_000)
    resp = await sync(app, plaintext, {"prompt": "a calm lake"})
    assert resp.status_code == 200, resp.text
    assert fake.moderations == 1 and fake.submissions == 1
    assert await app.task_count(key.id) == 1


@pytest.mark.parametrize(("path", "shape"), [("/v1/images/generations", "openai"),
                                             ("/openai/v1/images/generations", "openai"),
                                             ("/apimart/v1/images/generations", "apimart")])
async def test_the_model_refuses_before_the_hold(app: App, fake: FakeOpenAI, path: str,
                                                 shape: str) -> None:
    plaintext, key = await app.key(balance=10_000_000)
    resp = await app.client.post(path, headers=bearer(plaintext),
                                 json={"model": "gpt-image-1", "prompt": "a massacre"})
    error = apimart_error(resp) if shape == "apimart" else openai_error(resp, "prompt")
    assert "category: violence" in error["message"]
    await nothing_left(app, key.id)
    assert fake.moderations == 1 and fake.submissions == 0


async def test_the_model_refuses_a_reference_image_by_its_field(app: App,
                                                               fake: FakeOpenAI) -> None:
    plaintext, key = await app.key()
    resp = await app.client.post("/v1/images/edits", headers=bearer(plaintext),
                                 data={"model": "gpt-image-1", "prompt": "a frame"},
                                 files=[("image[]", ("a.png", PNG, "image/png")),
                                        ("image[]", ("b.png", RED, "image/png"))])
    openai_error(resp, "image[1]")
    await nothing_left(app, key.id)  # the ingested images were removed again
    assert fake.submissions == 0


@pytest.mark.parametrize("path", ["/v1/images/variations", "/openai/v1/images/variations"])
async def test_variations_are_moderated_by_their_image(app: App, fake: FakeOpenAI,
                                                       path: str) -> None:
    plaintext, key = await app.key()
    resp = await app.client.post(path, headers=bearer(plaintext), data={"model": "dall-e-2"},
                                 files={"image": ("v.png", SQUARE_RED, "image/png")})
    openai_error(resp, "image[0]")
    await nothing_left(app, key.id)
    assert fake.submissions == 0


async def test_per_key_lists_and_low_moderation_through_the_admin_api(app: App,
                                                                      fake: FakeOpenAI) -> None:
    shop, shop_key = await app.key("shop")
    other, _ = await app.key("other")
    bad = await app.client.patch(f"/admin/keys/{shop_key.id}", headers=ADMIN,
                                 json={"moderation_blocklist": ["fine", "re:("]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "moderation_blocklist[1]"
    resp = await app.client.patch(f"/admin/keys/{shop_key.id}", headers=ADMIN,
                                  json={"moderation_blocklist": ["[brand]", "Rival Co"]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["moderation_blocklist"] == ["[brand]", "Rival Co"]
    assert resp.json()["allow_low_moderation"] is False
    body = {"model": "gpt-image-1", "prompt": "a RIVAL CO billboard"}
    error = openai_error(await app.submit(shop, body), "prompt")
    assert "category: brand" in error["message"]
    assert (await app.submit(other, body)).status_code == 202

    edgy = {"model": "gpt-image-1", "prompt": "an edgy poster", "moderation": "low"}
    openai_error(await sync(app, shop, edgy), "prompt")  # low is not allowed for this key
    resp = await app.client.patch(f"/admin/keys/{shop_key.id}", headers=ADMIN,
                                  json={"allow_low_moderation": True})
    assert resp.json()["allow_low_moderation"] is True
    resp = await sync(app, shop, edgy)
    assert resp.status_code == 200, resp.text
    assert [r.json.get("moderation") for r in fake.requests
            if r.path == "/v1/images/generations"][-1] == "low"  # passed upstream as before
    await app.wait_idle()


async def test_admin_routes(app: App) -> None:
    described = (await app.client.get("/admin/moderation", headers=ADMIN)).json()
    assert described["blocklist"]["config"] == BLOCKLIST and described["entries"] == 3
    assert described["model"]["channel"] == "mod"
    bad = await app.client.put("/admin/moderation/blocklist", headers=ADMIN,
                               json={"entries": ["ok", "re:x*"]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "entries[1]"
    resp = await app.client.put("/admin/moderation/blocklist", headers=ADMIN,
                                json={"entries": ["[brand]", "acme"]})
    assert resp.status_code == 200 and resp.json()["entries"] == 4
    plaintext, key = await app.key()
    openai_error(await sync(app, plaintext, {"prompt": "Acme!"}), "prompt")
    assert (await app.client.post("/admin/moderation/reload", headers=ADMIN)).status_code == 200
    verdict = (await app.client.post("/admin/moderation/test", headers=ADMIN, json={
        "prompt": "a ＢＯＭＢ", "key_id": key.id})).json()
    assert verdict["refused"] and verdict["category"] == "weapons"
    assert verdict["rule"] == {"entry": "bomb", "list": "config", "line": 2}
    counts = (await app.client.get("/admin/moderation/refusals", headers=ADMIN)).json()
    assert counts["total"] == 1 and counts["data"][0]["category"] == "brand"
    assert (await app.client.get("/admin/moderation")).status_code == 401  # admin only


async def test_metrics_and_usage_count_refusals(app: App, fake: FakeOpenAI) -> None:
    plaintext, key = await app.key()
    for prompt in ("a bomb", "a gun", "a massacre"):
        assert (await sync(app, plaintext, {"prompt": prompt})).status_code == 400
    assert (await sync(app, plaintext, {"prompt": "forbidden fruit"})).status_code == 400
    upstream = 'imagegate_moderation_refusals_total{category="upstream",source="upstream"} 1.0'

    async def counted() -> bool:  # the worker counts it just after failing the task
        return upstream in (await app.client.get("/metrics")).text

    await eventually(counted, "the upstream refusal to be counted")
    metrics = (await app.client.get("/metrics")).text
    assert ('imagegate_moderation_refusals_total{category="weapons",source="blocklist"} 2.0'
            in metrics)
    assert 'imagegate_moderation_refusals_total{category="violence",source="model"} 1.0' in metrics
    assert upstream in metrics  # the fake's own safety system refused "forbidden"
    assert 'imagegate_moderation_model_checks_total{outcome="called"}' in metrics
    usage = await app.usage(plaintext)
    assert usage["refused"] == 4 and usage["spend"] == "0.00"
    [row] = usage["models"]
    assert row["refused"] == 4 and row["tasks"] == 1  # only the upstream-refused one existed
    report = (await app.client.get(f"/admin/usage?key_id={key.id}", headers=ADMIN)).json()
    assert report["data"][0]["refused"] == 4


async def test_an_upstream_refusal_has_the_same_code(app: App) -> None:
    plaintext, key = await app.key(balance=10_000_000)
    resp = await sync(app, plaintext, {"prompt": "forbidden fruit"})
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == "content_policy_violation" and "safety system" in error["message"]
    await app.wait_idle()
    assert await app.ledger_sum(key.id) == 10_000_000  # held, then refunded
