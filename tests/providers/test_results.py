"""ResultDownloader: the four result forms, byte caps, non-images, and the SSRF line
between the channel's own origin and everywhere else."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr

from imagegate.config import ChannelConfig
from imagegate.errors import ProviderError
from imagegate.net.fetch import Fetcher
from imagegate.net.guard import AddressPolicy
from imagegate.providers.big_json import Base64Text
from imagegate.providers.results import ResultDownloader
from imagegate.providers.upstream import UpstreamClient
from imagegate.testing.upstreams.openai_api import FakeOpenAI

pytestmark = pytest.mark.anyio


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def client(fake: FakeOpenAI) -> AsyncIterator[UpstreamClient]:
    values: dict[str, Any] = {
        "name": "up1", "adapter": "openai_compatible", "base_url": fake.url + "/v1",
        "api_key": SecretStr("sk-fake"), "models": ["gpt-image-2"],
    }
    c = UpstreamClient(ChannelConfig(**values))
    try:
        yield c
    finally:
        await c.aclose()


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    # The default policy, as in production: loopback and private addresses are refused.
    f = Fetcher(AddressPolicy())
    try:
        yield f
    finally:
        await f.aclose()


@pytest.fixture
def downloader(fetcher: Fetcher) -> ResultDownloader:
    return ResultDownloader(fetcher, max_bytes=1024 * 1024)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_bare_base64(fake: FakeOpenAI, client: UpstreamClient,
                           downloader: ResultDownloader) -> None:
    png = fake.png(96, 64, "a")
    image = await downloader.load(b64(png), client=client, revised_prompt="better")
    assert (image.data, image.content_type, image.width, image.height) == (
        png, "image/png", 96, 64)
    assert image.revised_prompt == "better"


async def test_data_url(fake: FakeOpenAI, client: UpstreamClient,
                        downloader: ResultDownloader) -> None:
    jpeg = fake.image(64, 48, "b", "jpeg")
    image = await downloader.load(f"data:image/jpeg;base64,{b64(jpeg)}", client=client)
    assert (image.content_type, image.width, image.height) == ("image/jpeg", 64, 48)
    assert image.revised_prompt is None


async def test_wrapped_and_urlsafe_base64(fake: FakeOpenAI, client: UpstreamClient,
                                          downloader: ResultDownloader) -> None:
    png = fake.png(32, 32, "c")
    text = base64.urlsafe_b64encode(png).decode().rstrip("=")
    wrapped = "\n".join(text[i:i + 76] for i in range(0, len(text), 76))
    assert (await downloader.load(wrapped, client=client)).data == png


async def test_absolute_url_on_channel_origin(fake: FakeOpenAI, client: UpstreamClient,
                                              downloader: ResultDownloader) -> None:
    png = fake.png(80, 40, "d")
    path = fake.store_file(png)
    image = await downloader.load(fake.url + path, client=client)
    assert (image.data, image.width, image.height) == (png, 80, 40)
    assert fake.requests[-1].path == path


async def test_relative_url_resolves_against_origin(fake: FakeOpenAI, client: UpstreamClient,
                                                    downloader: ResultDownloader) -> None:
    # base_url ends in /v1; a relative result is resolved against the origin, not /v1.
    png = fake.png(40, 80, "e")
    path = fake.store_file(png)
    image = await downloader.load(path, client=client)
    assert (image.width, image.height) == (40, 80)
    assert fake.requests[-1].path == path


async def test_other_loopback_port_is_refused(client: UpstreamClient,
                                              downloader: ResultDownloader) -> None:
    async with FakeOpenAI() as other:
        path = other.store_file(other.png(16, 16, "x"))
        with pytest.raises(ProviderError) as info:
            await downloader.load(other.url + path, client=client)
        assert info.value.code == "upstream_bad_result"
        assert "Refused" in info.value.message
        assert other.requests == []  # never contacted


async def test_protocol_relative_url_goes_through_the_guard(
    client: UpstreamClient, downloader: ResultDownloader
) -> None:
    with pytest.raises(ProviderError) as info:
        await downloader.load("//169.254.169.254/latest/meta-data", client=client)
    assert info.value.code == "upstream_bad_result"


async def test_base64_over_cap_refused_before_decoding(fake: FakeOpenAI,
                                                       client: UpstreamClient,
                                                       fetcher: Fetcher) -> None:
    small = ResultDownloader(fetcher, max_bytes=2048)
    with pytest.raises(ProviderError) as info:
        await small.load("A" * 4000, client=client)
    assert info.value.code == "upstream_bad_result"
    assert "limit" in info.value.message


async def test_download_over_cap(fake: FakeOpenAI, client: UpstreamClient,
                                 fetcher: Fetcher) -> None:
    png = fake.png(256, 256, "big")
    path = fake.store_file(png)
    small = ResultDownloader(fetcher, max_bytes=len(png) - 1)
    with pytest.raises(ProviderError) as info:
        await small.load(path, client=client)
    assert info.value.code == "upstream_bad_result"
    assert (await ResultDownloader(fetcher, max_bytes=len(png)).load(
        path, client=client)).data == png


@pytest.mark.parametrize("value", [
    "aGVsbG8gd29ybGQ=",  # "hello world"
    "data:text/plain;base64,aGVsbG8=",
    "data:image/png,notbase64",
    "!!! not base64 !!!",
    "   ",
    # Non-ASCII inside base64: pybase64 refuses the str itself, then the cleaned bytes.
    "iVBORw0KGgo\u00e9AAAANSUhEUg",
    "iVBORw0KGgo\u2028AAAANSUhEUg==",
])
async def test_non_images_and_garbage(client: UpstreamClient, downloader: ResultDownloader,
                                      value: str) -> None:
    with pytest.raises(ProviderError) as info:
        await downloader.load(value, client=client)
    assert info.value.code == "upstream_bad_result"
    assert info.value.retryable


async def test_url_serving_a_non_image(fake: FakeOpenAI, client: UpstreamClient,
                                       downloader: ResultDownloader) -> None:
    path = fake.store_file(b"<html>gone</html>", "text/html")
    with pytest.raises(ProviderError) as info:
        await downloader.load(path, client=client)
    assert info.value.code == "upstream_bad_result"
    with pytest.raises(ProviderError) as info:
        await downloader.load("/files/missing.png", client=client)
    assert info.value.code == "upstream_bad_result"


def _image(fmt: str) -> bytes:
    import pyvips

    image = pyvips.Image.black(64, 48).new_from_image([200, 90, 30]).cast("uchar").copy(
        interpretation="srgb")
    return bytes(image.write_to_buffer(f".{fmt}"))


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
@pytest.mark.parametrize("full", [False, True])
async def test_truncated_results_are_refused(client: UpstreamClient, fetcher: Fetcher,
                                             fmt: str, full: bool) -> None:
    """A transfer cut short fails the trailer check (the default) as it fails a full decode;
    the whole file passes both."""
    downloader = ResultDownloader(fetcher, max_bytes=1024 * 1024, full_check=full)
    data = _image(fmt)
    image = await downloader.load(b64(data), client=client)
    assert image.data == data and (image.width, image.height) == (64, 48)
    for cut in (len(data) - 1, len(data) - 7, len(data) * 2 // 3):
        with pytest.raises(ProviderError) as info:
            await downloader.load(b64(data[:cut]), client=client)
        assert info.value.code == "upstream_bad_result"


async def test_damage_inside_a_body_needs_the_full_check(client: UpstreamClient,
                                                         fetcher: Fetcher) -> None:
    """What the trailer cannot see: bytes changed in the middle of the compressed data.
    `upstream_result_check = "full"` decodes every pixel and refuses it."""
    import random

    import pyvips

    noise = random.Random(7).randbytes(128 * 128 * 3)  # incompressible: IDAT is most of it
    data = bytearray(pyvips.Image.new_from_memory(noise, 128, 128, 3, "uchar")
                     .write_to_buffer(".png"))
    middle = len(data) * 3 // 5
    data[middle:middle + 8] = b"\xff" * 8
    broken = bytes(data)
    lenient = ResultDownloader(fetcher, max_bytes=1024 * 1024)
    assert (await lenient.load(b64(broken), client=client)).data == broken
    strict = ResultDownloader(fetcher, max_bytes=1024 * 1024, full_check=True)
    with pytest.raises(ProviderError):
        await strict.load(b64(broken), client=client)


async def test_jpeg_padding_after_eoi_is_accepted(client: UpstreamClient,
                                                  downloader: ResultDownloader) -> None:
    data = _image("jpeg") + b"\x00" * 16
    assert (await downloader.load(b64(data), client=client)).data == data


def decoded(data: bytes) -> Base64Text:
    text = b64(data).encode()
    return Base64Text(data, memoryview(text))


async def test_an_image_decoded_with_the_answer_is_checked_like_any_other(
        fake: FakeOpenAI, client: UpstreamClient, fetcher: Fetcher) -> None:
    png = fake.png(96, 64, "a")
    downloader = ResultDownloader(fetcher, max_bytes=len(png))
    image = await downloader.load(decoded(png), client=client)
    assert (image.data, image.width, image.height) == (png, 96, 64)
    with pytest.raises(ProviderError, match="limit"):
        await ResultDownloader(fetcher, max_bytes=len(png) - 1).load(decoded(png),
                                                                     client=client)
    with pytest.raises(ProviderError) as info:  # cut short: the trailer check refuses it
        await downloader.load(decoded(png[:-7]), client=client)
    assert info.value.code == "upstream_bad_result"
    with pytest.raises(ProviderError):  # not an image at all
        await downloader.load(decoded(b"hello world"), client=client)
