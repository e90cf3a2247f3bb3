"""The one interface every image backend implements.

A provider turns a normalized `ImageRequest` into finished image bytes. It reports progress
through a callback and signals failure only with the exceptions of `imagegate.errors`
(vendor errors are translated here, at the boundary, never above it).
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from imagegate.domain.images import GeneratedImage, PartialImage, ReferenceImage
from imagegate.domain.request import ImageRequest
from imagegate.errors import ProviderRejectedError

ProgressCallback = Callable[[int], Awaitable[None]]
"""Called with a progress percentage (0-100); cheap to call often, the worker throttles."""


PartialCallback = Callable[[PartialImage], Awaitable[None]]
"""Called with each partial image when the request asked for them (streaming)."""


async def no_partials(_partial: PartialImage) -> None:
    """The partial callback of callers that do not stream."""


@dataclass(frozen=True, slots=True)
class ProviderResult:
    images: list[GeneratedImage]
    usage: dict[str, object] = field(default_factory=dict)
    # Which upstream channel produced the images (set by routing); None means the provider
    # itself (its `name`). The task records it, so the worker never needs to know routing.
    channel: str | None = None
    # What the upstream says it made where the request left it open (`quality: auto`,
    # `background: auto`): responses report these. None: the request's own values stand.
    quality: str | None = None
    background: str | None = None


UpstreamCallback = Callable[[str, str], Awaitable[None]]
"""`remember_upstream(channel, upstream_task_id)`: records, durably and before anything else
happens, that `channel` holds this job under `upstream_task_id` (see `SYNC_CALL`)."""

SYNC_CALL = "sync-call"
"""The upstream id recorded just before a synchronous (non-resumable) upstream call. A worker
that finds it on a task it claims knows a crash cut that call off: the upstream may have
produced (and charged for) the image, so the task is failed and refunded, never resubmitted.
That check is the worker's alone (`tasks/worker.py`): no provider ever sees a job carrying
this id."""


def refuse_variation(*channels: tuple[str, str]) -> ProviderRejectedError:
    """The refusal of channels (name, adapter) whose upstreams have no variations endpoint:
    the request's fault there (400, never retried, nothing charged), not an outage."""
    named = ", ".join(f"{name!r} ({adapter})" for name, adapter in channels)
    verb = "does" if len(channels) == 1 else "do"
    noun = "channel" if len(channels) == 1 else "channels"
    return ProviderRejectedError(f"The {noun} {named} {verb} not offer image variations",
                                 code="unsupported_operation")


async def _forget_upstream(_channel: str, _upstream_id: str) -> None:
    """The callback of callers that do not persist upstream ids (tests, direct calls)."""


@dataclass(frozen=True, slots=True)
class ProviderJob:
    """What a worker hands a provider: the request, its input images, the task it is for.

    `upstream_channel`/`upstream_task_id` are set when an earlier run of this task already
    had an upstream accept it: the provider then resumes that upstream task (polls it)
    instead of submitting again."""

    task_id: str
    request: ImageRequest
    attempt: int = 1
    references: tuple[ReferenceImage, ...] = ()
    mask: ReferenceImage | None = None
    upstream_channel: str | None = None
    upstream_task_id: str | None = None
    remember_upstream: UpstreamCallback = _forget_upstream


class Provider(abc.ABC):
    """One backend. Implementations must be safe to call concurrently."""

    name: str = "provider"
    # Whether `generate` can resume an upstream task from `job.upstream_task_id` (async task
    # APIs); a non-resumable upstream call is marked with `SYNC_CALL` before it is made.
    resumable: bool = False
    # Whether a run costs anything upstream: the sandbox is free to re-run after a crash.
    remote: bool = False
    # Whether it makes variations of an input image (`operation == "variation"`); one that
    # does not refuses such a job with `ProviderRejectedError` (see `refuse_variation`).
    variations: bool = False

    def offers(self, operation: str) -> bool:
        """Whether this provider can run a job of `operation` (routing prefers those that do)."""
        return operation != "variation" or self.variations

    @abc.abstractmethod
    async def generate(self, job: ProviderJob, progress: ProgressCallback,
                       partial: PartialCallback = no_partials) -> ProviderResult:
        """Produce exactly `job.request.n` images of the requested size and format.

        When `job.request.partial_images` > 0, a provider that can preview sends that many
        partial images per image through `partial` before returning; one that cannot sends
        none (streaming clients then get only the final images)."""

    def describe(self) -> str:
        """What serves a model through this provider, for `/v1/models` and the banner."""
        return self.name

    async def aclose(self) -> None:  # noqa: B027 - most providers hold nothing to release
        """Release connections and threads."""
