"""`imagegate tasks list|get|wait|cancel` against a served sandbox, against the fake of the
task API (the list, the event stream), and with `--dialect` against a seed service's fake."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imagegate.client import Client
from tests.support.cli import ClientCli
from tests.support.e2e import Server
from tests.support.fake_procs import FakeProcess, fake_processes
from tests.support.relay import FakeLoop
from tests.support.task_api import KEY, FakeTaskAPI

pytestmark = pytest.mark.e2e


@pytest.fixture
def slow(slow_server: Server) -> Server:
    return slow_server


@pytest.fixture
def run(basic_server: Server, tmp_path: Path) -> ClientCli:
    return ClientCli(basic_server.base_url, basic_server.key, tmp_path / "none.toml")


@pytest.fixture
def task_api() -> Iterator[FakeTaskAPI]:
    loop = FakeLoop()
    try:
        yield loop.start(FakeTaskAPI)
    finally:
        loop.close()


def test_get_wait_and_cancel(run: ClientCli, tmp_path: Path) -> None:
    task_id = run("generate", "a task", "--async").stdout.strip()
    waited = run("tasks", "wait", task_id, "--out", str(tmp_path))
    assert waited.stdout.split() == [str(tmp_path / f"{task_id}_0.png")]
    as_json = json.loads(run("tasks", "wait", task_id, "--json").stdout)
    assert as_json["status"] == "succeeded" and as_json["files"] == []
    text = run("tasks", "get", task_id).stdout
    assert f"id:        {task_id}" in text and "status:    succeeded" in text
    assert "image:     http" in text
    got = json.loads(run("tasks", "get", task_id, "--json").stdout)
    assert got["id"] == task_id and got["result"]["data"]
    cancelled = json.loads(run("tasks", "cancel", task_id, "--json").stdout)
    assert cancelled["status"] == "succeeded"  # it had ended: left as it is


def test_cancel_and_a_wait_that_ends_cancelled(run: ClientCli, slow: Server) -> None:
    env = {"IMAGEGATE_URL": slow.base_url, "IMAGEGATE_API_KEY": slow.key}
    task_id = run("generate", "slow", "--async", **env).stdout.strip()
    timed_out = run.error("tasks", "wait", task_id, "--timeout", "0.2", code=3, **env)
    assert "still" in timed_out and "keeps running" in timed_out
    assert "status:    cancelled" in run("tasks", "cancel", task_id, **env).stdout
    waited = run("tasks", "wait", task_id, code=1, **env)
    assert f"error: task {task_id} cancelled: task_cancelled" in waited.stderr


def test_refusals(run: ClientCli) -> None:
    assert "task_not_found" in run.error("tasks", "get", "img_nope", code=2)
    assert "task_not_found" in run.error("tasks", "cancel", "img_nope", "--json", code=2)
    assert "status must be one of" in run.error("tasks", "list", "--status", "done", code=2)
    assert "the openai dialect has no tasks" in run.error("tasks", "get", "x", "--dialect",
                                                         "openai", code=2)


def test_list_and_events_where_the_server_has_them(run: ClientCli,
                                                   task_api: FakeTaskAPI,
                                                   tmp_path: Path) -> None:
    env = {"IMAGEGATE_URL": task_api.url, "IMAGEGATE_API_KEY": KEY}
    table = run("tasks", "list", "--limit", "3", **env)
    assert all(f"img_{i}" in table.stdout for i in (6, 5, 4)) and "img_3" not in table.stdout
    assert "imagegate tasks list --after img_4" in table.stderr
    page = json.loads(run("tasks", "list", "--limit", "3", "--after", "img_4", "--json",
                          **env).stdout)
    assert [t["id"] for t in page["data"]] == ["img_3", "img_2", "img_1"] and page["has_more"]
    waited = run("tasks", "wait", "img_live", "--out", str(tmp_path), **env)
    assert waited.stdout.split() == [str(tmp_path / "img_live_0.png"),
                                     str(tmp_path / "img_live_1.png")]
    assert task_api.resumed_from == [None, "2"]  # followed the stream, resumed it once


@pytest.fixture(scope="module")
def apimart() -> Iterator[FakeProcess]:
    with fake_processes("apimart", latency=1.0) as started:
        yield started["apimart"]


def test_tasks_of_a_seed_service(run: ClientCli, apimart: FakeProcess, tmp_path: Path) -> None:
    env = {"IMAGEGATE_URL": apimart.url, "IMAGEGATE_API_KEY": apimart.api_key}
    task_id = run("generate", "an apimart task", "--async", "--dialect", "apimart",
                  **env).stdout.strip()
    waited = json.loads(run("tasks", "wait", task_id, "--dialect", "apimart", "--json",
                            "--out", str(tmp_path), **env).stdout)
    assert waited["status"] == "succeeded" and waited["estimated_seconds"] == 60
    assert Path(waited["files"][0]).read_bytes()[:4] == b"\x89PNG"
    assert "has no cancel" in run.error("tasks", "cancel", task_id, "--dialect", "apimart",
                                        code=2, **env)


def test_list_pages_a_real_server(server_factory: Any, tmp_path: Path) -> None:
    """The client and `imagegate tasks list` page `GET /v1/tasks` of a real server (its
    own key, so only these tasks): newest first, filters kept across pages, the `more:`
    command continuing the same query."""
    server = server_factory.start({"IMAGEGATE_SANDBOX_LATENCY": "0"})
    with Client(server.base_url, server.key, poll_interval=0.2) as client:
        made = [client.generate(f"p{i}", model="dall-e-3" if i % 3 == 0 else None,
                                wait=False).id for i in range(8)]
        for task_id in made:
            client.tasks.wait(task_id, timeout=30)
        newest_first = made[::-1]
        ids: list[str] = []
        after = None
        for _ in range(10):
            page = client.tasks.list(limit=3, after=after)
            ids += [t.id for t in page.data]
            if not page.has_more:
                break
            after = page.last_id
        assert ids == newest_first
        dalle = client.tasks.list(model="dall-e-3", status="succeeded", limit=100)
        assert [t.id for t in dalle.data] == [t for t in newest_first
                                              if made.index(t) % 3 == 0]
        assert not dalle.has_more and all(t.model == "dall-e-3" for t in dalle.data)
    run = ClientCli(server.base_url, server.key, tmp_path / "none.toml")
    seen: list[str] = []
    args = ["tasks", "list", "--model", "gpt-image-2", "--limit", "2"]
    for _ in range(10):
        result = run(*args)
        seen += [line.split()[1] for line in result.stdout.splitlines()
                 if line.split()[1:2] and line.split()[1].startswith("img_")]
        more = [line for line in result.stderr.splitlines() if line.startswith("more: ")]
        if not more:
            break
        args = shlex.split(more[0].removeprefix("more: "))[1:]
        assert "--model" in args and "--limit" in args
    assert seen == [t for t in newest_first if made.index(t) % 3 != 0]
