"""The `openai` and `openai_compatible` adapters against FakeOpenAI over real HTTP.

The fake validates parameters and sizes per model as OpenAI does, so a wrong mapping (a
free WxH sent to gpt-image-1, `response_format` sent to a gpt-image model, `moderation` on
an edit) fails these tests with the fake's 400."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr

from imagegate.config import ChannelConfig
from imagegate.domain.images import ReferenceImage
from imagegate.domain.request import ImageRequest
from imagegate.errors import ProviderError, ProviderRejectedError
from imagegate.net.fetch import Fetcher
from imagegate.net.guard import AddressPolicy
from imagegate.providers.base import SYNC_CALL, ProviderJob, ProviderResult
from imagegate.providers.openai import OpenAIProvider
from imagegate.providers.openai_compatible import DEFAULT_FIELDS, OpenAICompatibleProvider
from imagegate.providers.results import ResultDownloader
from imagegate.testing.upstreams.common import RecordedRequest
from imagegate.testing.upstreams.openai_api import FakeOpenAI, ResultMode, variation_seed

pytestmark = pytest.mark.anyio

Adapter = type[OpenAIProvider]


def make_request(model: str = "gpt-image-2", width: int = 1024, height: int = 1024,
                 **kw: Any) -> ImageRequest:
    values: dict[str, Any] = dict(
        operation="generate", model=model, prompt="a lighthouse at dusk", n=1,
        width=width, height=height, tier="1k", size_label=f"{width}x{height}",
        output_format="png", output_compression=None, background="auto", quality="auto",
        moderation="auto", style=None, user=None, response_format="url",
    )
    values.update(kw)
    return ImageRequest(**values)


def make_channel(fake: FakeOpenAI, adapter: str = "openai", **kw: Any) -> ChannelConfig:
    values: dict[str, Any] = dict(
        name="ch1", adapter=adapter, base_url=fake.url + "/v1", api_key=SecretStr("sk-fake"),
        models=["gpt-image-2"],
    )
    values.update(kw)
    return ChannelConfig(**values)


class Recorder:
    """remember_upstream that notes how many requests the fake had seen when it was called."""

    def __init__(self, fake: FakeOpenAI) -> None:
        self.fake = fake
        self.calls: list[tuple[str, str, int]] = []

    async def __call__(self, channel: str, upstream_id: str) -> None:
        self.calls.append((channel, upstream_id, len(self.fake.requests)))


async def no_progress(_pct: int) -> None:
    pass


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def downloader() -> AsyncIterator[ResultDownloader]:
    fetcher = Fetcher(AddressPolicy())
    try:
        yield ResultDownloader(fetcher, max_bytes=64 * 1024 * 1024)
    finally:
        await fetcher.aclose()


async def run(adapter: Adapter, channel: ChannelConfig, downloader: ResultDownloader,
              request: ImageRequest, *, references: tuple[ReferenceImage, ...] = (),
              mask: ReferenceImage | None = None,
              recorder: Recorder | None = None) -> ProviderResult:
    provider = adapter(channel, downloader)
    assert provider.name == channel.name and provider.remote and not provider.resumable
    job = ProviderJob(task_id="t1", request=request, references=references, mask=mask)
    if recorder is not None:
        job = dataclasses.replace(job, remember_upstream=recorder)
    try:
        return await provider.generate(job, no_progress)
    finally:
        await provider.aclose()


def last_post(fake: FakeOpenAI) -> RecordedRequest:
    """The last generation/edit call (result downloads come after it)."""
    return [r for r in fake.requests if r.method == "POST"][-1]


def ref(fake: FakeOpenAI, seed: str, size: int = 64) -> ReferenceImage:
    return ReferenceImage(fake.png(size, size, seed), "image/png", size, size)


# ---------------------------------------------------------------- official adapter


@pytest.mark.parametrize(("model", "w", "h", "sent"), [
    ("gpt-image-2", 1536, 864, "1536x864"),  # flexible: the exact WxH
    ("gpt-image-2", 3840, 2160, "3840x2160"),
    ("gpt-image-1", 1536, 1024, "1536x1024"),  # enumerated: its own size
    ("gpt-image-1.5", 1024, 1536, "1024x1536"),
    ("dall-e-3", 1792, 1024, "1792x1024"),
    ("dall-e-2", 512, 512, "512x512"),
])
async def test_official_size_per_model(fake: FakeOpenAI, downloader: ResultDownloader,
                                       model: str, w: int, h: int, sent: str) -> None:
    result = await run(OpenAIProvider, make_channel(fake, models=[model]), downloader,
                       make_request(model, w, h))
    body = fake.requests[-1].json
    assert body["size"] == sent
    assert (result.images[0].width, result.images[0].height) == (w, h)
    if model.startswith("gpt-image"):
        assert "response_format" not in body
        assert set(result.usage) >= {"input_tokens", "output_tokens", "total_tokens"}
    else:
        assert body["response_format"] == "b64_json"
        assert not {"background", "output_format", "moderation"} & set(body)


async def test_mapped_model_gets_nearest_enumerated_size(fake: FakeOpenAI,
                                                         downloader: ResultDownloader) -> None:
    channel = make_channel(fake, model_map={"gpt-image-2": "gpt-image-1"})
    result = await run(OpenAIProvider, channel, downloader, make_request(width=1536, height=864))
    body = fake.requests[-1].json
    assert (body["model"], body["size"]) == ("gpt-image-1", "1536x1024")
    assert result.images[0].width == 1536


async def test_official_fields_for_gpt_image(fake: FakeOpenAI,
                                             downloader: ResultDownloader) -> None:
    request = make_request(n=2, quality="high", output_format="webp", output_compression=70,
                           background="opaque", moderation="low", user="u-42")
    result = await run(OpenAIProvider, make_channel(fake), downloader, request)
    assert fake.requests[-1].json == {
        "model": "gpt-image-2", "prompt": "a lighthouse at dusk", "n": 2, "size": "1024x1024",
        "quality": "high", "background": "opaque", "output_format": "webp",
        "output_compression": 70, "moderation": "low", "user": "u-42",
    }
    assert [i.content_type for i in result.images] == ["image/webp", "image/webp"]


async def test_official_dalle3_quality_style_and_revised_prompt(
    fake: FakeOpenAI, downloader: ResultDownloader
) -> None:
    request = make_request("dall-e-3", 1024, 1792, quality="hd", style="natural")
    result = await run(OpenAIProvider, make_channel(fake, models=["dall-e-3"]), downloader,
                       request)
    body = fake.requests[-1].json
    assert (body["quality"], body["style"], body["response_format"]) == (
        "hd", "natural", "b64_json")
    assert result.images[0].revised_prompt == "revised: a lighthouse at dusk"
    assert result.usage == {}


@pytest.mark.parametrize("adapter", [OpenAIProvider, OpenAICompatibleProvider])
async def test_quality_left_to_the_model_is_relayed_as_auto_and_reported_back(
    fake: FakeOpenAI, downloader: ResultDownloader, adapter: Adapter
) -> None:
    """Issue 18: `quality: auto` resolves to `medium` for billing, but the upstream is still
    asked for `auto`; what it says it made (`high`, `opaque`) comes back in the result."""
    request = make_request(quality="medium", quality_auto=True)
    result = await run(adapter, make_channel(fake, adapter="openai"), downloader, request)
    assert fake.requests[-1].json["quality"] == "auto"
    assert (result.quality, result.background) == ("high", "opaque")
    request = make_request(quality="low", background="opaque")
    result = await run(adapter, make_channel(fake, adapter="openai"), downloader, request)
    assert fake.requests[-1].json["quality"] == "low"
    assert (result.quality, result.background) == ("low", "opaque")


async def test_dalle3_auto_is_sent_as_standard_and_reports_nothing(
    fake: FakeOpenAI, downloader: ResultDownloader
) -> None:
    request = make_request("dall-e-3", quality="standard", quality_auto=True)
    result = await run(OpenAIProvider, make_channel(fake, models=["dall-e-3"]), downloader,
                       request)
    assert fake.requests[-1].json["quality"] == "standard"
    assert (result.quality, result.background) == (None, None)  # DALL·E reports neither


async def test_official_edit_is_multipart(fake: FakeOpenAI, downloader: ResultDownloader) -> None:
    refs = (ref(fake, "r1"), ref(fake, "r2"))
    mask = ref(fake, "m")
    request = make_request(operation="edit", moderation="low")
    result = await run(OpenAIProvider, make_channel(fake), downloader, request,
                       references=refs, mask=mask)
    rec = fake.requests[-1]
    assert rec.path == "/v1/images/edits"
    assert [p.data for p in rec.files("image[]")] == [r.data for r in refs]
    assert [p.data for p in rec.files("mask")] == [mask.data]
    assert "moderation" not in rec.fields()  # the edits endpoint refuses it
    assert rec.fields()["size"] == "1024x1024"
    assert len(result.images) == 1


async def test_sync_call_remembered_before_the_call(fake: FakeOpenAI,
                                                    downloader: ResultDownloader) -> None:
    recorder = Recorder(fake)
    await run(OpenAIProvider, make_channel(fake), downloader, make_request(), recorder=recorder)
    assert recorder.calls == [("ch1", SYNC_CALL, 0)]
    fake.fail_next(500)
    with pytest.raises(ProviderError):
        await run(OpenAIProvider, make_channel(fake), downloader, make_request(),
                  recorder=recorder)
    assert recorder.calls[-1] == ("ch1", SYNC_CALL, 1)


ERRORS: list[tuple[int, dict[str, str], str]] = [
    (401, {}, "upstream_auth"),
    (402, {}, "upstream_quota"),
    (404, {}, "upstream_not_found"),
    (429, {"Retry-After": "3"}, "upstream_rate_limited"),
    (500, {}, "upstream_error"),
    (503, {}, "upstream_error"),
]


@pytest.mark.parametrize("adapter", [OpenAIProvider, OpenAICompatibleProvider])
@pytest.mark.parametrize(("status", "headers", "code"), ERRORS)
async def test_error_statuses(fake: FakeOpenAI, downloader: ResultDownloader, adapter: Adapter,
                              status: int, headers: dict[str, str], code: str) -> None:
    fake.fail_next(status, headers=headers)
    with pytest.raises(ProviderError) as info:
        await run(adapter, make_channel(fake), downloader, make_request())
    exc = info.value
    assert type(exc) is ProviderError and exc.retryable and exc.code == code
    if headers:
        assert exc.retry_after == 3.0


async def test_insufficient_quota_429(fake: FakeOpenAI, downloader: ResultDownloader) -> None:
    fake.fail_next(429, fake.error_body(429, code="insufficient_quota"))
    with pytest.raises(ProviderError) as info:
        await run(OpenAIProvider, make_channel(fake), downloader, make_request())
    assert info.value.code == "upstream_quota"


async def test_unknown_upstream_model_is_not_found(fake: FakeOpenAI,
                                                   downloader: ResultDownloader) -> None:
    channel = make_channel(fake, model_map={"gpt-image-2": "gpt-image-9"})
    with pytest.raises(ProviderError) as info:
        await run(OpenAIProvider, channel, downloader, make_request())
    assert info.value.code == "upstream_not_found"


@pytest.mark.parametrize("adapter", [OpenAIProvider, OpenAICompatibleProvider])
@pytest.mark.parametrize("model", ["gpt-image-2", "dall-e-3"])
async def test_content_policy_is_rejected_with_upstream_message(
    fake: FakeOpenAI, downloader: ResultDownloader, adapter: Adapter, model: str
) -> None:
    # OpenAI says `moderation_blocked` (gpt-image) or `content_policy_violation` (DALL·E);
    # clients get imagegate's one code for a content refusal either way (issue 17).
    request = make_request(model, prompt="something forbidden")
    with pytest.raises(ProviderRejectedError) as info:
        await run(adapter, make_channel(fake, models=[model]), downloader, request)
    assert info.value.code == "content_policy_violation" and not info.value.retryable
    assert info.value.message.startswith("Your request was rejected as a result of our safety")


@pytest.mark.parametrize("body", [{"data": []}, {"nothing": 1}, {"data": [{"url": ""}]}])
async def test_bad_2xx_answer(fake: FakeOpenAI, downloader: ResultDownloader,
                              body: dict[str, Any]) -> None:
    fake.fail_next(200, body)
    with pytest.raises(ProviderError) as info:
        await run(OpenAIProvider, make_channel(fake), downloader, make_request())
    assert info.value.code == "upstream_bad_response"


# ---------------------------------------------------------------- compatible adapter


@pytest.fixture
async def reseller() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(reseller=True, result_mode="empty_b64_with_url") as server:
        yield server


@pytest.mark.parametrize("mode", ["b64", "url", "relative_url", "data_url", "url_list",
                                  "empty_b64_with_url"])
async def test_compatible_result_modes(downloader: ResultDownloader, mode: ResultMode) -> None:
    async with FakeOpenAI(reseller=True, result_mode=mode) as fake:
        channel = make_channel(fake, "openai_compatible")
        result = await run(OpenAICompatibleProvider, channel, downloader,
                           make_request(width=1536, height=1024, n=2))
    assert [(i.width, i.height, i.content_type) for i in result.images] == [
        (1536, 1024, "image/png")] * 2
    assert result.images[0].data != result.images[1].data


async def test_compatible_default_fields_and_model_map(reseller: FakeOpenAI,
                                                       downloader: ResultDownloader) -> None:
    channel = make_channel(reseller, "openai_compatible",
                           model_map={"gpt-image-2": "gpt-image-2-pro"})
    await run(OpenAICompatibleProvider, channel, downloader,
              make_request(quality="medium", user="u1", output_format="jpeg",
                           output_compression=50))
    body = last_post(reseller).json
    assert body["model"] == "gpt-image-2-pro"
    assert set(body) <= DEFAULT_FIELDS and "response_format" not in body
    assert (body["quality"], body["output_compression"], body["user"]) == ("medium", 50, "u1")


async def test_compatible_allowlist(downloader: ResultDownloader) -> None:
    accepted = {"model", "prompt", "size", "n"}
    async with FakeOpenAI(reseller=True, accepted_fields=accepted, result_mode="url") as fake:
        # The default set carries fields this upstream refuses...
        with pytest.raises(ProviderRejectedError) as info:
            await run(OpenAICompatibleProvider, make_channel(fake, "openai_compatible"),
                      downloader, make_request())
        assert info.value.code == "unknown_parameter"
        # ...and the channel's own list sends only those.
        channel = make_channel(fake, "openai_compatible", fields=["size", "n"])
        result = await run(OpenAICompatibleProvider, channel, downloader, make_request())
        assert set(last_post(fake).json) == accepted
        assert len(result.images) == 1


async def test_compatible_references_as_image_array(reseller: FakeOpenAI,
                                                    downloader: ResultDownloader) -> None:
    refs = (ref(reseller, "r1"), ref(reseller, "r2"))
    await run(OpenAICompatibleProvider, make_channel(reseller, "openai_compatible"),
              downloader, make_request(operation="edit"), references=refs)
    rec = last_post(reseller)
    assert rec.path == "/v1/images/generations"
    sent = [base64.b64decode(u.split(",", 1)[1]) for u in rec.json["image"]]
    assert sent == [r.data for r in refs]
    assert all(u.startswith("data:image/png;base64,") for u in rec.json["image"])


async def test_compatible_masked_edit_is_multipart(reseller: FakeOpenAI,
                                                   downloader: ResultDownloader) -> None:
    refs, mask = (ref(reseller, "r1"),), ref(reseller, "m")
    await run(OpenAICompatibleProvider, make_channel(reseller, "openai_compatible"),
              downloader, make_request(operation="edit"), references=refs, mask=mask)
    rec = last_post(reseller)
    assert rec.path == "/v1/images/edits"
    assert len(rec.files("image[]")) == 1 and len(rec.files("mask")) == 1
    assert rec.fields()["model"] == "gpt-image-2"


async def test_compatible_without_image_field_uses_edits(reseller: FakeOpenAI,
                                                         downloader: ResultDownloader) -> None:
    channel = make_channel(reseller, "openai_compatible", fields=["n", "size"])
    await run(OpenAICompatibleProvider, channel, downloader, make_request(),
              references=(ref(reseller, "r1"),))
    rec = last_post(reseller)
    assert rec.path == "/v1/images/edits"
    assert set(rec.fields()) == {"model", "prompt", "n", "size"}


async def test_compatible_sync_call_and_relative_urls(downloader: ResultDownloader) -> None:
    async with FakeOpenAI(reseller=True, result_mode="relative_url") as fake:
        recorder = Recorder(fake)
        result = await run(OpenAICompatibleProvider, make_channel(fake, "openai_compatible"),
                           downloader, make_request(), recorder=recorder)
        assert recorder.calls == [("ch1", SYNC_CALL, 0)]
        assert fake.requests[-1].path.startswith("/files/")
        assert result.images[0].width == 1024


# ---------------------------------------------------------------- variations


def variation(n: int = 1, size: int = 512, **kw: Any) -> ImageRequest:
    return make_request("dall-e-2", size, size, operation="variation", prompt="", n=n,
                        quality="standard", **kw)


async def test_official_variation_is_multipart_and_marked(fake: FakeOpenAI,
                                                         downloader: ResultDownloader) -> None:
    source = ref(fake, "source", 128)
    recorder = Recorder(fake)
    result = await run(OpenAIProvider, make_channel(fake, models=["dall-e-2"]), downloader,
                       variation(2, user="u-7"), references=(source,), recorder=recorder)
    # A synchronous upstream call: marked before it is sent, exactly as a generation is.
    assert recorder.calls == [("ch1", SYNC_CALL, 0)]
    rec = last_post(fake)
    assert rec.path == "/v1/images/variations"
    assert rec.fields() == {"model": "dall-e-2", "n": "2", "size": "512x512",
                            "response_format": "b64_json", "user": "u-7"}
    assert [p.data for p in rec.files("image")] == [source.data]
    assert [i.data for i in result.images] == [
        fake.png(512, 512, variation_seed(source.data, i)) for i in range(2)]


@pytest.mark.parametrize(("image", "why"), [
    (ReferenceImage(b"\xff\xd8\xff" + b"\0" * 64, "image/jpeg", 64, 64), "it is jpeg"),
    (ReferenceImage(b"\x89PNG" + b"\0" * 64, "image/png", 64, 48), "it is 64x48"),
    (ReferenceImage(b"\x89PNG" + b"\0" * (4 * 1024 * 1024), "image/png", 64, 64), "bytes"),
])
async def test_official_variation_input_checked_before_any_call(
        fake: FakeOpenAI, downloader: ResultDownloader, image: ReferenceImage,
        why: str) -> None:
    recorder = Recorder(fake)
    with pytest.raises(ProviderRejectedError) as info:
        await run(OpenAIProvider, make_channel(fake, models=["dall-e-2"]), downloader,
                  variation(), references=(image,), recorder=recorder)
    assert info.value.code == "invalid_image_for_variation" and info.value.param == "image"
    assert "square PNG" in info.value.message and why in info.value.message
    assert not info.value.retryable
    assert fake.requests == [] and recorder.calls == []  # nothing sent, nothing marked


async def test_official_variation_upstream_refusal_is_rejected(
        fake: FakeOpenAI, downloader: ResultDownloader) -> None:
    # A channel mapping dall-e-2 to a model OpenAI makes no variations with: OpenAI's 400.
    channel = make_channel(fake, models=["dall-e-2"], model_map={"dall-e-2": "dall-e-3"})
    with pytest.raises(ProviderRejectedError) as info:
        await run(OpenAIProvider, channel, downloader, variation(),
                  references=(ref(fake, "s"),))
    assert info.value.code == "invalid_value" and "dall-e-2" in info.value.message
    assert fake.submissions == 0


async def test_compatible_variation(reseller: FakeOpenAI, downloader: ResultDownloader) -> None:
    source = ref(reseller, "source")
    channel = make_channel(reseller, "openai_compatible", models=["dall-e-2"],
                           model_map={"dall-e-2": "dall-e-2"})
    result = await run(OpenAICompatibleProvider, channel, downloader, variation(3, 256),
                       references=(source,))
    rec = last_post(reseller)
    assert rec.path == "/v1/images/variations"
    # The default field list leaves out response_format: results come as url or b64.
    assert rec.fields() == {"model": "dall-e-2", "n": "3", "size": "256x256"}
    assert [p.data for p in rec.files("image")] == [source.data]
    assert [(i.width, i.height) for i in result.images] == [(256, 256)] * 3
