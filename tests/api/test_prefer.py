"""`Prefer` (RFC 7240) on the native create routes: the parser, and `wait=N` answering 200
when the task finishes in time and 202 (Location, Retry-After, Preference-Applied) when not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from imagegate.api.prefer import Preferences, parse
from tests.support.profiles import Env, data_url, make_image, open_env

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(("values", "expected"), [
    ([], Preferences()),
    (["respond-async"], Preferences(respond_async=True)),
    (["wait=5"], Preferences(wait=5)),
    (["wait=5, respond-async"], Preferences(respond_async=True, wait=5)),
    (["Respond-Async ,  WAIT = 7"], Preferences(respond_async=True, wait=7)),
    (["respond-async", "wait=3"], Preferences(respond_async=True, wait=3)),  # two headers
    (['wait="4"'], Preferences(wait=4)),
    (["wait=4; foo=bar, handling=lenient"], Preferences(wait=4)),
    (["wait=2, wait=9"], Preferences(wait=2)),  # the first instance counts (§2)
    (['foo="a, wait=9", wait=1'], Preferences(wait=1)),  # a comma inside quotes
    (["wait=-1"], Preferences()), (["wait=1.5"], Preferences()), (["wait="], Preferences()),
    (["wait=٣"], Preferences()), (["return=minimal"], Preferences()),
    (["respond-asynchronously"], Preferences()),
])
def test_parse(values: list[str], expected: Preferences) -> None:
    assert parse(values) == expected


def test_applied() -> None:
    both = Preferences(respond_async=True, wait=5)
    assert both.applied(5, answered_async=True) == "respond-async, wait=5"
    assert both.applied(5, answered_async=False) == "wait=5"
    assert Preferences(respond_async=True).applied(None, answered_async=True) == "respond-async"
    assert Preferences().applied(None, answered_async=True) is None


GENERATE = ("/v1/images/generations", {"prompt": "a lighthouse"})
EDIT = ("/v1/images/edits", {"prompt": "watercolour",
                             "images": [{"image_url": data_url(make_image())}]})
VARIATION = ("/v1/images/variations", {"model": "dall-e-2", "image": data_url(make_image())})
ROUTES = [GENERATE, EDIT, VARIATION]


def assert_accepted(r: httpx.Response, applied: str) -> str:
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["data"] == [] and body["task_id"]
    assert r.headers["location"] == f"/v1/tasks/{body['task_id']}"
    assert r.headers["retry-after"] == "2"
    assert r.headers["preference-applied"] == applied
    task_id: str = body["task_id"]
    return task_id


@pytest.mark.parametrize(("path", "body"), ROUTES, ids=["generations", "edits", "variations"])
async def test_wait_answers_202_when_not_done_in_time(tmp_path: Path, path: str,
                                                      body: dict[str, object]) -> None:
    async with open_env(tmp_path, sandbox_latency=3.0) as env:
        r = await env.post(path, body, headers={"Prefer": "wait=1"})
        task_id = assert_accepted(r, "wait=1")
        # The task runs on: the poll finds it, not yet finished.
        task = await env.client.get(f"/v1/tasks/{task_id}", headers=env.auth)
        assert task.json()["status"] in ("queued", "in_progress")


@pytest.mark.parametrize(("path", "body"), ROUTES, ids=["generations", "edits", "variations"])
async def test_wait_answers_200_when_done_in_time(tmp_path: Path, path: str,
                                                  body: dict[str, object]) -> None:
    async with open_env(tmp_path, sandbox_latency=0.0) as env:
        r = await env.post(path, body, headers={"Prefer": "wait=1"})
        assert r.status_code == 200, r.text
        assert r.headers["preference-applied"] == "wait=1"
        assert r.json()["data"] and "location" not in r.headers


async def test_wait_with_respond_async(tmp_path: Path) -> None:
    """`respond-async, wait=1` waits first (RFC 7240 §4.3): 200 if done, else 202."""
    async with open_env(tmp_path, sandbox_latency=3.0) as env:
        r = await env.post(*GENERATE, headers={"Prefer": "respond-async, wait=1"})
        assert_accepted(r, "respond-async, wait=1")
    async with open_env(tmp_path / "fast") as env:
        r = await env.post(*GENERATE, headers={"Prefer": "respond-async, wait=1"})
        assert r.status_code == 200 and r.headers["preference-applied"] == "wait=1"
        # A wait also bounds the other async triggers' "answer at once".
        r = await env.post("/v1/images/generations?async=true", GENERATE[1],
                           headers={"Prefer": "wait=1"})
        assert r.status_code == 200, r.text


async def test_respond_async_alone_answers_at_once(env_fast: Env) -> None:
    r = await env_fast.post(*GENERATE, headers={"Prefer": "respond-async"})
    assert_accepted(r, "respond-async")


async def test_no_header_keeps_the_default(env_fast: Env) -> None:
    r = await env_fast.post(*GENERATE)
    assert r.status_code == 200 and "preference-applied" not in r.headers
    r = await env_fast.post("/v1/images/generations?async=true", GENERATE[1])
    assert r.status_code == 202 and "preference-applied" not in r.headers
    # Preferences it does not know are ignored, as RFC 7240 asks: no 400.
    r = await env_fast.post(*GENERATE, headers={"Prefer": "return=minimal, wait=abc"})
    assert r.status_code == 200 and "preference-applied" not in r.headers


async def test_wait_is_capped_at_sync_wait_seconds(tmp_path: Path) -> None:
    async with open_env(tmp_path, sandbox_latency=3.0, sync_wait_seconds=1) as env:
        r = await env.post(*GENERATE, headers={"Prefer": "wait=300"})
        assert_accepted(r, "wait=1")


async def test_wait_zero_hands_over_a_running_task(tmp_path: Path) -> None:
    async with open_env(tmp_path, sandbox_latency=1.0) as env:
        r = await env.post(*GENERATE, headers={"Prefer": "wait=0"})
        assert_accepted(r, "wait=0")


async def test_openai_profile_ignores_prefer(env_fast: Env) -> None:
    """OpenAI's API has no asynchronous answer, so the strict profile stays synchronous."""
    r = await env_fast.post("/openai/v1/images/generations", {"prompt": "x"},
                            headers={"Prefer": "respond-async, wait=0"})
    assert r.status_code == 200 and "preference-applied" not in r.headers
    assert set(r.json()) >= {"created", "data"}


@pytest.fixture
async def env_fast(tmp_path: Path) -> AsyncIterator[Env]:
    async with open_env(tmp_path) as env:
        yield env
