"""Crash recovery: `kill -9` the server mid-batch, restart it on the same data dir, and check
that every task finishes exactly once more than it had already run.

The `attempts` column counts runs (claims). After the kill, the reaper of the new process
requeues the dead worker's tasks once their lease lapses; nothing else may run twice.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import httpx
import pytest

from tests.support.e2e import Server, ServerFactory, decode_image, image_format, query_db

pytestmark = pytest.mark.e2e

N_TASKS = 12
LATENCY = 1.5
CRASH_ENV = {
    "IMAGEGATE_SANDBOX_LATENCY": str(LATENCY),
    "IMAGEGATE_WORKER_CONCURRENCY": "3",
    "IMAGEGATE_LEASE_SECONDS": "3",
    "IMAGEGATE_REAPER_INTERVAL_SECONDS": "0.5",
    "IMAGEGATE_POLL_INTERVAL_SECONDS": "0.5",
}
SIZE = "1024x768"


def _snapshot(server: Server) -> dict[str, dict[str, Any]]:
    rows = query_db(server.db_path,
                    "SELECT id, status, attempts, completed_at, result FROM tasks")
    return {r["id"]: dict(r) for r in rows}


def _by_status(snap: dict[str, dict[str, Any]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for tid, row in snap.items():
        out.setdefault(row["status"], set()).add(tid)
    return out


def test_kill9_mid_batch_then_restart(server_factory: ServerFactory) -> None:
    first = server_factory.start(CRASH_ENV)
    with first.client() as c:
        ids = []
        for i in range(N_TASKS):
            resp = c.post("/v1/images/generations", params={"async": "true"},
                          json={"model": "gpt-image-2", "prompt": f"crash test {i}",
                                "size": SIZE})
            assert resp.status_code == 202, resp.text
            ids.append(resp.json()["task_id"])

    # Wait for the mixed state: some done, some running, some waiting.
    deadline = time.monotonic() + 30
    while True:
        states = _by_status(_snapshot(first))
        if states.get("succeeded") and states.get("in_progress") and states.get("queued"):
            break
        assert time.monotonic() < deadline, f"never saw a mixed state: {states}"
        assert first.alive, first.output()
        time.sleep(0.05)

    first.kill9()
    assert first.proc.returncode == -9
    # What the table holds after the kill is exactly the state at the kill.
    before = _snapshot(first)
    assert set(before) == set(ids)
    states = _by_status(before)
    done, running, waiting = (states.get(s, set()) for s in ("succeeded", "in_progress",
                                                               "queued"))
    assert done and running and waiting, states
    assert done | running | waiting == set(ids), states
    assert all(before[t]["attempts"] == 1 for t in done | running), before
    assert all(before[t]["attempts"] == 0 for t in waiting), before

    second = server_factory.restart(first)
    assert second.key == first.key and second.port != first.port
    with second.client() as c:
        deadline = time.monotonic() + 60
        while True:
            tasks = {tid: c.get(f"/v1/tasks/{tid}").json() for tid in ids}
            pending = {tid: t["status"] for tid, t in tasks.items()
                       if t["status"] not in ("succeeded", "failed", "cancelled")}
            if not pending:
                break
            assert time.monotonic() < deadline, f"not finished after restart: {pending}\n" \
                                                f"{second.output()}"
            assert second.alive, second.output()
            time.sleep(0.25)

        not_ok = {tid: (t["status"], t["error"]) for tid, t in tasks.items()
                  if t["status"] != "succeeded"}
        assert not not_ok, not_ok

        after = _snapshot(second)
        for tid in done:  # finished before the crash: left alone
            assert after[tid]["attempts"] == 1, (tid, after[tid])
            assert after[tid]["completed_at"] == before[tid]["completed_at"], tid
            assert after[tid]["result"] == before[tid]["result"], tid
        for tid in running:  # lost with the worker: requeued and run exactly once more
            assert after[tid]["attempts"] == 2, (tid, after[tid])
            assert after[tid]["completed_at"] > _last_completion(before, done), tid
        for tid in waiting:  # never started: run exactly once
            assert after[tid]["attempts"] == 1, (tid, after[tid])

        with httpx.Client(base_url=second.base_url, timeout=30) as anon:
            for tid, task in tasks.items():
                assert task["progress"] == 100
                for item in task["result"]["data"]:
                    resp = anon.get(item["url"])
                    assert resp.status_code == 200, (tid, resp.text)
                    assert image_format(resp.content) == "png"
                    img = decode_image(resp.content)
                    assert (img.width, img.height) == (1024, 768)


def _last_completion(before: dict[str, dict[str, Any]], done: set[str]) -> float:
    """The latest completion recorded before the kill: later runs finish after it."""
    return max(before[t]["completed_at"] for t in done)


def test_kill9_during_inline_sync_requests_then_restart(server_factory: ServerFactory) -> None:
    """A sync request's task runs in the process that took it, created already claimed (no
    queue hop). It is still an ordinary leased row: `kill -9` mid-run, and the next process's
    reaper requeues it and it finishes, run once more, charged once."""
    env = {**CRASH_ENV, "IMAGEGATE_SANDBOX_LATENCY": "30"}
    first = server_factory.start(env)
    answers: list[int] = []

    def call(i: int) -> None:
        with contextlib.suppress(httpx.HTTPError), first.client(timeout=60) as c:
            answers.append(c.post("/v1/images/generations", json={
                "model": "gpt-image-2", "prompt": f"inline crash {i}", "size": SIZE,
            }).status_code)

    callers = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(3)]
    for t in callers:
        t.start()
    deadline = time.monotonic() + 30
    while len(snap := _snapshot(first)) < 3:
        assert time.monotonic() < deadline, f"the sync tasks never appeared: {snap}"
        assert first.alive, first.output()
        time.sleep(0.05)
    # Created claimed: running in this process at once, never queued.
    assert {(r["status"], r["attempts"]) for r in snap.values()} == {("in_progress", 1)}, snap

    first.kill9()
    for t in callers:
        t.join(10)
    assert answers == []  # every caller lost its connection with the process

    second = server_factory.restart(first, {**CRASH_ENV, "IMAGEGATE_SANDBOX_LATENCY": "0.2"})
    with second.client() as c:
        deadline = time.monotonic() + 60
        while True:
            tasks = {tid: c.get(f"/v1/tasks/{tid}").json() for tid in snap}
            if all(t["status"] in ("succeeded", "failed", "cancelled") for t in tasks.values()):
                break
            assert time.monotonic() < deadline, f"not finished after restart: {tasks}"
            assert second.alive, second.output()
            time.sleep(0.25)
        assert {t["status"] for t in tasks.values()} == {"succeeded"}, tasks
    after = _snapshot(second)
    assert {r["attempts"] for r in after.values()} == {2}, after
    settles = query_db(second.db_path,
                       "SELECT task_id, COUNT(*) AS n FROM ledger WHERE kind = 'settle' "
                       "GROUP BY task_id")
    assert {r["task_id"]: r["n"] for r in settles} == dict.fromkeys(snap, 1)
