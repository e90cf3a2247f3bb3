"""What the async task adapters (dimilinks, apimart) share: submit once, remember, poll.

An async upstream charges for a task once it has accepted it, so the order here is the whole
point: the upstream's task id is recorded (`job.remember_upstream`) before anything else can
happen, a later run of the same imagegate task resumes polling that id instead of submitting
again, and once a task was accepted nothing here ever says "safe to resubmit"
(`retryable=True`) unless the upstream itself said the task failed or no longer exists.

A dialect subclass only builds its submit request and reads its task object
(`submit`, `poll`); the loop, the classification and the downloads live here, once.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from imagegate.config import ChannelConfig
from imagegate.domain.catalog import Catalog
from imagegate.domain.images import GeneratedImage, ReferenceImage
from imagegate.errors import CONTENT_POLICY, ProviderError, ProviderRejectedError
from imagegate.providers.base import (
    PartialCallback,
    ProgressCallback,
    Provider,
    ProviderJob,
    ProviderResult,
    no_partials,
    refuse_variation,
)
from imagegate.providers.cadence import Cadence
from imagegate.providers.results import ResultDownloader
from imagegate.providers.upstream import UpstreamClient, bad_response, is_content_policy

# Consecutive failed polls tolerated before giving up. A 5xx or a dropped connection while
# the upstream renders says nothing about the task itself, so it is waited out, but not
# forever: a status endpoint down for this many polls in a row is an outage.
POLL_ERROR_LIMIT = 5
# Longest wait between two polls after an error (a `Retry-After` is honoured up to this).
POLL_BACKOFF_MAX = 30.0
# Errors of one poll that say nothing about the task: wait and poll again.
_TRANSIENT = frozenset({
    "upstream_error", "upstream_timeout", "upstream_unavailable", "upstream_rate_limited",
    "upstream_bad_response",
})
# Upstream error codes/types that blame the request, not the service.
_REQUEST_FAULT_WORDS = ("content_policy", "moderation", "safety", "invalid_request", "invalid_",
                        "violation", "sensitive", "unsafe", "rejected")
_REQUEST_FAULT_STATUSES = frozenset({400, 413, 422})
# Task status names across the task dialects (000: queued/in_progress/succeeded/failed;
# 002: submitted/pending/processing/completed/failed), lower-cased.
_RUNNING = frozenset({"submitted", "pending", "queued", "processing", "in_progress", "running"})
_FAILED = frozenset({"failed", "cancelled", "canceled", "error", "expired"})
_DONE = frozenset({"succeeded", "completed", "success"})


@dataclass(frozen=True, slots=True)
class ResultItem:
    """One image as the upstream gave it: a URL (absolute, relative or `data:`) or base64."""

    value: str
    revised_prompt: str | None = None


@dataclass(frozen=True, slots=True)
class TaskState:
    """An upstream task as one poll saw it, in dialect-free terms."""

    phase: Literal["running", "succeeded", "failed"]
    progress: int | None = None
    items: tuple[ResultItem, ...] = ()
    usage: dict[str, object] = field(default_factory=dict)
    error: ProviderError | None = None


def data_url(image: ReferenceImage) -> str:
    """An input image as the `data:` URL the JSON dialects accept in `image_urls`."""
    return f"data:{image.content_type};base64,{base64.b64encode(image.data).decode()}"


def task_failure(channel: str, error: Any, status: str = "failed") -> ProviderError:
    """Classify a failed upstream task by its error object.

    The request's fault (content policy, bad parameters) -> `ProviderRejectedError` with the
    upstream's message: another channel would refuse it too, and the client must see why.
    Anything else -> a retryable `ProviderError`: the upstream says the task is over, so a
    new submission cannot make anyone pay twice."""
    message, code, kind, status_code = "", "", "", None
    if isinstance(error, Mapping):
        message = str(error.get("message") or error.get("msg") or "")
        raw_code = error.get("code")
        code = str(raw_code or "")
        kind = str(error.get("type") or "")
        if isinstance(raw_code, int) or (isinstance(raw_code, str) and raw_code.isdigit()):
            status_code = int(raw_code)
    elif isinstance(error, str):
        message = error
    message = message or f"upstream task {status}"
    words = f"{code} {kind}".lower()
    if is_content_policy(code, kind, message):  # one code for every upstream's refusal
        return ProviderRejectedError(message, code=CONTENT_POLICY)
    if status_code in _REQUEST_FAULT_STATUSES or any(w in words for w in _REQUEST_FAULT_WORDS):
        return ProviderRejectedError(message, code=code if code and status_code is None
                                     else "upstream_rejected")
    return ProviderError(f"upstream {channel}: task {status}: {message}",
                         code="upstream_task_failed")


class AsyncTaskProvider(Provider):
    """A resumable adapter for an upstream that answers a submit with a task id."""

    resumable = True
    remote = True
    poll_error_limit = POLL_ERROR_LIMIT

    def __init__(self, channel: ChannelConfig, downloader: ResultDownloader, *,
                 catalog: Catalog | None = None, rng: random.Random | None = None) -> None:
        """`catalog`: the models' typical run times, which pace the polls (None: the
        cadence knows no typical time and only grows with the task's age). `rng`: the
        jitter's source (tests pass a seeded one)."""
        self.channel = channel
        self.name = channel.name
        self.downloader = downloader
        self.client = UpstreamClient(channel)
        self.catalog = catalog
        self.rng = rng or random.Random()

    @abc.abstractmethod
    async def submit(self, job: ProviderJob) -> tuple[str, TaskState | None]:
        """Send the job; returns the upstream task id, and its final state when the upstream
        answered synchronously with the result already in the body."""

    @abc.abstractmethod
    async def poll(self, upstream_id: str) -> TaskState:
        """One look at the upstream task (raises what `UpstreamClient` raises)."""

    def base_body(self, job: ProviderJob) -> dict[str, Any]:
        """The submit fields both task dialects share: the exact pixels imagegate resolved
        plus their tier, and the references (and mask) as `data:` URLs."""
        r = job.request
        body: dict[str, Any] = {
            "model": self.channel.upstream_model(r.model),
            "prompt": r.prompt,
            "n": r.n,
            "size": f"{r.width}x{r.height}",
            "resolution": r.tier,
        }
        if job.references:
            body["image_urls"] = [data_url(ref) for ref in job.references]
        if job.mask is not None:
            body["mask_url"] = data_url(job.mask)
        return body

    def task_state(self, task: Mapping[str, Any], items: tuple[ResultItem, ...],
                   usage: dict[str, object] | None = None) -> TaskState:
        """A dialect's task object (`status`, `progress`, `error`) with its result images
        already read out, as a `TaskState`."""
        status = str(task.get("status") or "").lower()
        progress = task.get("progress")
        pct = int(progress) if isinstance(progress, int | float) else None
        if status in _RUNNING:
            return TaskState("running", pct)
        if status in _FAILED:
            return TaskState("failed", pct,
                             error=task_failure(self.name, task.get("error"), status))
        if status in _DONE:
            if not items:
                raise bad_response(self.name, f"{status} task without result images")
            return TaskState("succeeded", 100, items, usage or {})
        raise bad_response(self.name, f"unknown task status {status!r}")

    async def generate(self, job: ProviderJob, progress: ProgressCallback,
                       partial: PartialCallback = no_partials) -> ProviderResult:
        del partial  # task APIs send no previews
        if not self.offers(job.request.operation):
            # Neither task API (000, 002 seeds) has a variations endpoint: refused before
            # anything is sent, so nothing upstream can charge for it.
            raise refuse_variation((self.name, self.channel.adapter))
        upstream_id = self._resumable_id(job)
        resumed = upstream_id is not None
        state: TaskState | None = None
        if upstream_id is None:
            upstream_id, state = await self.submit(job)
            # Before anything else: from here on the upstream may charge for this task.
            await job.remember_upstream(self.name, upstream_id)
        if state is None or state.phase != "succeeded":
            state = await self._wait(upstream_id, progress, self.cadence(job), resumed)
        return await self._download(state, job.request.n)

    def cadence(self, job: ProviderJob) -> Cadence:
        """This job's polling cadence: the channel's bounds and its model × tier's typical
        run time (`providers/cadence.py`)."""
        spec = self.catalog.get(job.request.model) if self.catalog is not None else None
        expected = spec.typical(job.request.tier) if spec is not None else 0.0
        return Cadence.for_channel(self.channel, expected)

    def _resumable_id(self, job: ProviderJob) -> str | None:
        # Never SYNC_CALL: the worker fails an interrupted sync call before building a job.
        if job.upstream_task_id and job.upstream_channel == self.name:
            return job.upstream_task_id
        return None

    async def _wait(self, upstream_id: str, progress: ProgressCallback, cadence: Cadence,
                    resumed: bool) -> TaskState:
        # On a resume the clock restarts: the original submit time is not known here, and
        # giving up early would abandon a task the upstream may still charge for.
        start = time.monotonic()
        deadline = start + self.channel.task_timeout
        errors, reported, polls = 0, -1, 0
        if not resumed:
            # A task just submitted is not done yet; a resumed one may have finished while
            # nobody looked, so it is polled at once.
            await asyncio.sleep(min(cadence.wait(0.0, 0, self.rng), self.channel.task_timeout))
        while True:
            polls += 1
            try:
                # A poll that hangs must not outlive the task's deadline (the channel's
                # request timeout is sized for a sync generation, not for a status check).
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    state = await self.poll(upstream_id)
            except TimeoutError:
                raise self._timed_out(upstream_id) from None
            except ProviderError as exc:
                errors += 1
                delay = self._after_poll_error(exc, upstream_id, errors)
            else:
                errors = 0
                if state.phase == "failed":
                    raise state.error or task_failure(self.name, None)
                if state.phase == "succeeded":
                    return state
                pct = min(99, max(0, state.progress or 0))  # 100 means done: ours to say
                if pct > reported:
                    reported = pct
                    await progress(pct)
                delay = cadence.wait(time.monotonic() - start, polls, self.rng)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._timed_out(upstream_id)
            await asyncio.sleep(min(delay, remaining))

    def _timed_out(self, upstream_id: str) -> ProviderError:
        # Not retryable: the upstream may still finish (and charge for) this task, so a new
        # submission could pay twice for one image.
        return ProviderError(
            f"upstream {self.name}: task {upstream_id} not finished after "
            f"{self.channel.task_timeout:g}s", retryable=False, code="upstream_timeout")

    def _after_poll_error(self, exc: ProviderError, upstream_id: str, errors: int) -> float:
        """The wait before the next poll, or raise: the task is still the upstream's, so
        only a 404 (it no longer exists) leaves a resubmission safe."""
        if exc.code == "upstream_not_found":
            raise ProviderError(f"upstream {self.name}: task {upstream_id} not found",
                                code="upstream_task_lost") from exc
        if exc.code not in _TRANSIENT or isinstance(exc, ProviderRejectedError):
            raise ProviderError(f"upstream {self.name}: polling task {upstream_id} failed: "
                                f"{exc.message}", retryable=False, code=exc.code) from exc
        if errors >= self.poll_error_limit:
            raise ProviderError(
                f"upstream {self.name}: polling task {upstream_id} failed {errors} times in a "
                f"row: {exc.message}", retryable=False, code=exc.code) from exc
        backoff = self.channel.poll_interval * 2.0 ** (errors - 1)
        return min(POLL_BACKOFF_MAX, max(backoff, exc.retry_after or 0.0))

    async def _download(self, state: TaskState, n: int) -> ProviderResult:
        if not state.items:
            raise bad_response(self.name, "a finished task without images")
        # Never more than asked for (a provider returns exactly n): an upstream that lists
        # mirrors of one image as extra URLs must not make the client pay for copies.
        images: list[GeneratedImage] = [
            await self.downloader.load(item.value, client=self.client,
                                       revised_prompt=item.revised_prompt)
            for item in state.items[:n]
        ]
        return ProviderResult(images=images, usage=state.usage)

    async def aclose(self) -> None:
        await self.client.aclose()
