"""The process-wide budget of body bytes (`BodyBudgetMiddleware`): concurrent large bodies
beyond `max_inflight_body_bytes` get 503 `server_busy` with `Retry-After` (never a 500), and
what they held is given back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support.profiles import Env, open_env

pytestmark = pytest.mark.anyio

MIB = 1024 * 1024
BODY = b'{"prompt": "a held body", "pad": "' + b"a" * 600_000 + b'"}'
HALF = len(BODY) // 2
ASYNC = "/v1/images/generations?async=true"


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with open_env(tmp_path, run_workers=False, max_inflight_body_bytes=MIB,
                        inflight_body_wait_seconds=0.2) as e:
        yield e


async def held_body(gate: asyncio.Event) -> AsyncIterator[bytes]:
    """Half the body, then nothing until `gate` opens: the request holds its bytes meanwhile."""
    yield BODY[:HALF]
    await gate.wait()
    yield BODY[HALF:]


async def post(env: Env, content: AsyncIterator[bytes] | bytes, *, length: bool
               ) -> httpx.Response:
    headers = {**env.auth, "Content-Type": "application/json"}
    if length:
        headers["Content-Length"] = str(len(BODY))
    return await env.client.post(ASYNC, content=content, headers=headers)


def assert_busy(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "1"
    assert r.json()["error"] == {
        "message": r.json()["error"]["message"], "type": "service_unavailable",
        "param": "body", "code": "server_busy"}


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "chunked"])
async def test_concurrent_large_bodies_beyond_the_budget(env: Env, length: bool) -> None:
    gate = asyncio.Event()
    requests = [asyncio.ensure_future(post(env, held_body(gate), length=length))
                for _ in range(6)]
    # Six bodies of 600 KB cannot be held at once under 1 MiB. With a Content-Length a body
    # is admitted whole, so one holds its room and five are refused; chunked bodies count as
    # they arrive, so three halves fit and three are refused. Either way they are answered
    # while the others still hold their bytes (the gate is closed).
    refused_early = 5 if length else 3
    answered = asyncio.Event()

    def one_more(_: object) -> None:
        if sum(r.done() for r in requests) >= refused_early:
            answered.set()

    for r in requests:
        r.add_done_callback(one_more)
    async with asyncio.timeout(20):
        await answered.wait()
    gate.set()
    answers = await asyncio.gather(*requests)
    statuses = sorted(r.status_code for r in answers)
    assert 500 not in statuses and set(statuses) <= {202, 503}
    busy = [r for r in answers if r.status_code == 503]
    assert len(busy) >= refused_early
    for r in busy:
        assert_busy(r)
    # Nothing half-created: one task per accepted request, and every byte given back.
    assert await env.task_count() == statuses.count(202)
    if length:
        assert statuses == [202] + [503] * 5
    assert env.backends.body_budget.used == 0
    again = await post(env, BODY, length=True)
    assert again.status_code == 202, again.text


async def test_bodies_within_the_budget_wait_their_turn(env: Env) -> None:
    # Three 600 KB bodies one after another never meet: the budget is per moment, not a quota.
    for _ in range(3):
        assert (await post(env, BODY, length=True)).status_code == 202
    assert env.backends.body_budget.used == 0
