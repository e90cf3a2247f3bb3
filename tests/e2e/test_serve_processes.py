"""`imagegate serve --processes 2` on PostgreSQL, as real processes on loopback: both
server processes take connections on the one port and run tasks (told apart by the pid in
the lease owner each one's worker writes into the task table), sync and async generations
succeed, a cancel taken by either process holds, a server process killed with SIGKILL is
restarted and the task it was running is finished by the reaper, SIGTERM to the first
process stops them all with status 0, and killing the first process outright stops its
server processes too. Without PostgreSQL (outside CI) the tests skip.

Every wait is bounded; nothing asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
import httpx
import openai
import psutil
import pytest

from tests.contracts.conftest import fresh_postgres
from tests.support.e2e import Server, ServerFactory, image_format, poll_task, until_terminal

pytestmark = pytest.mark.e2e

LATENCY = 3.0  # long enough to see a task in progress and to kill the process running it
ENV = {
    "IMAGEGATE_PROCESSES": "2",
    "IMAGEGATE_SANDBOX_LATENCY": str(LATENCY),
    "IMAGEGATE_SANDBOX_PROGRESS_STEPS": "1",
    "IMAGEGATE_LEASE_SECONDS": "2",
    "IMAGEGATE_REAPER_INTERVAL_SECONDS": "0.5",
    "IMAGEGATE_POLL_INTERVAL_SECONDS": "0.2",
}
BODY = {"model": "dall-e-2", "size": "256x256"}
BOUND = 60.0


@pytest.fixture
def pg() -> Iterator[str]:
    with fresh_postgres() as url:
        yield url.replace("postgresql+asyncpg://", "postgresql://", 1)


def sql(pg: str, query: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(pg)
        try:
            rows: list[asyncpg.Record] = await conn.fetch(query, *args)
            return rows
        finally:
            await conn.close()

    return asyncio.run(run())


def owner_pid(owner: str) -> int:
    """`<host>-<pid>-<token>` (domain/task.py: new_owner_id); the host may hold dashes."""
    return int(owner.rsplit("-", 2)[1])


def running(pg: str) -> dict[str, int]:
    """Tasks in progress -> the pid of the process whose worker holds each."""
    rows = sql(pg, "SELECT id, lease_owner FROM tasks WHERE status = 'in_progress' "
                   "AND lease_owner IS NOT NULL")
    return {r["id"]: owner_pid(r["lease_owner"]) for r in rows}


def children(server: Server) -> set[int]:
    try:
        return {c.pid for c in psutil.Process(server.pid).children()
                if c.status() != psutil.STATUS_ZOMBIE}
    except psutil.NoSuchProcess:
        return set()


def alive(pids: set[int]) -> set[int]:
    found = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                found.add(pid)
        except psutil.NoSuchProcess:
            pass
    return found


def until(what: str, check: Callable[[], bool], server: Server, timeout: float = BOUND
          ) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"still waiting after {timeout:.0f} s: {what}\n{server.output()}")
        time.sleep(0.1)


def start(factory: ServerFactory, pg: str) -> tuple[Server, set[int]]:
    server = factory.spawn({**ENV, "IMAGEGATE_DATABASE_URL": pg}).wait_ready(timeout=BOUND)
    until("two server processes", lambda: len(children(server)) == 2, server)
    return server, children(server)


def sync_image(server: Server, n: int) -> bytes:
    """One synchronous generation with the official SDK, on a connection of its own (the
    kernel gives each new connection to either process)."""
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key=server.key, max_retries=0,
                       timeout=BOUND) as client:
        resp = client.images.generate(prompt=f"sync {n}", response_format="b64_json", **BODY)
    assert resp.data and resp.data[0].b64_json
    return base64.b64decode(resp.data[0].b64_json)


def submit(server: Server, prompt: str) -> str:
    with httpx.Client(base_url=server.base_url, headers=server.headers(),
                      timeout=BOUND) as http:
        resp = http.post("/v1/images/generations?async=true", json={**BODY, "prompt": prompt})
    assert resp.status_code == 202, resp.text
    task_id: str = resp.json()["task_id"]
    return task_id


def test_two_processes_share_the_port_and_recover_a_killed_one(
        server_factory: ServerFactory, pg: str) -> None:
    server, processes = start(server_factory, pg)
    banner = server.output()
    assert "processes      : 2 on this port, each with its own workers" in banner
    assert "2 processes without redis_url" in banner  # what stays per process is said

    # 1. Synchronous requests run in the process that took them: both processes take some.
    seen: set[int] = set()
    n = 0
    deadline = time.monotonic() + BOUND
    with ThreadPoolExecutor(8) as pool:
        while not processes <= seen:
            assert time.monotonic() < deadline, (seen, processes, server.output())
            batch = [pool.submit(sync_image, server, n + i) for i in range(8)]
            n += 8
            while not all(f.done() for f in batch):
                seen |= set(running(pg).values())
                time.sleep(0.05)
            assert all(image_format(f.result()) == "png" for f in batch)
    assert seen <= processes, "a task ran in a process that is not one of the two"

    # 2. An asynchronous task.
    with server.client() as http:
        done = poll_task(http, submit(server, "async"), until_terminal, timeout=BOUND)
    assert done["status"] == "succeeded", done

    # 3. A cancel, taken by whichever process gets the connection, holds: the task stays
    # cancelled and refunded after its run would have ended.
    cancelled = []
    for i in range(3):
        task_id = submit(server, f"to cancel {i}")
        until("the task to start", lambda t=task_id: t in running(pg), server)
        with httpx.Client(base_url=server.base_url, headers=server.headers()) as http:
            resp = http.post(f"/v1/tasks/{task_id}/cancel")
        assert resp.status_code == 200 and resp.json()["status"] == "cancelled", resp.text
        cancelled.append(task_id)
    time.sleep(LATENCY + 1)  # past the end of the runs: a late result must not land
    rows = sql(pg, "SELECT status, charge_state FROM tasks WHERE id = ANY($1)", cancelled)
    assert [(r["status"], r["charge_state"]) for r in rows] == [("cancelled", "refunded")] * 3

    # 4. SIGKILL the process running a task: it is restarted, the task is finished elsewhere.
    ids = [submit(server, f"crash {i}") for i in range(4)]
    held: dict[str, int] = {}

    def one_just_started() -> bool:
        rows = sql(pg, "SELECT id, lease_owner FROM tasks WHERE id = ANY($1) AND "
                       "status = 'in_progress' AND started_at > $2", ids, time.time() - 1)
        held.update({r["id"]: owner_pid(r["lease_owner"]) for r in rows})
        return bool(held)

    until("a task in progress", one_just_started, server)
    victim = next(iter(held.values()))
    victims_tasks = [t for t, pid in held.items() if pid == victim]
    psutil.Process(victim).kill()
    until("the killed process replaced",
          lambda: len(children(server)) == 2 and victim not in children(server), server)
    with server.client() as http:
        for task_id in ids:
            task = poll_task(http, task_id, until_terminal, timeout=BOUND)
            assert task["status"] == "succeeded", task
    rows = sql(pg, "SELECT attempts, lease_owner FROM tasks WHERE id = ANY($1)", victims_tasks)
    assert all(r["attempts"] >= 2 for r in rows), rows  # requeued by the reaper, run again
    assert f"(pid {victim}) exited with signal SIGKILL; restarting it" in server.output()

    # 5. SIGTERM to the first process stops every server process, with status 0.
    last = children(server)
    assert server.stop() == 0, server.output()
    until("the server processes gone", lambda: not alive(last), server, timeout=15)


def test_server_processes_stop_when_the_first_process_is_killed(
        server_factory: ServerFactory, pg: str) -> None:
    server, processes = start(server_factory, pg)
    server.kill9()
    # Nobody could forward a signal: each notices it was orphaned and stops by itself.
    until("the orphaned server processes gone", lambda: not alive(processes), server)
