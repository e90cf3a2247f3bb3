"""The fake OpenAI upstream's `POST /v1/moderations` (moderation_rules), driven by the
official `openai` SDK: the request forms OpenAI documents (a string, strings, multi-modal
text and image_url inputs), results per category, and the fake's faults. (Its latency is
shown where it matters, by the gateway's time limit: tests/moderation/test_service.py.)"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest

from imagegate.testing.upstreams.moderation_rules import CATEGORIES
from imagegate.testing.upstreams.openai_api import FakeOpenAI
from tests.support.profiles import make_image

pytestmark = pytest.mark.anyio


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


def sdk(fake: FakeOpenAI) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="sk-fake", base_url=fake.url + "/v1", max_retries=0)


def image_input(colour: tuple[int, int, int]) -> dict[str, Any]:
    url = "data:image/png;base64," + base64.b64encode(make_image(32, 32, colour=colour)).decode()
    return {"type": "image_url", "image_url": {"url": url}}


async def test_a_harmless_text_is_not_flagged(fake: FakeOpenAI) -> None:
    async with sdk(fake) as client:
        answer = await client.moderations.create(input="a lighthouse at dusk",
                                                 model="omni-moderation-latest")
    assert answer.model == "omni-moderation-latest" and answer.id.startswith("modr-")
    [result] = answer.results
    assert result.flagged is False
    raw = result.model_dump(by_alias=True)
    assert set(raw["categories"]) == set(CATEGORIES) == set(raw["category_scores"])
    assert all(0 <= v < 0.5 for v in raw["category_scores"].values())
    assert fake.moderations == 1


async def test_text_is_flagged_by_category(fake: FakeOpenAI) -> None:
    async with sdk(fake) as client:
        answer = await client.moderations.create(input=["so much GORE", "a nude", "fine"])
    first, second, third = answer.results
    assert first.flagged and first.categories.violence and first.categories.violence_graphic
    assert first.category_scores.violence == pytest.approx(0.91)
    assert first.category_applied_input_types.violence == ["text"]
    assert second.flagged and second.categories.sexual and not second.categories.violence
    assert not third.flagged


async def test_a_score_under_the_flag_is_reported_unflagged(fake: FakeOpenAI) -> None:
    async with sdk(fake) as client:
        [result] = (await client.moderations.create(input="a borderline scene")).results
    assert not result.flagged and result.category_scores.violence == pytest.approx(0.45)


async def test_images_are_classified_by_colour(fake: FakeOpenAI) -> None:
    async with sdk(fake) as client:
        red = await client.moderations.create(
            input=[{"type": "text", "text": "a picture"}, image_input((255, 0, 0))])
        blue = await client.moderations.create(input=[image_input((0, 0, 255))])
    [result] = red.results  # one result for a multi-modal array
    assert result.flagged and result.categories.violence_graphic
    assert result.category_applied_input_types.violence_graphic == ["text", "image"]
    assert result.category_applied_input_types.hate == ["text"]  # text-only category
    assert not blue.results[0].flagged


async def test_terms_and_colours_can_be_replaced(fake: FakeOpenAI) -> None:
    fake.moderation_terms = {"pineapple": {"illicit": 0.7}}
    async with sdk(fake) as client:
        [result] = (await client.moderations.create(input="PINEAPPLE pizza")).results
    assert result.flagged and result.categories.illicit


@pytest.mark.parametrize(("body", "status", "code"), [
    ({}, 400, "missing_required_parameter"),
    ({"input": []}, 400, "invalid_type"),
    ({"input": [{"type": "video"}]}, 400, "invalid_type"),
    ({"input": "x", "model": "no-such-model"}, 404, "model_not_found"),
    ({"input": "x", "temperature": 1}, 400, "unknown_parameter"),
    ({"input": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]},
     400, "invalid_value"),
    ({"input": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
     400, "invalid_image"),
    ({"model": "text-moderation-latest", "input": [image_input((1, 2, 3))]}, 400,
     "invalid_value"),
])
async def test_refusals_in_openai_error_shape(fake: FakeOpenAI, body: dict[str, Any],
                                              status: int, code: str) -> None:
    async with aiohttp.ClientSession(fake.url) as http, http.post(
            "/v1/moderations", json=body, headers={"Authorization": "Bearer sk-fake"}) as r:
        answer = await r.json()
    assert r.status == status, answer
    assert set(answer["error"]) == {"message", "type", "param", "code"}
    assert answer["error"]["code"] == code
    assert fake.moderations == 0


async def test_faults_and_auth(fake: FakeOpenAI) -> None:
    fake.fail_next(503)
    async with sdk(fake) as client:
        with pytest.raises(openai.InternalServerError):
            await client.moderations.create(input="x")
        assert (await client.moderations.create(input="x")).results[0].flagged is False
    async with openai.AsyncOpenAI(api_key="wrong", base_url=fake.url + "/v1",
                                  max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError):
            await client.moderations.create(input="x")

