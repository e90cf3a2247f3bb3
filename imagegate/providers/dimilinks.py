"""The `dimilinks` adapter: the 000 seed's native async API.

Submit `POST /v1/images/generations?async=true` (references and mask as `data:` URLs in
`image_urls` / `mask_url`: the seed recommends this JSON route over multipart edits), poll
`GET /v1/tasks/{id}`; a succeeded task's `result` is the sync response body, whose
`data[].url` is usually a relative signed `/p/img/...` path, resolved against the channel's
origin by the downloader. The loop itself is `polling.AsyncTaskProvider`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from imagegate.providers.base import ProviderJob
from imagegate.providers.polling import AsyncTaskProvider, ResultItem, TaskState
from imagegate.providers.upstream import bad_response


class DimilinksProvider(AsyncTaskProvider):
    async def submit(self, job: ProviderJob) -> tuple[str, TaskState | None]:
        body = await self.client.post_json("/v1/images/generations", self._body(job),
                                           params={"async": "true"})
        if not isinstance(body, Mapping):
            raise bad_response(self.name, "submit answer is not an object")
        task_id = body.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise bad_response(self.name, "no task_id in the submit answer")
        # An upstream ignoring `async=true` answers with the finished images at once.
        items = _items(body)
        return task_id, TaskState("succeeded", 100, items, _usage(body)) if items else None

    def _body(self, job: ProviderJob) -> dict[str, Any]:
        r = job.request
        body = self.base_body(job)
        body.update(output_format=r.output_format, background=r.background,
                    moderation=r.moderation)
        if r.output_compression is not None:
            body["output_compression"] = r.output_compression
        if r.user:
            body["user"] = r.user
        return body

    async def poll(self, upstream_id: str) -> TaskState:
        body = await self.client.get_json(f"/v1/tasks/{quote(upstream_id, safe='')}")
        if not isinstance(body, Mapping):
            raise bad_response(self.name, "task is not an object")
        result = body.get("result")
        if not isinstance(result, Mapping):
            return self.task_state(body, ())
        return self.task_state(body, _items(result), _usage(result))


def _items(body: Mapping[str, Any]) -> tuple[ResultItem, ...]:
    """The images of a sync response body: each `data[]` entry's non-empty `url` or
    `b64_json` (an empty string is "absent", not an image)."""
    data = body.get("data")
    if not isinstance(data, list):
        return ()
    items: list[ResultItem] = []
    for entry in data:
        if not isinstance(entry, Mapping):
            continue
        value = entry.get("b64_json") or entry.get("url")
        if isinstance(value, str) and value:
            revised = entry.get("revised_prompt")
            items.append(ResultItem(value, revised if isinstance(revised, str) else None))
    return tuple(items)


def _usage(body: Mapping[str, Any]) -> dict[str, object]:
    usage = body.get("usage")
    return dict(usage) if isinstance(usage, Mapping) else {}
