"""A fake of the 002 seed's service (APIMart), served over real HTTP on loopback.

- `POST /v1/images/generations` -> `{code: 200, data: [{status: "submitted", task_id}]}`
  (always async: the seed has no sync mode).
- `GET /v1/tasks/{task_id}` -> `{code: 200, data: {id, status (pending, processing,
  completed, failed), progress, created, completed, estimated_time, actual_time, cost,
  result: {images: [{url: [<absolute URL>], expires_at}]}, error}}`.
- Requests are checked by the seed's own rules (`apimart_rules`): its size × resolution
  table, `n`, `image_urls`; a broken one is a 400.
- Errors `{"error": {code: <HTTP status>, message, type}}` with the seed's own messages for
  400/401/402/429/500/503; an unknown task id is a 404 in the same shape. A prompt with
  "forbidden" fails the task (content policy), `fail_task_next()` fails the next one.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from imagegate.testing.upstreams import apimart_rules as rules
from imagegate.testing.upstreams.async_tasks import FakeTask, FakeTaskUpstream

# The seed's documented error bodies, word for word; 403/404 are not documented there and
# get the nearest type (as imagegate's own apimart profile spells them).
_ERRORS: dict[int, tuple[str, str]] = {  # status -> (type, message)
    400: ("invalid_request_error", "参数错误：size 不合法 / resolution 不支持 / 像素违规等"),
    401: ("authentication_error", "身份验证失败，请检查您的API密钥"),
    402: ("payment_required", "账户余额不足，请充值后再试"),
    403: ("permission_error", "无权访问该模型"),
    404: ("invalid_request_error", "任务不存在"),
    429: ("rate_limit_error", "请求过于频繁，请稍后再试"),
    500: ("server_error", "服务器错误"),
    503: ("service_unavailable", "上游暂时不可用，请稍后再试"),
}
_URL_TTL_S = 86_400
_ESTIMATED_S = {"1k": 60, "2k": 120, "4k": 180}
_STATUS = {"queued": "pending", "running": "processing", "succeeded": "completed",
           "failed": "failed"}


class FakeApimart(FakeTaskUpstream):
    def routes(self) -> list[web.RouteDef]:
        return [
            *super().routes(),
            web.post("/v1/images/generations", self._submit),
            web.get("/v1/tasks/{task_id}", self._get_task),
        ]

    def error_body(self, status: int, message: str | None = None,
                   code: str | None = None) -> Any:
        del code  # this dialect's `code` is the HTTP status
        kind, default = _ERRORS.get(
            status, ("server_error" if status >= 500 else "invalid_request_error",
                     f"HTTP {status}"))
        return {"error": {"code": status, "message": message or default, "type": kind}}

    async def _submit(self, request: web.Request) -> web.StreamResponse:
        record, answer = await self.begin(request)
        if answer is not None:
            return answer
        try:
            size = rules.check(record.fields())
        except rules.Refusal as exc:
            return self.json_response(self.error_body(400, str(exc)), status=400)
        task = self.create_task(record, "task_01KPQ7J7DWB7", size)
        return self.json_response({"code": 200,
                                   "data": [{"status": "submitted", "task_id": task.id}]})

    async def _get_task(self, request: web.Request) -> web.StreamResponse:
        task, answer = await self.begin_poll(request)
        if task is None:
            assert answer is not None
            return answer
        phase, progress = self.advance(task)
        data: dict[str, Any] = {
            "id": task.id, "status": _STATUS[phase], "progress": progress,
            "created": int(task.created), "estimated_time": _ESTIMATED_S["1k"], "cost": 0.05,
        }
        if task.completed is not None:
            data["completed"] = int(task.completed)
            data["actual_time"] = int(task.completed) - int(task.created)
        if phase == "succeeded":
            expires = int(time.time()) + _URL_TTL_S
            data["result"] = {"images": [{"url": [url], "expires_at": expires}
                                         for url in task.results]}
        if phase == "failed":
            data["error"] = self._task_error(task)
        return self.json_response({"code": 200, "data": data})

    def _task_error(self, task: FakeTask) -> dict[str, Any]:
        assert task.failure is not None
        status = 400 if task.failure.kind == "content_policy" else 500
        inner: dict[str, Any] = self.error_body(status, task.failure.message)["error"]
        return inner
