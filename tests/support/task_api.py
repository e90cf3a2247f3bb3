"""A small fake of the task API the server is growing — `GET /v1/tasks/{id}/events` (Server-
Sent Events, resumable with `Last-Event-ID`) and `GET /v1/tasks` (newest first, paged with
`after`) — served over real HTTP by a `FakeLoop`, so the client's code paths for them are
tested before the server has them. Task `img_live`'s stream breaks after its second event
the first time it is read; `img_0` … `img_6` are finished tasks to list.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from aiohttp import web

from imagegate.testing.upstreams.common import FakeUpstream

KEY = "ig_fake"


def task_object(task_id: str, status: str, progress: int = 0, **more: Any) -> dict[str, Any]:
    return {"id": task_id, "task_id": task_id, "object": "image.task", "status": status,
            "progress": progress, "model": "gpt-image-2", "created_at": 1_800_000_000,
            "result": None, "error": None, **more}


class FakeTaskAPI(FakeUpstream):
    """Tasks img_0 … img_{N-1}, newest last; img_live's event stream breaks after its second
    event, the first time."""

    def __init__(self, tasks: int = 7) -> None:
        super().__init__(api_key=KEY)
        self.all = [task_object(f"img_{i}", "succeeded", 100) for i in range(tasks)]
        self.resumed_from: list[str | None] = []
        self.creates: list[str] = []
        self.image = b"\x89PNG\r\n\x1a\nfake"

    def routes(self) -> list[web.RouteDef]:
        return [*super().routes(),
                web.post("/v1/images/generations", self._create),
                web.get("/v1/tasks", self._list),
                web.get("/v1/tasks/{task_id}", self._get),
                web.get("/v1/tasks/{task_id}/events", self._events)]

    def done(self) -> dict[str, Any]:
        url = self.url + self.store_file(self.image)
        return task_object("img_live", "succeeded", 100, result={
            "data": [{"url": url}, {"b64_json": base64.b64encode(self.image).decode()}],
            "output_format": "png"})

    async def _create(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        self.creates.append(request.headers.get("Idempotency-Key", ""))
        if len(self.creates) == 1:  # the first try fails: a keyed create is tried again
            return self.json_response({"error": {"message": "oops", "type": "server_error",
                                                 "param": None, "code": "internal_error"}},
                                      status=500)
        return self.json_response({"created": 1, "task_id": "img_live", "data": []},
                                  status=202, headers={"Retry-After": "1"})

    async def _get(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        return self.json_response(self.done())

    async def _list(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        newest_first = list(reversed(self.all))
        after = request.query.get("after")
        if after:
            newest_first = newest_first[[t["id"] for t in newest_first].index(after) + 1:]
        limit = int(request.query.get("limit", "20"))
        page = newest_first[:limit]
        return self.json_response({"object": "list", "data": page,
                                   "has_more": len(newest_first) > limit,
                                   "last_id": page[-1]["id"] if page else None})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        last = request.headers.get("Last-Event-ID")
        self.resumed_from.append(last)
        events = [("1", "task.queued", {"status": "queued", "queue_position": 1}),
                  ("2", "task.started", {"status": "in_progress"}),
                  ("3", "task.progress", {"progress": 40, "estimated_seconds": 12}),
                  ("4", "task.partial_image", {"b64_json": base64.b64encode(b"part").decode(),
                                               "partial_image_index": 0}),
                  ("5", "task.succeeded", self.done())]
        start = 0 if last is None else int(last)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b": keep-alive\n\n")
        for n, (event_id, name, data) in enumerate(events[start:]):
            if last is None and n == 2:
                return response  # the connection ends before the task did
            await response.write(f"id: {event_id}\nevent: {name}\ndata: "
                                 f"{json.dumps(data)}\n\n".encode())
        return response
