"""Relay to upstreams, end to end: `imagegate serve` as a real process, configured with
`[[channels]]` that point at the fake upstreams (imagegate.testing.upstreams) on loopback.

- every adapter (openai, openai_compatible with absolute and relative result URLs,
  dimilinks, apimart) generates, sync and async, and the image imagegate serves from its own
  signed URL is exactly the upstream's PNG;
- failover from a failing channel to the next, and an upstream content-policy refusal that
  reaches the client as a 400 with the upstream's message, sent once and never charged;
- crash safety: `kill -9` after an async upstream accepted the task resumes polling that
  upstream task after the restart (one submission in all); `kill -9` during a synchronous
  upstream call fails the task as `upstream_interrupted` and refunds it;
- visibility: `imagegate channels --json` and `/metrics`;
- the seeds' details (issue 18): the quality an upstream made and dall-e-3's revised prompt
  relayed (and another model's left out), DALL·E streams refused before anything is sent,
  and an apimart image-to-image request without `size` sent upstream at the reference's
  settled size, priced at its tier.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from imagegate.testing.upstreams.apimart_api import FakeApimart
from imagegate.testing.upstreams.async_tasks import FakeTaskUpstream
from imagegate.testing.upstreams.common import FakeUpstream
from imagegate.testing.upstreams.dimilinks_api import FakeDimilinks
from imagegate.testing.upstreams.openai_api import FakeOpenAI, ResultMode
from tests.support.e2e import (
    IMAGEGATE,
    Server,
    ServerFactory,
    decode_image,
    image_format,
    poll_task,
    until_terminal,
)
from tests.support.images import flat_png
from tests.support.relay import (
    FAKE_KEY,
    FakeLoop,
    calls,
    channel,
    generation_calls,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.e2e

FAST_ENV = {
    "IMAGEGATE_SANDBOX_LATENCY": "0",
    "IMAGEGATE_UPSTREAM_BACKOFF_SECONDS": "0.05",
}
# A crash test's lease runs out soon after the kill, so the restarted worker takes over fast.
CRASH_ENV = {
    **FAST_ENV,
    "IMAGEGATE_LEASE_SECONDS": "2",
    "IMAGEGATE_REAPER_INTERVAL_SECONDS": "0.5",
    "IMAGEGATE_POLL_INTERVAL_SECONDS": "0.25",
}
POLL = 0.2  # seconds between an async channel's polls of its upstream


@pytest.fixture(scope="module")
def fake_loop() -> Iterator[FakeLoop]:
    loop = FakeLoop()
    try:
        yield loop
    finally:
        loop.close()


# ---------------------------------------------------------------- one server, many channels


@dataclass(frozen=True)
class Case:
    channel: str
    adapter: str
    model: str
    size: str
    seed_sep: str  # how the fake seeds result i's colour: f"{prompt}{sep}{i}"
    async_upstream: bool


CASES = [
    Case("oa", "openai", "gpt-image-2", "1024x768", ":", False),
    Case("compat-url", "openai_compatible", "gpt-image-2-pro", "1280x720", ":", False),
    Case("compat-rel", "openai_compatible", "gpt-image-2-2026-04-21", "768x1024", ":", False),
    Case("dimi", "dimilinks", "gpt-image-1", "1536x1024", "/", True),
    Case("mart", "apimart", "gpt-image-1.5", "1024x1536", "/", True),
]
FAILOVER_MODEL = "gpt-image-1-mini"


@dataclass
class Relay:
    server: Server
    fakes: dict[str, FakeUpstream]  # channel name -> its fake
    loop: FakeLoop


@pytest.fixture(scope="module")
def relay(module_server_factory: ServerFactory, fake_loop: FakeLoop,
          tmp_path_factory: pytest.TempPathFactory) -> Relay:
    def openai(mode: ResultMode | None = None) -> Callable[[], FakeUpstream]:
        def make() -> FakeUpstream:
            # A result mode makes it a reseller (003/004 seeds); none: OpenAI itself.
            return FakeOpenAI(api_key=FAKE_KEY, result_mode=mode, reseller=mode is not None)
        return make

    makers: dict[str, Callable[[], FakeUpstream]] = {
        "oa": openai(),
        "compat-url": openai("url"),
        "compat-rel": openai("relative_url"),
        "dimi": lambda: FakeDimilinks(api_key=FAKE_KEY),
        "mart": lambda: FakeApimart(api_key=FAKE_KEY),
        "primary": openai(),
        "backup": openai("url"),
    }
    fakes = {name: fake_loop.start(make) for name, make in makers.items()}
    tables = []
    for case in CASES:
        extra: dict[str, Any] = {}
        if case.adapter == "openai_compatible":
            # Resellers name the model their own way; the fake knows gpt-image-2.
            extra["model_map"] = {case.model: "gpt-image-2"}
        if case.async_upstream:
            extra["poll_interval"] = POLL
        tables.append(channel(case.channel, case.adapter, fakes[case.channel], [case.model],
                              **extra))
    tables.append(channel("primary", "openai", fakes["primary"], [FAILOVER_MODEL],
                          priority=10))
    tables.append(channel("backup", "openai_compatible", fakes["backup"], [FAILOVER_MODEL],
                          priority=0))
    config = write_config(tmp_path_factory.mktemp("relay-config") / "imagegate.toml", tables)
    server = module_server_factory.start({**FAST_ENV, "IMAGEGATE_CONFIG": str(config)})
    return Relay(server, fakes, fake_loop)


def _wh(size: str) -> tuple[int, int]:
    w, _, h = size.partition("x")
    return int(w), int(h)


def _fetch_png(server: Server, url: str) -> bytes:
    # imagegate's own signed URL, never the upstream's
    assert url.startswith(server.base_url + "/p/img/"), url
    with httpx.Client(timeout=30) as anon:  # the signature is the credential
        resp = anon.get(url)
    assert resp.status_code == 200, resp.text
    assert image_format(resp.content) == "png"
    return resp.content


def _task_row(server: Server, task_id: str) -> dict[str, Any]:
    rows = server.query("SELECT * FROM tasks WHERE id = ?", (task_id,))
    assert len(rows) == 1, task_id
    return dict(rows[0])


def _ledger_sum(server: Server, task_id: str) -> int:
    total: int = server.query("SELECT coalesce(sum(amount), 0) FROM ledger WHERE task_id = ?",
                              (task_id,))[0][0]
    return total


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("case", CASES, ids=[c.channel for c in CASES])
def test_adapter_generates(relay: Relay, case: Case, mode: str) -> None:
    server, fake = relay.server, relay.fakes[case.channel]
    prompt = f"a lighthouse via {case.channel} ({mode})"
    body = {"model": case.model, "prompt": prompt, "size": case.size}
    with server.client() as c:
        if mode == "sync":
            resp = c.post("/v1/images/generations", json=body)
            assert resp.status_code == 200, resp.text
            result = resp.json()
        else:
            resp = c.post("/v1/images/generations", params={"async": "true"}, json=body)
            assert resp.status_code == 202, resp.text
            task = poll_task(c, resp.json()["task_id"], until_terminal)
            assert task["status"] == "succeeded", task
            result = task["result"]
    task_id = result["task_id"]
    assert len(result["data"]) == 1, result

    data = _fetch_png(server, result["data"][0]["url"])
    img = decode_image(data)
    width, height = _wh(case.size)
    assert (img.width, img.height) == (width, height)
    # Byte for byte the upstream's image: the fake seeds each result's colour by prompt.
    assert data == fake.png(width, height, f"{prompt}{case.seed_sep}0")

    row = _task_row(server, task_id)
    assert row["provider"] == case.channel, row
    sent = [r for r in generation_calls(fake) if r.fields().get("prompt") == prompt]
    assert len(sent) == 1, sent  # one upstream call, no retry
    assert sent[0].headers["Authorization"] == f"Bearer {FAKE_KEY}"
    if case.adapter == "openai_compatible":
        assert sent[0].fields()["model"] == "gpt-image-2"  # the channel's model_map
    if case.async_upstream:
        # The upstream's own task id was stored on the task (what crash recovery resumes).
        assert row["upstream_task_id"], row
        assert isinstance(fake, FakeTaskUpstream)
        assert row["upstream_task_id"] in fake.tasks, row
        if case.adapter == "dimilinks":
            assert sent[0].query.get("async") == "true", sent[0].query


def test_failover_to_the_next_channel(relay: Relay) -> None:
    server, primary, backup = relay.server, relay.fakes["primary"], relay.fakes["backup"]
    prompt = "failover: a red kite"
    relay.loop.call(lambda: primary.fail_next(500, times=1))
    with server.client() as c:
        resp = c.post("/v1/images/generations",
                      json={"model": FAILOVER_MODEL, "prompt": prompt, "size": "1024x1024"})
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert _task_row(server, result["task_id"])["provider"] == "backup"
    mine = [r for r in generation_calls(primary) if r.fields().get("prompt") == prompt]
    assert len(mine) == 1  # tried first (higher priority), answered 500
    mine = [r for r in generation_calls(backup) if r.fields().get("prompt") == prompt]
    assert len(mine) == 1
    data = _fetch_png(server, result["data"][0]["url"])
    assert data == backup.png(1024, 1024, f"{prompt}:0")


def test_content_policy_refusal_is_a_400_sent_once(relay: Relay) -> None:
    server, primary, backup = relay.server, relay.fakes["primary"], relay.fakes["backup"]
    prompt = "something forbidden, please"
    before = len(generation_calls(primary)) + len(generation_calls(backup))
    with server.client() as c:
        resp = c.post("/v1/images/generations",
                      json={"model": FAILOVER_MODEL, "prompt": prompt, "size": "1024x1024"})
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert "safety system" in error["message"], error  # the upstream's own words
    after = generation_calls(primary) + generation_calls(backup)
    assert len(after) - before == 1, after  # not retried, no failover
    rows = server.query("SELECT id, status FROM tasks WHERE request LIKE ?",
                        ("%something forbidden%",))
    assert [r["status"] for r in rows] == ["failed"], [dict(r) for r in rows]
    assert _ledger_sum(server, rows[0]["id"]) == 0  # cost nothing


def test_channels_cli_and_metrics(relay: Relay) -> None:
    server = relay.server
    with server.client() as c:  # at least one call on the channel, whatever ran before
        resp = c.post("/v1/images/generations",
                      json={"model": "gpt-image-2", "prompt": "metrics", "size": "1024x768"})
        assert resp.status_code == 200, resp.text
        metrics = c.get("/metrics")
    assert metrics.status_code == 200, metrics.text
    lines = metrics.text.splitlines()
    assert any(line.startswith("imagegate_upstream_requests_total{")
               and 'channel="oa"' in line and 'outcome="success"' in line
               for line in lines), metrics.text
    # The API key the channel uses never shows.
    assert FAKE_KEY not in metrics.text

    env = {k: v for k, v in server.env.items() if k != "IMAGEGATE_PORT"}
    res = subprocess.run(
        [IMAGEGATE, "channels", "--json", "--url", server.base_url, "--data-dir",
         str(server.data_dir)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}"
    assert FAKE_KEY not in res.stdout
    shown = json.loads(res.stdout)
    assert shown["live"] is True, shown
    by_name = {ch["name"]: ch for ch in shown["channels"]}
    assert set(by_name) == {c.channel for c in CASES} | {"primary", "backup"}, by_name
    for name, ch in by_name.items():
        assert ch["breaker"] == "closed", (name, ch)
        assert ch["in_flight"] == 0, (name, ch)
    assert by_name["oa"]["adapter"] == "openai"
    assert by_name["oa"]["requests"] >= 1
    assert by_name["mart"]["models"] == ["gpt-image-1.5"]


# ---------------------------------------------------------------- crashes


def _crash_server(server_factory: ServerFactory, tmp_path: Path,
                  tables: list[dict[str, Any]]) -> Server:
    config = write_config(tmp_path / "imagegate.toml", tables)
    return server_factory.start({**CRASH_ENV, "IMAGEGATE_CONFIG": str(config)})


def _submit_async(server: Server, body: dict[str, Any]) -> str:
    with server.client() as c:
        resp = c.post("/v1/images/generations", params={"async": "true"}, json=body)
    assert resp.status_code == 202, resp.text
    task_id: str = resp.json()["task_id"]
    return task_id


def _key_id(server: Server) -> str:
    rows = server.query("SELECT id FROM api_keys")
    assert len(rows) == 1, rows
    key_id: str = rows[0]["id"]
    return key_id


def _balance(server: Server, key_id: str) -> int | None:
    balance: int | None = server.query("SELECT balance FROM api_keys WHERE id = ?",
                                       (key_id,))[0][0]
    return balance


@pytest.mark.parametrize("dialect", ["dimilinks", "apimart"])
def test_kill9_after_upstream_accepted_resumes_polling(
        server_factory: ServerFactory, fake_loop: FakeLoop, tmp_path: Path,
        dialect: str) -> None:
    latency = 3.5
    dialects: dict[str, Callable[[], FakeTaskUpstream]] = {
        "dimilinks": lambda: FakeDimilinks(api_key=FAKE_KEY, latency=latency),
        "apimart": lambda: FakeApimart(api_key=FAKE_KEY, latency=latency),
    }
    fake = fake_loop.start(dialects[dialect])
    first = _crash_server(server_factory, tmp_path, [
        channel("slow-async", dialect, fake, ["gpt-image-2"], poll_interval=POLL)])
    prompt = f"crash-resume via {dialect}"
    task_id = _submit_async(first, {"model": "gpt-image-2", "prompt": prompt,
                                    "size": "1024x768"})

    def accepted() -> bool:
        rows = first.query("SELECT upstream_task_id FROM tasks WHERE id = ?", (task_id,))
        return fake.submissions == 1 and bool(rows[0]["upstream_task_id"])

    wait_for("the upstream to accept the task", accepted)
    before = _task_row(first, task_id)
    assert before["status"] == "in_progress" and before["attempts"] == 1, before
    assert before["provider"] == "slow-async"
    upstream_id = before["upstream_task_id"]
    assert upstream_id in fake.tasks
    first.kill9()
    polls_at_kill = len([r for r in list(fake.requests) if r.method == "GET"])

    second = server_factory.restart(first)
    with second.client() as c:
        task = poll_task(c, task_id, until_terminal, timeout=30)
    assert task["status"] == "succeeded", (task, second.output())
    assert fake.submissions == 1  # never submitted again
    assert len(generation_calls(fake)) == 1
    after = _task_row(second, task_id)
    assert after["attempts"] == 2, after  # the restarted worker ran it once more ...
    assert after["upstream_task_id"] == upstream_id  # ... on the same upstream task
    assert after["provider"] == "slow-async"
    # The new process polled the upstream task it found on the row.
    resumed = [r for r in list(fake.requests)[polls_at_kill:]
               if r.method == "GET" and upstream_id in r.path]
    assert resumed, [r.path for r in fake.requests]

    data = _fetch_png(second, task["result"]["data"][0]["url"])
    assert data == fake.png(1024, 768, f"{prompt}/0")  # the fake's image, byte for byte
    assert _ledger_sum(second, task_id) < 0  # charged once, on success


def test_kill9_during_sync_upstream_call_fails_and_refunds(
        server_factory: ServerFactory, fake_loop: FakeLoop, tmp_path: Path) -> None:
    fake = fake_loop.start(lambda: FakeOpenAI(api_key=FAKE_KEY, latency=5.0))
    first = _crash_server(server_factory, tmp_path, [
        channel("slow-sync", "openai", fake, ["gpt-image-2"])])
    key_id = _key_id(first)
    topup = subprocess.run(
        [IMAGEGATE, "keys", "topup", key_id, "10", "--data-dir", str(first.data_dir)],
        capture_output=True, text=True, timeout=60, check=False,
        env={k: v for k, v in first.env.items() if k != "IMAGEGATE_PORT"},
    )
    assert topup.returncode == 0, f"{topup.stdout}\n{topup.stderr}"
    start_balance = _balance(first, key_id)
    assert start_balance == 10_000_000, start_balance

    task_id = _submit_async(first, {"model": "gpt-image-2", "prompt": "sync crash",
                                    "size": "1024x768"})
    wait_for("the upstream to receive the generation request",
             lambda: len(generation_calls(fake)) == 1)
    held = _balance(first, key_id)
    assert held is not None and held < start_balance  # the hold is on while the call runs
    first.kill9()

    second = server_factory.restart(first)
    with second.client() as c:
        task = poll_task(c, task_id, until_terminal, timeout=30)
    assert task["status"] == "failed", task
    assert task["error"]["code"] == "upstream_interrupted", task
    assert len(generation_calls(fake)) == 1  # never sent again
    row = _task_row(second, task_id)
    assert row["charge_state"] == "refunded", row
    assert _ledger_sum(second, task_id) == 0
    assert _balance(second, key_id) == start_balance


# ---------------------------------------------------------------- issue 18: seed details
# Values that come from the upstream (the quality it made, dall-e-3's revised prompt) are
# relayed; the size a reference image asks for reaches the upstream already settled.

SEED_PRICE = {"1k": 40_000, "2k": 80_000, "4k": 160_000}  # gpt-image-2, micro-units


@dataclass
class SeedRelay:
    server: Server
    official: FakeOpenAI
    reseller: FakeOpenAI


@pytest.fixture(scope="module")
def seed_relay(module_server_factory: ServerFactory, fake_loop: FakeLoop,
               tmp_path_factory: pytest.TempPathFactory) -> SeedRelay:
    official = fake_loop.start(lambda: FakeOpenAI(api_key=FAKE_KEY))
    reseller = fake_loop.start(lambda: FakeOpenAI(api_key=FAKE_KEY, result_mode="url",
                                                  reseller=True))
    tables = [
        channel("oa18", "openai", official,
                ["gpt-image-2", "gpt-image-1", "dall-e-3", "dall-e-2"]),
        channel("compat18", "openai_compatible", reseller, ["gpt-image-1.5"]),
        # An upstream that revises every prompt, serving a model that does not (003:
        # `revised_prompt` is for dall-e-3 only): imagegate's answer leaves it out.
        channel("mapped18", "openai", official, ["gpt-image-1-mini"],
                model_map={"gpt-image-1-mini": "dall-e-3"}),
    ]
    config = write_config(tmp_path_factory.mktemp("seed-relay") / "imagegate.toml", tables)
    server = module_server_factory.start({**FAST_ENV, "IMAGEGATE_CONFIG": str(config)})
    return SeedRelay(server, official, reseller)


def _sent(fake: FakeOpenAI, prompt: str, suffix: str = "/images/generations"
          ) -> list[dict[str, Any]]:
    return [r.fields() for r in calls(fake, suffix) if r.fields().get("prompt") == prompt]


@pytest.mark.parametrize(("model", "fake_name"), [("gpt-image-2", "official"),
                                                  ("gpt-image-1", "official"),
                                                  ("gpt-image-1.5", "reseller")])
def test_relayed_quality_is_what_the_upstream_made(seed_relay: SeedRelay, model: str,
                                                   fake_name: str) -> None:
    """A client that leaves `quality` (and `background`) to the model: the upstream is asked
    for `auto` and says it made `high` (the 003 example's answer); every profile reports
    that, never `auto`. Billing stays at the catalog's `auto` price."""
    server, fake = seed_relay.server, getattr(seed_relay, fake_name)
    with server.client() as c:
        for path in ("/v1/images/generations", "/openai/v1/images/generations"):
            prompt = f"quality via {model} on {path}"
            resp = c.post(path, json={"model": model, "prompt": prompt, "quality": "auto",
                                      "size": "1024x1024"})
            assert resp.status_code == 200, resp.text
            body = resp.json()
            assert (body["quality"], body["background"]) == ("high", "opaque"), body
            [sent] = _sent(fake, prompt)
            assert sent["quality"] == "auto"
            if path.startswith("/v1"):
                task = c.get(f"/v1/tasks/{body['task_id']}").json()
                assert task["result"]["quality"] == "high"
                row = _task_row(server, body["task_id"])
                assert json.loads(row["request"])["quality"] == "medium"  # what was billed
                assert row["unit_price"] == (40_000 if model == "gpt-image-2" else 42_000)


def test_relayed_dalle3_auto_quality_and_revised_prompt(seed_relay: SeedRelay) -> None:
    server, fake = seed_relay.server, seed_relay.official
    with server.client() as c:
        prompt = "a lighthouse, relayed to dall-e-3"
        resp = c.post("/v1/images/generations",
                      json={"model": "dall-e-3", "prompt": prompt, "quality": "auto"})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert (body["quality"], body["background"]) == ("standard", "opaque")
        assert body["data"][0]["revised_prompt"] == f"revised: {prompt}"  # the upstream's
        [sent] = _sent(fake, prompt)
        assert sent["quality"] == "standard"  # auto is standard on DALL·E
        prompt = "a fox, relayed to dall-e-3 through the openai profile"
        resp = c.post("/openai/v1/images/generations",
                      json={"model": "dall-e-3", "prompt": prompt, "quality": "auto",
                            "response_format": "b64_json"})
        assert resp.status_code == 200, resp.text
        [item] = resp.json()["data"]
        assert set(item) == {"b64_json", "revised_prompt"}
        assert item["revised_prompt"] == f"revised: {prompt}"
        prompt = "dall-e-2 with auto quality"
        resp = c.post("/openai/v1/images/generations",
                      json={"model": "dall-e-2", "prompt": prompt, "quality": "auto",
                            "size": "256x256"})
        assert resp.status_code == 200, resp.text
        assert set(resp.json()["data"][0]) == {"url"}
        assert "quality" not in _sent(fake, prompt)[0]  # dall-e-2 has only standard


def test_a_revised_prompt_for_another_model_is_left_out(seed_relay: SeedRelay) -> None:
    server, fake = seed_relay.server, seed_relay.official
    prompt = "mini, served by an upstream that revises prompts"
    with server.client() as c:
        resp = c.post("/v1/images/generations",
                      json={"model": "gpt-image-1-mini", "prompt": prompt})
    assert resp.status_code == 200, resp.text
    assert len(_sent(fake, prompt)) == 1  # the upstream did answer with a revised prompt
    assert [set(item) for item in resp.json()["data"]] == [{"url", "file_id"}]


@pytest.mark.parametrize("path", ["/v1/images/generations", "/openai/v1/images/generations"])
def test_dalle_stream_is_refused_before_anything_is_sent(seed_relay: SeedRelay,
                                                         path: str) -> None:
    server, fake = seed_relay.server, seed_relay.official
    prompt = f"stream dall-e-3 on {path}"
    with server.client() as c:
        resp = c.post(path, json={"model": "dall-e-3", "prompt": prompt, "stream": True,
                                  "partial_images": 2})
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert (error["param"], error["code"]) == ("stream", "unsupported_value")
    assert _sent(fake, prompt) == []
    assert server.query("SELECT id FROM tasks WHERE request LIKE ?", (f"%{prompt}%",)) == []


@pytest.mark.parametrize(("reference", "made", "tier"), [
    ((1536, 1024), (1536, 1024), "1k"),  # landscape
    ((1024, 1536), (1024, 1536), "1k"),  # portrait
    ((96, 64), (1008, 672), "1k"),  # tiny
    ((5000, 4000), (3200, 2560), "4k"),  # huge
    ((1000, 700), (1008, 704), "1k"),  # not multiples of 16
    ((2048, 1360), (2048, 1360), "2k"),
])
def test_apimart_reference_resolution_is_settled_before_the_upstream_call(
        seed_relay: SeedRelay, reference: tuple[int, int], made: tuple[int, int],
        tier: str) -> None:
    """002: without `size`, the output keeps the reference's resolution. The upstream is
    asked for that size (an edit with the image), the image served is that size, and the
    task was priced at its tier; `/v1` keeps its 1024x1024 default."""
    server, fake = seed_relay.server, seed_relay.official
    png = flat_png(*reference)
    ref = "data:image/png;base64," + base64.b64encode(png).decode()
    prompt = f"watercolour of a {reference[0]}x{reference[1]} photo"
    with server.client() as c:
        resp = c.post("/apimart/v1/images/generations",
                      json={"model": "gpt-image-2", "prompt": prompt, "image_urls": [ref]})
        assert resp.status_code == 200, resp.text
        task_id = resp.json()["data"][0]["task_id"]
        wait_for("the apimart task", lambda: c.get(f"/apimart/v1/tasks/{task_id}").json()
                 ["data"]["status"] in ("completed", "failed"))
        data = c.get(f"/apimart/v1/tasks/{task_id}").json()["data"]
        assert data["status"] == "completed", data
        assert data["cost"] == SEED_PRICE[tier] / 1_000_000
        native = c.post("/v1/images/generations",
                        json={"model": "gpt-image-2", "prompt": prompt + " (v1)",
                              "image_urls": [ref]})
        assert native.status_code == 200, native.text
    [sent] = _sent(fake, prompt, "/images/edits")
    assert sent["size"] == f"{made[0]}x{made[1]}"
    image = decode_image(_fetch_png(server, data["result"]["images"][0]["url"][0]))
    assert (image.width, image.height) == made
    row = _task_row(server, task_id)
    assert (row["unit_price"], json.loads(row["request"])["tier"]) == (SEED_PRICE[tier], tier)
    [sent] = _sent(fake, prompt + " (v1)", "/images/edits")
    assert sent["size"] == "1024x1024"
    assert _task_row(server, native.json()["task_id"])["unit_price"] == SEED_PRICE["1k"]
