"""Helpers shared by the profile tests: the in-process app (real SQLite, memory blobs, the
sandbox provider) behind an httpx ASGI client, and small image utilities.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pyvips
import sqlalchemy as sa
from fastapi import FastAPI

from imagegate.app import build_app
from imagegate.config import Settings
from imagegate.db.database import read_scalar
from imagegate.db.tables import tasks
from imagegate.wiring import Backends, build_backends

APIMART_TERMINAL = frozenset({"completed", "failed", "cancelled"})


class Env:
    def __init__(self, app: FastAPI, client: httpx.AsyncClient, backends: Backends,
                 key: str) -> None:
        self.app = app
        self.client = client
        self.backends = backends
        self.key = key

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def post(self, path: str, body: Any, headers: dict[str, str] | None = None
                   ) -> httpx.Response:
        return await self.client.post(path, json=body, headers={**self.auth, **(headers or {})})

    async def task_count(self) -> int:
        return int(await read_scalar(self.backends.db,
                                     sa.select(sa.func.count()).select_from(tasks)))

    async def apimart_task(self, task_id: str) -> dict[str, Any]:
        r = await self.client.get(f"/apimart/v1/tasks/{task_id}", headers=self.auth)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        assert body["code"] == 200
        data: dict[str, Any] = body["data"]
        return data

    async def apimart_wait(self, task_id: str, timeout: float = 20.0) -> dict[str, Any]:
        for _ in range(int(timeout / 0.05)):
            data = await self.apimart_task(task_id)
            if data["status"] in APIMART_TERMINAL:
                return data
            await asyncio.sleep(0.05)
        raise AssertionError(f"task {task_id} did not finish")

    async def download(self, url: str) -> bytes:
        r = await self.client.get(url)
        assert r.status_code == 200, r.text
        return r.content


@asynccontextmanager
async def open_env(tmp_path: Path, **overrides: Any) -> AsyncIterator[Env]:
    settings = Settings(data_dir=tmp_path,
                        **{"blob_store": "memory", "poll_interval_seconds": 0.2, **overrides})
    backends = await build_backends(settings)
    try:
        key, _ = await backends.keys.create("test")
        app = build_app(settings, backends)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver",
                                     timeout=60) as client:
            yield Env(app, client, backends, key)
    finally:
        await backends.aclose()


def make_image(width: int = 64, height: int = 48, fmt: str = ".png",
               colour: tuple[int, int, int] = (255, 0, 0)) -> bytes:
    img = (pyvips.Image.black(width, height) + list(colour)).cast("uchar")
    data: bytes = img.write_to_buffer(fmt)
    return data


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def image_size(data: bytes) -> tuple[int, int]:
    img = pyvips.Image.new_from_buffer(data, "")
    return int(img.width), int(img.height)
