"""A fake of the 000/001 seeds' service (DimiLinks), served over real HTTP on loopback.

- `POST /v1/images/generations` (JSON) and `POST /v1/images/edits` (multipart): sync by
  default; async with `?async=true`, `?wait_for_result=false`, `Prefer: respond-async` or
  `"wait_for_result": false`, answering `{created, task_id, data: []}`.
- `GET /v1/tasks/{id}` (and the older `/v1/images/tasks/{id}`): the task object, whose
  `result` is the sync response body.
- Results are RELATIVE signed paths `/p/img/<task>/<i>?exp=<ms>&sig=...`, served here
  without a bearer, as the seed documents (the quirk adapters must resolve).
- Requests are checked by the seeds' own rules (`dimilinks_rules`): a broken one is a 400.
- Errors `{"error": {message, type, code}}`; a prompt with "forbidden" fails the task as a
  content-policy violation, `fail_task_next()` fails the next one generically, an unknown
  task id is a 404.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any

from aiohttp import web

from imagegate.testing.upstreams import dimilinks_rules as rules
from imagegate.testing.upstreams.async_tasks import FakeTask, FakeTaskUpstream
from imagegate.testing.upstreams.common import RecordedRequest

_ERRORS: dict[int, tuple[str, str, str]] = {  # status -> (type, code, message)
    400: ("invalid_request_error", "invalid_value", "Invalid request"),
    401: ("authentication_error", "invalid_api_key", "Missing or invalid API key"),
    402: ("payment_required", "insufficient_balance", "Insufficient balance"),
    403: ("permission_error", "model_not_allowed", "Model is not allowed for this API key"),
    404: ("invalid_request_error", "not_found", "Not found"),
    429: ("rate_limit_error", "rate_limit_exceeded", "Rate limit exceeded"),
    500: ("server_error", "internal_error", "Internal server error"),
    503: ("service_unavailable", "service_unavailable", "Service temporarily unavailable"),
}
_URL_TTL_MS = 86_400_000


class FakeDimilinks(FakeTaskUpstream):
    def __init__(self, *, api_key: str = "sk-fake", latency: float = 0.0,
                 progress_per_poll: int | None = None) -> None:
        super().__init__(api_key=api_key, latency=latency, progress_per_poll=progress_per_poll)
        self._secret = secrets.token_bytes(16)
        self._images: dict[tuple[str, int], bytes] = {}

    def routes(self) -> list[web.RouteDef]:
        return [
            *super().routes(),
            web.post("/v1/images/generations", self._submit),
            web.post("/v1/images/edits", self._submit),
            web.get("/v1/tasks/{task_id}", self._get_task),
            web.get("/v1/images/tasks/{task_id}", self._get_task),
            web.get("/p/img/{task_id}/{index}", self._get_image),
        ]

    def error_body(self, status: int, message: str | None = None,
                   code: str | None = None) -> Any:
        kind, default_code, default_message = _ERRORS.get(
            status, ("server_error" if status >= 500 else "invalid_request_error",
                     "error", f"HTTP {status}"))
        return {"error": {"message": message or default_message, "type": kind,
                          "code": code or default_code}}

    # ------------------------------------------------------------------ handlers

    async def _submit(self, request: web.Request) -> web.StreamResponse:
        record, answer = await self.begin(request)
        if answer is not None:
            return answer
        files = [(part.name, len(part.data)) for part in record.files()]
        try:
            size = rules.check(record.fields(), files, edit=request.path.endswith("/edits"))
        except rules.Refusal as exc:
            return self.json_response(self.error_body(400, str(exc)), status=400)
        task = self.create_task(record, "img_", size)
        if _wants_async(request, record):
            return self.json_response({"created": int(task.created), "task_id": task.id,
                                       "data": []})
        await self.wait_finished(task)
        if task.failure is not None:
            status = 400 if task.failure.kind == "content_policy" else 500
            return self.json_response(self._task_error(task), status=status)
        return self.json_response(self._result(task))

    async def _get_task(self, request: web.Request) -> web.StreamResponse:
        task, answer = await self.begin_poll(request)
        if task is None:
            assert answer is not None
            return answer
        phase, progress = self.advance(task)
        status = {"queued": "queued", "running": "in_progress"}.get(phase, phase)
        return self.json_response({
            "id": task.id, "task_id": task.id, "object": "image.task", "status": status,
            "progress": progress, "model": task.model, "created_at": int(task.created),
            "completed_at": int(task.completed) if task.completed else None,
            "result": self._result(task) if phase == "succeeded" else None,
            "error": self._task_error(task)["error"] if phase == "failed" else None,
        })

    async def _get_image(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)  # no bearer: the signature is the credential
        task_id, index = request.match_info["task_id"], request.match_info["index"]
        exp, sig = request.query.get("exp", ""), request.query.get("sig", "")
        if not (exp.isdigit() and hmac.compare_digest(sig, self._sign(task_id, index, exp))
                and int(exp) > time.time() * 1000):
            return self.json_response(self.error_body(403, "invalid or expired signature",
                                                      "invalid_signature"), status=403)
        data = self._images.get((task_id, int(index))) if index.isdigit() else None
        if data is None:
            return self.json_response(self.error_body(404, "image not found"), status=404)
        return web.Response(body=data, content_type="image/png")

    # ------------------------------------------------------------------ shapes

    def result_url(self, task: FakeTask, index: int, data: bytes) -> str:
        self._images[(task.id, index)] = data
        exp = str(int(time.time() * 1000) + _URL_TTL_MS)
        return f"/p/img/{task.id}/{index}?exp={exp}&sig={self._sign(task.id, str(index), exp)}"

    def _sign(self, task_id: str, index: str, exp: str) -> str:
        message = f"{task_id}/{index}/{exp}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    def _result(self, task: FakeTask) -> dict[str, Any]:
        """The sync response body (also a succeeded task's `result`)."""
        suffix = task.id.removeprefix("img_")
        return {
            "created": int(task.created),
            "task_id": task.id,
            "data": [{"url": url, "file_id": f"file_{suffix}_{i}"}
                     for i, url in enumerate(task.results)],
            "size": f"{task.width}x{task.height}",
            "output_format": task.output_format,
            "usage": {"input_tokens": len(task.prompt) // 4 + 1, "output_tokens": 256 * task.n,
                      "total_tokens": len(task.prompt) // 4 + 1 + 256 * task.n},
        }

    def _task_error(self, task: FakeTask) -> dict[str, Any]:
        assert task.failure is not None
        body: dict[str, Any]
        if task.failure.kind == "content_policy":
            body = self.error_body(400, task.failure.message, "content_policy_violation")
        else:
            body = self.error_body(500, task.failure.message, "generation_failed")
        return body


def _wants_async(request: web.Request, record: RecordedRequest) -> bool:
    """Any one of the seed's four switches."""
    query = request.query
    wait = record.fields().get("wait_for_result")
    return (query.get("async", "").lower() == "true"
            or query.get("wait_for_result", "").lower() == "false"
            or "respond-async" in request.headers.get("Prefer", "").lower()
            or wait is False or (isinstance(wait, str) and wait.lower() == "false"))
