"""Helpers for the relay end-to-end tests: fake upstreams served from a background thread,
and a `[[channels]]` config file for `imagegate serve`.

The e2e tests drive the server with blocking httpx calls and `time.sleep` (as tests/support/e2e.py
does), so a fake running in the test's own event loop would be starved while the test
waits. Each `FakeLoop` therefore runs its fakes in a private event loop on its own thread;
the test reads their request logs (`.requests`, `.submissions`) directly — appends and list
copies are atomic under the GIL — and plans faults through `FakeLoop.call`, so every
mutation happens on the loop's thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from imagegate.testing.upstreams.common import FakeUpstream, RecordedRequest

T = TypeVar("T")
F = TypeVar("F", bound=FakeUpstream)

FAKE_KEY = "sk-fake-relay"
CALL_TIMEOUT = 15.0


class FakeLoop:
    """One thread running an event loop that hosts any number of fake upstreams."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-upstreams",
                                        daemon=True)
        self._thread.start()
        self._fakes: list[FakeUpstream] = []

    def run(self, coro: Awaitable[T]) -> T:
        async def wrapped() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result(CALL_TIMEOUT)

    def call(self, fn: Callable[[], T]) -> T:
        """Run a plain function on the loop's thread (e.g. `fake.fail_next(...)`)."""

        async def wrapped() -> T:
            return fn()

        return self.run(wrapped())

    def start(self, make: Callable[[], F]) -> F:
        """Build a fake on the loop's thread (its asyncio objects belong there) and serve
        it on a free loopback port; `fake.url` is its base URL."""

        async def build() -> F:
            fake = make()
            await fake.start()
            return fake

        fake = self.run(build())
        self._fakes.append(fake)
        return fake

    def close(self) -> None:
        try:
            for fake in self._fakes:
                self.run(fake.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=CALL_TIMEOUT)
            self._loop.close()


# -- what a fake saw
def calls(fake: FakeUpstream, path_suffix: str, method: str = "POST") -> list[RecordedRequest]:
    """The requests `fake` recorded whose path ends with `path_suffix`."""
    return [r for r in list(fake.requests)
            if r.method == method and r.path.endswith(path_suffix)]


def generation_calls(fake: FakeUpstream) -> list[RecordedRequest]:
    return calls(fake, "/images/generations")


def wait_for(what: str, check: Callable[[], bool], timeout: float = 20.0,
              interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


# -- the config file
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}"
                                for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {value!r}")


def channel(name: str, adapter: str, fake: FakeUpstream, models: Sequence[str],
            **extra: Any) -> dict[str, Any]:
    """A `[[channels]]` table for `fake`: OpenAI dialects take the base URL up to `/v1`,
    the async task services their origin."""
    base = fake.url + "/v1" if adapter in ("openai", "openai_compatible") else fake.url
    return {"name": name, "adapter": adapter, "base_url": base, "api_key": fake.api_key,
            "models": list(models), **extra}


def write_config(path: Path, channels: Sequence[Mapping[str, Any]],
                 settings: Mapping[str, Any] | None = None) -> Path:
    lines = [f"{k} = {_toml_value(v)}" for k, v in (settings or {}).items()]
    for table in channels:
        lines += ["", "[[channels]]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
