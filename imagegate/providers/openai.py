"""The `openai` adapter: the official Images API (POST /images/generations, /images/edits,
/images/variations).

Each model gets only what it accepts: gpt-image-2 class models a free `WxH`, the older ones
their enumerated size; DALL·E 3 `standard`/`hd` plus `style` and `response_format=b64_json`;
gpt-image models never `response_format` (they reject it and always answer base64).
Requests with reference images go to /images/edits as multipart (`image[]` files, `mask`);
variations to /images/variations as multipart (one `image` file), after checking the image is
what OpenAI accepts there (a square PNG under 4 MB), so a call bound to fail is never sent.

Generations whose request wants previews (`stream: true`, or `partial_images` ≥ 1, e.g. for
a client following `GET /v1/tasks/{id}/events`) of a model that streams (the catalog's
`streaming`) are asked with `stream: true` + `partial_images`: the upstream's
`image_generation.partial_image` events are passed on as they come (previews only, never
stored) and its `image_generation.completed` events are the results. An upstream that refuses
to stream (a 400 naming `stream`, as resellers without it answer) is asked again without it.

A synchronous call cannot be resumed after a crash, so `SYNC_CALL` is recorded just before
it is sent (see base.py): a task found in that state is failed and refunded, never sent
twice.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from imagegate.config import ChannelConfig
from imagegate.domain.catalog import Catalog, ModelSpec, load_catalog
from imagegate.domain.images import GeneratedImage, PartialImage
from imagegate.errors import ProviderError, ProviderRejectedError
from imagegate.providers import big_json
from imagegate.providers import openai_wire as wire
from imagegate.providers.base import (
    SYNC_CALL,
    PartialCallback,
    ProgressCallback,
    Provider,
    ProviderJob,
    ProviderResult,
    no_partials,
)
from imagegate.providers.results import ResultDownloader
from imagegate.providers.upstream import UpstreamClient, translate

log = logging.getLogger("imagegate.providers.openai")


class OpenAIProvider(Provider):
    remote = True
    resumable = False
    variations = True

    def __init__(self, channel: ChannelConfig, downloader: ResultDownloader, *,
                 catalog: Catalog | None = None) -> None:
        self.channel = channel
        self.name = channel.name
        self.downloader = downloader
        # The model rules (size rule, family) come from the catalog the service runs with.
        self.catalog = catalog if catalog is not None else load_catalog()
        self.client = UpstreamClient(channel, loads=big_json.loads_images)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def generate(self, job: ProviderJob, progress: ProgressCallback,
                       partial: PartialCallback = no_partials) -> ProviderResult:
        upstream_model = self.channel.upstream_model(job.request.model)
        spec = wire.model_spec(self.catalog, upstream_model, job.request.model)
        send = self.prepare(job, upstream_model, spec)
        # Recorded before the call: if we crash while it runs, the upstream may still make
        # (and bill) the image, so recovery must fail the task rather than call again.
        await job.remember_upstream(self.name, SYNC_CALL)
        if streams(job, spec) and send.path == "/images/generations":
            answer = await self.streamed(send, job.request.partial_images, partial)
        else:
            answer = await send()
        items, usage = wire.parse_answer(answer, self.name)
        quality, background = wire.reported_choices(answer)
        images = await self.load_all(items)
        await progress(100)
        return ProviderResult(images=images, usage=usage, quality=quality,
                              background=background)

    async def streamed(self, send: PreparedCall, partials: int,
                       partial: PartialCallback) -> dict[str, Any]:
        """The answer of a streamed generation, in the shape of the JSON answer; previews go
        to `partial` as they arrive. Falls back to `send()` when streaming is refused."""
        images: list[dict[str, Any]] = []
        final: dict[str, Any] = {}

        async def on_event(name: str, data: Any) -> None:
            if not isinstance(data, dict):
                raise ProviderError(f"{self.name}: unexpected upstream answer: a streamed "
                                    "event is not an object", code="upstream_bad_response")
            if name.endswith(".partial_image"):
                preview = base64.b64decode(str(data.get("b64_json") or ""))
                if preview:
                    await partial(PartialImage(len(images), int(data.get(
                        "partial_image_index") or 0), preview))
            elif name.endswith(".completed"):
                images.append({"b64_json": data.get("b64_json")})
                final.update(data)
            elif name == "error":
                raise translate(400, data, secret=self.channel.secret())

        body = {**send.payload, "stream": True, "partial_images": partials}
        try:
            await self.client.post_json_events(send.path, body, on_event)
        except ProviderRejectedError as exc:
            if images or not _refuses_streaming(exc.message):
                raise
            log.info("%s refused to stream (%s); asking without streaming", self.name,
                     exc.message)
            return dict(await send())
        return {**{k: final.get(k) for k in ("usage", "quality", "background", "size",
                                             "output_format") if k in final}, "data": images}

    def prepare(self, job: ProviderJob, upstream_model: str,
                spec: ModelSpec | None) -> PreparedCall:
        """The upstream call for this job, ready to be sent (built before SYNC_CALL so a
        request we cannot even build never marks the task)."""
        if job.request.operation == "variation":
            return self.prepare_variation(job, upstream_model, spec)
        body = wire.generation_body(job.request, upstream_model, spec)
        if not job.references:
            return PreparedCall(self.client.post_json, "/images/generations", body)
        body = {k: v for k, v in body.items() if k in wire.EDIT_FIELDS}
        fam = wire.family(spec, upstream_model)
        # DALL·E 2 edits take one `image`; gpt-image models take an `image[]` array.
        field = "image" if fam == "dall-e-2" else "image[]"
        refs = job.references[:1] if fam == "dall-e-2" else job.references
        return PreparedCall(self.client.post_form, "/images/edits",
                     wire.edit_form(body, refs, job.mask, image_field=field))

    def prepare_variation(self, job: ProviderJob, upstream_model: str,
                          spec: ModelSpec | None) -> PreparedCall:
        if not job.references:
            # normalize() guarantees the image; a job without one is a bug, not a client error.
            raise ProviderError("a variation job without its image", retryable=False)
        image = job.references[0]
        problem = wire.variation_input_problem(image)
        if problem is not None:
            raise ProviderRejectedError(
                f"The channel {self.name!r} relays variations to OpenAI, which refuses this "
                f"image: {problem}", param="image", code="invalid_image_for_variation")
        body = wire.variation_body(job.request, upstream_model, spec)
        return PreparedCall(self.client.post_form, "/images/variations",
                            wire.edit_form(body, (image,), None, image_field="image"))

    async def load_all(self, items: list[wire.ResultItem]) -> list[GeneratedImage]:
        """Download/decode every result concurrently; the first failure cancels the rest."""
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(self.downloader.load(
                        item.value, client=self.client, revised_prompt=item.revised_prompt))
                    for item in items
                ]
        except* ProviderError as failures:
            raise failures.exceptions[0] from None
        return [task.result() for task in tasks]


def streams(job: ProviderJob, spec: ModelSpec | None) -> bool:
    """Whether to ask the upstream for a stream: a generation that wants previews, of a
    model that streams."""
    request = job.request
    return (request.operation == "generate" and request.partial_images > 0
            and spec is not None and spec.streaming)


def _refuses_streaming(message: str) -> bool:
    text = message.lower()
    return "stream" in text or "unsupported" in text or "not supported" in text


@dataclass(frozen=True, slots=True)
class PreparedCall:
    """One prepared upstream request: `await call()` performs it."""

    method: Callable[[str, Any], Awaitable[Any]]  # UpstreamClient.post_json / post_form
    path: str
    payload: Any  # the JSON body or the multipart form

    # Not `async def`: it hands back the client's own awaitable, so no frame of its own stays
    # suspended while the upstream holds the call (see `UpstreamClient.post_json`).
    def __call__(self) -> Awaitable[Any]:
        return self.method(self.path, self.payload)
