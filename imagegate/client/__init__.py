"""A small asynchronous client for imagegate's native API (used by `imagegate generate`),
and its admin side, `AdminClient` (admin.py; used by `imagegate channels`).

It submits asynchronously and polls, so it never holds one request open for minutes, follows
`Retry-After`, and downloads results from their signed URLs.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from typing import Any

import orjson

from imagegate.client.admin import (
    AdminAnswerError,
    AdminClient,
    AdminError,
    ServerUnreachable,
    UnexpectedAnswer,
)
from imagegate.client.session import BearerSession

__all__ = ["TERMINAL", "AdminAnswerError", "AdminClient", "AdminError", "ClientError",
           "ImagegateClient", "ServerUnreachable", "UnexpectedAnswer"]

TERMINAL = ("succeeded", "failed", "cancelled")


class ClientError(Exception):
    """An error answer from the server, with its OpenAI-style fields."""

    def __init__(self, status: int, body: Any) -> None:
        err = body.get("error", {}) if isinstance(body, dict) else {}
        self.status = status
        self.code = err.get("code")
        self.param = err.get("param")
        message = err.get("message") or str(body)
        super().__init__(f"{status} {self.code or ''}: {message}".strip())


class ImagegateClient(BearerSession):
    def __init__(self, base_url: str, api_key: str, *, timeout: float = 30.0) -> None:
        super().__init__(base_url, api_key, timeout=timeout)

    async def _json(self, method: str, path: str, body: dict[str, Any] | None = None
                    ) -> tuple[int, dict[str, str], Any]:
        data = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if data else {}
        async with self.session.request(method, self.base_url + path, data=data,
                                        headers=headers) as resp:
            raw = await resp.read()
            parsed = orjson.loads(raw) if raw else None
            if resp.status >= 400:
                raise ClientError(resp.status, parsed)
            return resp.status, dict(resp.headers), parsed

    async def submit(self, request: dict[str, Any]) -> tuple[str, float]:
        """Create a task; returns (task_id, seconds to wait before the first poll)."""
        _, headers, body = await self._json("POST", "/v1/images/generations?async=true", request)
        return body["task_id"], float(headers.get("Retry-After", "1"))

    async def task(self, task_id: str) -> dict[str, Any]:
        _, _, body = await self._json("GET", f"/v1/tasks/{task_id}")
        result: dict[str, Any] = body
        return result

    async def cancel(self, task_id: str) -> dict[str, Any]:
        _, _, body = await self._json("POST", f"/v1/tasks/{task_id}/cancel")
        result: dict[str, Any] = body
        return result

    async def wait(self, task_id: str, *, first_wait: float = 1.0, interval: float = 1.0,
                   timeout: float = 1800.0,
                   on_progress: Callable[[dict[str, Any]], None] | None = None
                   ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        await asyncio.sleep(min(first_wait, interval))
        while True:
            task = await self.task(task_id)
            if on_progress is not None:
                on_progress(task)
            if task["status"] in TERMINAL:
                return task
            if time.monotonic() > deadline:
                raise TimeoutError(f"task {task_id} still {task['status']} after {timeout}s")
            await asyncio.sleep(interval)

    async def download(self, item: dict[str, Any]) -> bytes:
        """The bytes of one `data[]` item, whichever form it came in."""
        if item.get("b64_json"):
            return base64.b64decode(item["b64_json"])
        url: str = item["url"]
        if url.startswith("data:"):
            return base64.b64decode(url.split(",", 1)[1])
        if url.startswith("/"):
            url = self.base_url + url
        async with self.session.get(url) as resp:
            if resp.status >= 400:
                raise ClientError(resp.status, orjson.loads(await resp.read() or b"{}"))
            return await resp.read()
