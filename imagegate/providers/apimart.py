"""The `apimart` adapter: the 002 seed's async task API.

Submit `POST /v1/images/generations` -> `{code: 200, data: [{status: "submitted", task_id}]}`,
poll `GET /v1/tasks/{task_id}` -> `{code, data: {status, progress, result: {images: [{url:
[...], expires_at}]}, error}}`. References (and a mask) go as `data:` URLs in `image_urls`,
which the seed says may mix with URLs. The loop itself is `polling.AsyncTaskProvider`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from imagegate.providers.base import ProviderJob
from imagegate.providers.polling import AsyncTaskProvider, ResultItem, TaskState
from imagegate.providers.upstream import bad_response, translate


class ApimartProvider(AsyncTaskProvider):
    async def submit(self, job: ProviderJob) -> tuple[str, TaskState | None]:
        body = self._payload(await self.client.post_json("/v1/images/generations",
                                                         self._body(job)))
        entries = body.get("data")
        first = entries[0] if isinstance(entries, list) and entries else None
        task_id = first.get("task_id") if isinstance(first, Mapping) else None
        if not isinstance(task_id, str) or not task_id:
            raise bad_response(self.name, "no data[0].task_id in the submit answer")
        return task_id, None

    def _body(self, job: ProviderJob) -> dict[str, Any]:
        # The seed takes `size` as a ratio or as one of its table's pixel sizes; imagegate
        # resolved the ratio already, so the exact pixels plus their tier are sent. A mask
        # is not in the seed; it goes in the 000 seed's spelling rather than silently dropped.
        return self.base_body(job)

    async def poll(self, upstream_id: str) -> TaskState:
        body = self._payload(
            await self.client.get_json(f"/v1/tasks/{quote(upstream_id, safe='')}"))
        data = body.get("data")
        if not isinstance(data, Mapping):
            raise bad_response(self.name, "task answer without a data object")
        return self.task_state(data, _items(data.get("result")))

    def _payload(self, body: Any) -> Mapping[str, Any]:
        """The answer's object; an error spelled in the body (`code` other than 200) with an
        HTTP 200 is translated like the same HTTP status would be."""
        if not isinstance(body, Mapping):
            raise bad_response(self.name, "answer is not an object")
        code = body.get("code")
        if isinstance(code, int) and code != 200 and 400 <= code <= 599:
            raise translate(code, body, {}, secret=self.channel.secret())
        return body


def _items(result: Any) -> tuple[ResultItem, ...]:
    """`result.images[].url[]`. One entry per image with its URL(s) first; when the upstream
    packs several images into one entry's list instead (fewer entries than URLs and only one
    entry), every URL of it is an image."""
    images = result.get("images") if isinstance(result, Mapping) else None
    if not isinstance(images, list):
        return ()
    lists: list[list[str]] = []
    for entry in images:
        urls = entry.get("url") if isinstance(entry, Mapping) else None
        if isinstance(urls, str):
            urls = [urls]
        if isinstance(urls, list):
            lists.append([u for u in urls if isinstance(u, str) and u])
    lists = [urls for urls in lists if urls]
    if len(lists) == 1:
        return tuple(ResultItem(u) for u in lists[0])
    return tuple(ResultItem(urls[0]) for urls in lists)
