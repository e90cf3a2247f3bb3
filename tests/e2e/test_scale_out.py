"""Scale-out, end to end, as real processes: PostgreSQL + Redis + S3 (moto on loopback),
2 API processes (`run_workers = false`) and 2 `imagegate worker` processes, each with a data
directory of its own.

500 async tasks are submitted round-robin to both APIs (two keys, sandbox latency); meanwhile
the official SDK streams a task on API A (its partial images come from a worker, through
Redis) and makes a synchronous request on API B. Then one worker is killed with SIGKILL
while it runs tasks of a second part going in, then an API process, and both are restarted;
then Redis is stopped for a few seconds while the second half is submitted, and started
again. In the end every task is terminal (succeeded), none succeeded twice, each key's
balance equals its ledger, every result downloads through both APIs, and the objects are in
the bucket.

Every wait is bounded; nothing asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import openai
import pytest

from tests.contracts.conftest import fresh_postgres
from tests.support.cluster import Cluster, Proc
from tests.support.e2e import TERMINAL, image_format
from tests.support.redis import RedisProcess
from tests.support.s3 import S3Server

pytestmark = pytest.mark.e2e

TASKS = 500
FIRST, HALF = 150, 250  # the first part; the second ends here, the kill lands while it goes in
PREFIX = "ig/"
SECRETS = {"IMAGEGATE_SIGNING_SECRET": "scale-out-signing-secret-0123456789",
           "IMAGEGATE_ADMIN_TOKEN": "iga_scale-out-admin-token-0123456789"}
# Small, cheap images: the test is about the processes, not the pixels.
BODY = {"model": "dall-e-2", "size": "256x256"}
PRICE = 20_000  # dall-e-2 1k, in micro-units (0.02)


@contextlib.contextmanager
def services(tmp_path: Path) -> Iterator[tuple[str, RedisProcess, S3Server]]:
    redis = RedisProcess(tmp_path).start()
    s3 = S3Server().start()
    try:
        with fresh_postgres() as pg:
            yield pg.replace("postgresql+asyncpg://", "postgresql://", 1), redis, s3
    finally:
        s3.stop()
        redis.stop()


async def until(what: str, check: Callable[[], Awaitable[bool]], timeout: float,
                every: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        assert time.monotonic() < deadline, f"still waiting after {timeout:.0f}s: {what}"
        await asyncio.sleep(every)


class Run:
    """The scenario's state: the processes (replaced when restarted) and what was made."""

    def __init__(self, cluster: Cluster, pg: str, redis: RedisProcess, s3: S3Server,
                 bucket: str, keys: list[str]) -> None:
        self.cluster, self.pg, self.redis, self.s3, self.bucket = cluster, pg, redis, s3, bucket
        self.keys = keys
        self.apis: list[Proc] = []
        self.workers: list[Proc] = []
        self.tasks: dict[str, str] = {}  # task id -> the key that owns it

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.pg)
        try:
            rows: list[asyncpg.Record] = await conn.fetch(query, *args)
            return rows
        finally:
            await conn.close()

    async def submit(self, http: httpx.AsyncClient, numbers: range) -> None:
        targets = itertools.cycle([(api, key) for api in self.apis for key in self.keys])
        plan = [(n, *next(targets)) for n in numbers]
        gate = asyncio.Semaphore(24)

        async def one(n: int, api: Proc, key: str) -> None:
            async with gate:
                r = await http.post(f"{api.base_url}/v1/images/generations?async=true",
                                    json={**BODY, "prompt": f"scale-out {n}"},
                                    headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 202, r.text
            self.tasks[r.json()["task_id"]] = key

        await asyncio.gather(*(one(*p) for p in plan))

    async def bus_connected(self, http: httpx.AsyncClient, worker: Proc) -> float | None:
        with contextlib.suppress(httpx.TransportError):
            text = (await http.get(worker.base_url + "/metrics")).text
            m = re.search(r"^imagegate_event_bus_connected (\S+)$", text, re.M)
            return float(m.group(1)) if m else None
        return None


async def stream_on(api: Proc, key: str) -> list[Any]:
    """The official SDK's stream of one task: its partial images come from a worker process
    (the API runs none) through Redis."""
    async with openai.AsyncOpenAI(base_url=api.base_url + "/v1", api_key=key,
                                  max_retries=0, timeout=90) as client:
        stream = await client.images.generate(model="gpt-image-1", prompt="a streamed harbour",
                                              size="1024x1024", stream=True, partial_images=2)
        return [event async for event in stream]


async def sync_on(api: Proc, key: str) -> str:
    async with openai.AsyncOpenAI(base_url=api.base_url + "/v1", api_key=key,
                                  max_retries=0, timeout=90) as client:
        resp = await client.images.generate(prompt="a synchronous lighthouse", **BODY)
    assert resp.data and resp.data[0].url
    return resp.data[0].url


async def scenario(run: Run) -> None:
    a, b = run.apis
    w1, _w2 = run.workers
    # Idle connections are dropped before uvicorn's own 5 s keep-alive ends them: reusing
    # one the server is closing (after the Redis outage's pause) is "disconnected without
    # sending a response", a race of the test's client, not a fault of the server.
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(keepalive_expiry=2)) as http:
        # 1. The first half, with a stream on API A and a sync request on API B meanwhile.
        streamed = asyncio.create_task(stream_on(a, run.keys[0]))
        synced = asyncio.create_task(sync_on(b, run.keys[1]))
        await run.submit(http, range(0, FIRST))
        async with asyncio.timeout(120):
            events = await streamed
            sync_url = await synced
        kinds = [e.type for e in events]
        assert kinds == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
        assert image_format(base64.b64decode(events[-1].b64_json)) == "png"
        path = sync_url.split("/p/img/", 1)[1]
        for api in run.apis:  # a URL signed by B's process downloads through A's as well
            got = await http.get(f"{api.base_url}/p/img/{path}")
            assert got.status_code == 200 and image_format(got.content) == "png"

        # 2. SIGKILL a worker while it runs tasks, and an API process; start both again.
        # The first part may well have ended by now (a worker runs thousands of tasks at
        # once), so the kill watches while the next part goes in and strikes the moment
        # worker 1 holds a running task: each runs for the sandbox's 0.4 s at least.
        owner = re.search(r"imagegate worker (\S+) running", w1.output(200))
        assert owner is not None, w1.output()

        async def w1_busy() -> bool:
            rows = await run.sql("SELECT count(*) FROM tasks WHERE status = 'in_progress' "
                                 "AND lease_owner = $1", owner.group(1))
            return bool(rows[0][0])

        async def kill_w1_while_busy() -> None:
            await until("worker 1 running tasks", w1_busy, 60, every=0.05)
            w1.kill9()

        killer = asyncio.create_task(kill_w1_while_busy())
        await run.submit(http, range(FIRST, HALF))
        await killer
        b.kill9()  # after the part went in: it was half of the submission's targets
        new_w1, new_b = run.cluster.restart(w1), run.cluster.restart(b)
        await asyncio.gather(asyncio.to_thread(new_w1.wait_ready),
                             asyncio.to_thread(new_b.wait_ready))
        run.workers[0], run.apis[1] = new_w1, new_b

        # 3. Redis away for a few seconds while the second half goes in.
        run.redis.stop()

        async def bus_down() -> bool:
            return await run.bus_connected(http, run.workers[1]) == 0

        await until("a worker reporting the event bus down", bus_down, 30)
        await run.submit(http, range(HALF, TASKS))
        await asyncio.sleep(3)
        run.redis.start()

        async def bus_up() -> bool:
            states = [await run.bus_connected(http, w) for w in run.workers]
            return states == [1, 1]

        await until("both workers reporting the event bus back", bus_up, 60)
        assert any("is unreachable" in line for line in run.workers[1].lines)
        assert any("is back" in line for line in run.workers[1].lines)

        # 4. Every task ends.
        ids = list(run.tasks)
        assert len(ids) == TASKS

        async def all_terminal() -> bool:
            rows = await run.sql("SELECT count(*) FROM tasks WHERE id = ANY($1) "
                                 "AND status = ANY($2)", ids, sorted(TERMINAL))
            return rows[0][0] == TASKS

        await until("every task terminal", all_terminal, 240)
        await check_books(run, ids)
        await check_downloads(run, http, ids)


async def check_books(run: Run, ids: list[str]) -> None:
    rows = await run.sql("SELECT id, status, attempts, result FROM tasks WHERE id = ANY($1)",
                         ids)
    assert {r["status"] for r in rows} == {"succeeded"}, {r["status"] for r in rows}
    # The kill landed mid-run: some task was taken over by another run.
    assert max(r["attempts"] for r in rows) >= 2
    ledger = await run.sql(
        "SELECT task_id, kind, count(*) AS n, sum(amount) AS total FROM ledger "
        "WHERE task_id = ANY($1) GROUP BY task_id, kind", ids)
    by_kind: dict[str, dict[str, int]] = {}
    for r in ledger:
        by_kind.setdefault(r["task_id"], {})[r["kind"]] = r["n"]
    for task_id in ids:
        # One hold, one settlement: no task was paid for twice, none refunded.
        assert by_kind.get(task_id) == {"hold": 1, "settle": 1}, (task_id, by_kind.get(task_id))
    for key_row in await run.sql("SELECT id, balance FROM api_keys"):
        total = await run.sql("SELECT coalesce(sum(amount), 0) FROM ledger WHERE key_id = $1",
                              key_row["id"])
        assert key_row["balance"] == total[0][0], key_row["id"]
    spent = await run.sql("SELECT coalesce(sum(amount), 0) FROM ledger "
                          "WHERE task_id = ANY($1)", ids)
    assert spent[0][0] == -PRICE * TASKS


async def check_downloads(run: Run, http: httpx.AsyncClient, ids: list[str]) -> None:
    a, b = run.apis
    gate = asyncio.Semaphore(16)
    expected_keys: set[str] = set()

    async def one(task_id: str) -> None:
        async with gate:
            headers = {"Authorization": f"Bearer {run.tasks[task_id]}"}
            task = (await http.get(f"{a.base_url}/v1/tasks/{task_id}", headers=headers)).json()
            assert task["status"] == "succeeded", task
            url = task["result"]["data"][0]["url"]
            path = url.split("/p/img/", 1)[1]
            bodies = []
            for api in (a, b):
                got = await http.get(f"{api.base_url}/p/img/{path}")
                assert got.status_code == 200, (api.name, got.text)
                bodies.append(got.content)
            assert bodies[0] == bodies[1] and image_format(bodies[0]) == "png"

    await asyncio.gather(*(one(t) for t in ids))
    for row in await run.sql("SELECT result FROM tasks WHERE id = ANY($1)", ids):
        import json

        expected_keys.update(PREFIX + img["key"] for img in json.loads(row["result"])["images"])
    in_bucket = await asyncio.to_thread(run.s3.keys, run.bucket, PREFIX + "tasks/")
    assert expected_keys <= in_bucket, sorted(expected_keys - in_bucket)[:5]


def test_two_apis_and_two_workers_share_postgres_redis_and_s3(tmp_path: Path) -> None:
    with services(tmp_path) as (pg, redis, s3):
        bucket = s3.create_bucket()
        env = {
            "IMAGEGATE_DATABASE_URL": pg,
            "IMAGEGATE_REDIS_URL": redis.url,
            **s3.settings(bucket, PREFIX),
            **SECRETS,
            "IMAGEGATE_SANDBOX_LATENCY": "0.4",
            # A killed worker's leases lapse in seconds, and are looked for every second.
            "IMAGEGATE_LEASE_SECONDS": "3",
            "IMAGEGATE_REAPER_INTERVAL_SECONDS": "1",
            "IMAGEGATE_POLL_INTERVAL_SECONDS": "0.5",
            "IMAGEGATE_LOG_LEVEL": "warning",
        }
        cluster = Cluster(env, tmp_path / "procs")
        try:
            migrated = cluster.run("migrate")
            assert migrated.returncode == 0, migrated.stdout + migrated.stderr
            keys = [cluster.create_key(f"scale-{i}", "100")["key"] for i in range(2)]
            run = Run(cluster, pg, redis, s3, bucket, keys)
            run.apis = [cluster.api("api-a"), cluster.api("api-b")]
            run.workers = [cluster.worker("worker-1"), cluster.worker("worker-2")]
            for proc in [*run.apis, *run.workers]:
                proc.wait_ready()
            asyncio.run(scenario(run))
        except BaseException:
            print(cluster.outputs())
            raise
        finally:
            cluster.close()
