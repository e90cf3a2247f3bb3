"""The `openai` adapter: the official Images API (POST /images/generations, /images/edits,
/images/variations).

Each model gets only what it accepts: gpt-image-2 class models a free `WxH`, the older ones
their enumerated size; DALL·E 3 `standard`/`hd` plus `style` and `response_format=b64_json`;
gpt-image models never `response_format` (they reject it and always answer base64).
Requests with reference images go to /images/edits as multipart (`image[]` files, `mask`);
variations to /images/variations as multipart (one `image` file), after checking the image is
what OpenAI accepts there (a square PNG under 4 MB), so a call bound to fail is never sent.

A synchronous call cannot be resumed after a crash, so `SYNC_CALL` is recorded just before
it is sent (see base.py): a task found in that state is failed and refunded, never sent
twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from imagegate.config import ChannelConfig
from imagegate.domain.catalog import Catalog, ModelSpec, load_catalog
from imagegate.domain.images import GeneratedImage
from imagegate.errors import ProviderError, ProviderRejectedError
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
from imagegate.providers.upstream import UpstreamClient


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
        self.client = UpstreamClient(channel)

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
        answer = await send()
        items, usage = wire.parse_answer(answer, self.name)
        quality, background = wire.reported_choices(answer)
        images = await self.load_all(items)
        await progress(100)
        return ProviderResult(images=images, usage=usage, quality=quality,
                              background=background)

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


@dataclass(frozen=True, slots=True)
class PreparedCall:
    """One prepared upstream request: `await call()` performs it."""

    method: Callable[[str, Any], Awaitable[Any]]  # UpstreamClient.post_json / post_form
    path: str
    payload: Any  # the JSON body or the multipart form

    async def __call__(self) -> Any:
        return await self.method(self.path, self.payload)
