"""The async task adapters (dimilinks, apimart) against their fake upstreams, over real HTTP
on loopback: submit-remember-poll, resume without resubmitting, and every failure's class."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import SecretStr

from imagegate.config import ChannelConfig
from imagegate.domain.images import ReferenceImage
from imagegate.domain.request import ImageRequest
from imagegate.errors import ProviderError, ProviderRejectedError
from imagegate.net.fetch import Fetcher
from imagegate.net.guard import AddressPolicy
from imagegate.providers.apimart import ApimartProvider
from imagegate.providers.base import ProviderJob, ProviderResult
from imagegate.providers.dimilinks import DimilinksProvider
from imagegate.providers.polling import AsyncTaskProvider
from imagegate.providers.results import ResultDownloader
from imagegate.testing.upstreams.apimart_api import FakeApimart
from imagegate.testing.upstreams.async_tasks import FakeTaskUpstream
from imagegate.testing.upstreams.dimilinks_api import FakeDimilinks

pytestmark = pytest.mark.anyio

DIALECTS: dict[str, tuple[type[FakeTaskUpstream], type[AsyncTaskProvider]]] = {
    "dimilinks": (FakeDimilinks, DimilinksProvider),
    "apimart": (FakeApimart, ApimartProvider),
}
PNG = b"\x89PNG\r\n\x1a\n"


class Crash(Exception):
    """A worker dying right after the upstream's task id was recorded."""


@dataclass
class Rig:
    fake: FakeTaskUpstream
    provider: AsyncTaskProvider
    remembered: list[tuple[str, str]] = field(default_factory=list)
    progress: list[int] = field(default_factory=list)
    crash_after_remember: bool = False

    async def remember(self, channel: str, upstream_id: str) -> None:
        self.remembered.append((channel, upstream_id))
        if self.crash_after_remember:
            raise Crash(upstream_id)

    async def on_progress(self, pct: int) -> None:
        self.progress.append(pct)

    def job(self, request: ImageRequest | None = None, **kwargs: Any) -> ProviderJob:
        return ProviderJob(task_id="img_local", request=request or make_request(),
                           remember_upstream=self.remember, **kwargs)

    async def run(self, job: ProviderJob | None = None) -> ProviderResult:
        return await self.provider.generate(job or self.job(), self.on_progress)


@asynccontextmanager
async def open_rig(dialect: str, *, latency: float = 0.0, progress_per_poll: int | None = None,
                   api_key: str = "sk-fake", **channel: Any) -> AsyncIterator[Rig]:
    fake_cls, provider_cls = DIALECTS[dialect]
    fetcher = Fetcher(AddressPolicy())
    fake = fake_cls(latency=latency, progress_per_poll=progress_per_poll)
    await fake.start()
    config = ChannelConfig(name=f"{dialect}-1", adapter=dialect,  # type: ignore[arg-type]
                           base_url=fake.url, api_key=SecretStr(api_key), models=["gpt-image-2"],
                           model_map={"gpt-image-2": "gpt-image-2-up"},
                           **{"poll_interval": 0.01, "task_timeout": 30.0, **channel})
    provider = provider_cls(config, ResultDownloader(fetcher, max_bytes=16 * 1024 * 1024))
    try:
        yield Rig(fake, provider)
    finally:
        await provider.aclose()
        await fetcher.aclose()
        await fake.stop()


def make_request(prompt: str = "a red fox in snow", n: int = 1, width: int = 1024,
                 height: int = 768, tier: str = "1k") -> ImageRequest:
    # The fakes hold each seed's rules: 1024x768 is in 002's table (4:3 at 1k), and n > 1
    # needs 2k or 4k on the 000 seed's service.
    return ImageRequest(
        operation="generate", model="gpt-image-2", prompt=prompt, n=n, width=width,
        height=height, tier=tier, size_label=f"{width}x{height}", output_format="png",
        output_compression=None, background="auto", quality="auto", moderation="auto",
        style=None, user=None, response_format="url",
    )


def reference(fake: FakeTaskUpstream, seed: str) -> ReferenceImage:
    return ReferenceImage(data=fake.png(32, 32, seed), content_type="image/png", width=32,
                          height=32)


def submits(fake: FakeTaskUpstream) -> list[Any]:
    return [r for r in fake.requests if r.method == "POST"]


@pytest.fixture(params=sorted(DIALECTS))
def dialect(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


# -------------------------------------------------------------------------- happy paths

async def test_text_to_image(dialect: str) -> None:
    async with open_rig(dialect) as rig:
        result = await rig.run(rig.job(make_request(n=2, width=2048, height=1152, tier="2k")))
        assert [(i.width, i.height, i.content_type) for i in result.images] == \
            [(2048, 1152, "image/png")] * 2
        assert all(i.data.startswith(PNG) for i in result.images)
        assert rig.fake.submissions == 1
        (upstream_id,) = rig.fake.tasks
        assert rig.remembered == [(f"{dialect}-1", upstream_id)]
        (sent,) = submits(rig.fake)
        body = sent.json
        assert body["model"] == "gpt-image-2-up"  # the channel's model map
        assert (body["prompt"], body["n"], body["size"], body["resolution"]) == \
            ("a red fox in snow", 2, "2048x1152", "2k")
        assert "image_urls" not in body
        if dialect == "dimilinks":
            assert sent.query["async"] == "true"
            assert result.usage["output_tokens"] == 512  # passed through from the result


async def test_references_and_mask_sent_as_data_urls(dialect: str) -> None:
    async with open_rig(dialect) as rig:
        refs = (reference(rig.fake, "a"), reference(rig.fake, "b"))
        result = await rig.run(rig.job(references=refs, mask=reference(rig.fake, "m")))
        assert len(result.images) == 1
        body = submits(rig.fake)[0].json
        assert len(body["image_urls"]) == 2
        assert all(u.startswith("data:image/png;base64,iVBOR") for u in body["image_urls"])
        assert body["mask_url"].startswith("data:image/png;base64,")


async def test_progress_is_reported(dialect: str) -> None:
    async with open_rig(dialect, progress_per_poll=25) as rig:
        result = await rig.run()
        assert len(result.images) == 1
        assert rig.progress == [25, 50, 75]


async def test_resume_polls_without_submitting(dialect: str) -> None:
    async with open_rig(dialect, progress_per_poll=50) as rig:
        rig.crash_after_remember = True
        with pytest.raises(Crash):
            await rig.run()
        rig.crash_after_remember = False
        ((channel, upstream_id),) = rig.remembered
        job = rig.job(upstream_channel=channel, upstream_task_id=upstream_id)
        result = await rig.run(job)
        assert len(result.images) == 1
        assert rig.fake.submissions == 1
        assert len(submits(rig.fake)) == 1
        assert len(rig.remembered) == 1  # nothing new to remember on a resume


async def test_other_channels_task_id_is_not_resumed(dialect: str) -> None:
    async with open_rig(dialect) as rig:
        await rig.run(rig.job(upstream_channel="elsewhere", upstream_task_id="t-1"))
        assert rig.fake.submissions == 1


# -------------------------------------------------------------------------- task failures

async def test_content_policy_failure_is_the_requests_fault(dialect: str) -> None:
    async with open_rig(dialect, progress_per_poll=50) as rig:
        with pytest.raises(ProviderRejectedError) as info:
            await rig.run(rig.job(make_request(prompt="something forbidden")))
        assert "safety system" in info.value.message
        assert info.value.code == "content_policy_violation"  # the one code (issue 17)
        assert info.value.retryable is False
        assert rig.fake.submissions == 1


async def test_generic_task_failure_is_retryable(dialect: str) -> None:
    async with open_rig(dialect) as rig:
        rig.fake.fail_task_next("the model crashed")
        with pytest.raises(ProviderError) as info:
            await rig.run()
        assert not isinstance(info.value, ProviderRejectedError)
        assert info.value.retryable is True
        assert "the model crashed" in info.value.message


# -------------------------------------------------------------------------- submit errors

@pytest.mark.parametrize(("status", "code"), [
    (401, "upstream_auth"), (402, "upstream_quota"), (404, "upstream_not_found"),
    (429, "upstream_rate_limited"), (500, "upstream_error"), (503, "upstream_error"),
])
async def test_submit_errors(dialect: str, status: int, code: str) -> None:
    async with open_rig(dialect) as rig:
        rig.fake.fail_next(status, headers={"Retry-After": "7"} if status == 429 else None)
        with pytest.raises(ProviderError) as info:
            await rig.run()
        error = info.value
        assert (type(error), error.code, error.retryable) == (ProviderError, code, True)
        assert error.retry_after == (7.0 if status == 429 else None)
        assert rig.fake.submissions == 0
        assert rig.remembered == []


async def test_submit_400_carries_the_upstream_message(dialect: str) -> None:
    async with open_rig(dialect) as rig:
        rig.fake.fail_next(400)
        with pytest.raises(ProviderRejectedError) as info:
            await rig.run()
        expected = rig.fake.error_body(400)["error"]["message"]
        assert info.value.message == expected
        assert info.value.retryable is False


async def test_wrong_key_is_the_dialects_401(dialect: str) -> None:
    async with open_rig(dialect, api_key="sk-wrong") as rig:
        with pytest.raises(ProviderError) as info:
            await rig.run()
        assert info.value.code == "upstream_auth"
        assert "sk-wrong" not in info.value.message


# -------------------------------------------------------------------------- poll errors

async def test_transient_poll_errors_are_waited_out(dialect: str) -> None:
    async with open_rig(dialect, progress_per_poll=50) as rig:
        rig.fake.fail_polls(500)
        rig.fake.fail_polls(503, times=2)
        result = await rig.run()
        assert len(result.images) == 1
        assert rig.fake.submissions == 1


async def test_poll_errors_past_the_bound_do_not_invite_a_resubmit(dialect: str) -> None:
    async with open_rig(dialect, progress_per_poll=50) as rig:
        rig.provider.poll_error_limit = 3
        rig.fake.fail_polls(502, times=3)
        with pytest.raises(ProviderError) as info:
            await rig.run()
        assert info.value.retryable is False  # the task may still finish and be charged
        assert rig.fake.submissions == 1


async def test_poll_auth_error_is_not_retryable(dialect: str) -> None:
    async with open_rig(dialect, progress_per_poll=50) as rig:
        rig.fake.fail_polls(401)
        with pytest.raises(ProviderError) as info:
            await rig.run()
        assert (info.value.code, info.value.retryable) == ("upstream_auth", False)


async def test_task_timeout(dialect: str) -> None:
    async with open_rig(dialect, latency=3600, task_timeout=0.05) as rig:
        with pytest.raises(ProviderError) as info:
            await rig.run()
        assert (info.value.code, info.value.retryable) == ("upstream_timeout", False)
        assert rig.fake.submissions == 1


async def test_hanging_or_dropped_polls(dialect: str) -> None:
    async with open_rig(dialect, progress_per_poll=50, task_timeout=0.5) as rig:
        rig.fake.fail_polls(kind="drop")  # a connection error: waited out
        rig.fake.fail_polls(kind="hang")  # never answers: the task's deadline still holds
        with pytest.raises(ProviderError) as info:
            await rig.run()
        assert (info.value.code, info.value.retryable) == ("upstream_timeout", False)
        assert [r.method for r in rig.fake.requests][:2] == ["POST", "GET"]
        assert rig.fake.submissions == 1


async def test_unknown_task_on_resume(dialect: str) -> None:
    async with open_rig(dialect) as rig:
        job = rig.job(upstream_channel=f"{dialect}-1", upstream_task_id="task_gone")
        with pytest.raises(ProviderError) as info:
            await rig.run(job)
        # The upstream holds no such task: nothing can be charged twice, so it may be resubmitted.
        assert (info.value.code, info.value.retryable) == ("upstream_task_lost", True)
        assert rig.fake.submissions == 0


# -------------------------------------------------------------------------- variations

async def test_variation_is_refused_before_anything_is_sent(dialect: str) -> None:
    """Neither seed's service has a variations endpoint: a 400, nothing submitted (so
    nothing upstream can charge), nothing remembered, never retried."""
    async with open_rig(dialect) as rig:
        request = dataclasses.replace(make_request(prompt=""), operation="variation")
        assert not rig.provider.offers("variation") and rig.provider.offers("edit")
        with pytest.raises(ProviderRejectedError) as info:
            await rig.run(rig.job(request, references=(reference(rig.fake, "src"),)))
        exc = info.value
        assert exc.code == "unsupported_operation" and not exc.retryable
        assert exc.message == (f"The channel '{dialect}-1' ({dialect}) does not offer image "
                               "variations")
        assert rig.fake.requests == [] and rig.remembered == []
