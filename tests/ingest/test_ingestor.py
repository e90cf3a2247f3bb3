"""The Ingestor: the per-request pixel budget is judged on every header before any decode,
and what it fetches or decodes counts against the process-wide memory budget."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from imagegate.domain.request import ImageRequest, ReferenceSource
from imagegate.errors import InvalidRequestError, ServiceUnavailableError
from imagegate.ingest import IngestLimits, Ingestor
from imagegate.ingest.budget import MemoryBudget
from imagegate.net.fetch import Fetcher
from imagegate.net.guard import AddressPolicy
from imagegate.storage.obstore_store import ObstoreBlobStore
from tests.support.images import flat_png

pytestmark = pytest.mark.anyio

MIB = 1024 * 1024
BOMB = flat_png(7000, 7000)  # 49,000,000 pixels: under the per-image cap of 50,000,000
SMALL = flat_png(64, 48)


def request(*sources: ReferenceSource) -> ImageRequest:
    return ImageRequest(
        operation="edit", model="gpt-image-2-pro", prompt="p", n=1, width=1024, height=1024,
        tier="1k", size_label="1024x1024", output_format="png", output_compression=None,
        background="auto", quality="auto", moderation="auto", style=None, user=None,
        response_format="url", references=sources,
    )


def upload(data: bytes, index: int) -> ReferenceSource:
    return ReferenceSource("ref.png", "image", index, data)


class Stored:
    def __init__(self) -> None:
        self.blobs = ObstoreBlobStore.memory()

    async def count(self) -> int:
        """How many blobs are stored (counted by removing them)."""
        return await self.blobs.delete_prefix("tasks/")


def ingestor(blobs: ObstoreBlobStore, budget: MemoryBudget | None = None,
             **limits: Any) -> Ingestor:
    return Ingestor(blobs, Fetcher(AddressPolicy()), IngestLimits(**limits),
                    budget or MemoryBudget(512 * MIB, 0))


def test_the_bomb_is_small() -> None:
    assert len(BOMB) < 16 * 1024


async def test_sixteen_flat_49_megapixel_pngs_are_refused_before_any_decode(
        monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[object] = []

    async def decode(data: bytes, info: object) -> None:
        decoded.append(info)

    monkeypatch.setattr("imagegate.ingest.decode", decode)
    store = Stored()
    budget = MemoryBudget(512 * MIB, 0)
    sources = [upload(BOMB, i) for i in range(16)]
    with pytest.raises(InvalidRequestError) as err:
        await ingestor(store.blobs, budget).prepare(request(*sources), "t")
    assert err.value.status_code == 400
    assert (err.value.code, err.value.param) == ("request_too_large_dimensions", "image")
    assert "784,000,000" in err.value.message and "100,000,000" in err.value.message
    assert decoded == []  # refused from the headers alone
    assert await store.count() == 0 and budget.used == 0


async def test_two_images_within_the_pixel_budget_pass() -> None:
    store = Stored()
    done = await ingestor(store.blobs, max_total_pixels=2 * 64 * 48).prepare(
        request(upload(SMALL, 0), upload(SMALL, 1)), "t")
    assert [(r.width, r.height) for r in done.reference_images] == [(64, 48), (64, 48)]
    with pytest.raises(InvalidRequestError) as err:
        await ingestor(store.blobs, max_total_pixels=2 * 64 * 48 - 1).prepare(
            request(upload(SMALL, 0), upload(SMALL, 1)), "t2")
    assert err.value.code == "request_too_large_dimensions"


async def test_a_bad_header_is_named_before_the_total_is_judged() -> None:
    store = Stored()
    with pytest.raises(InvalidRequestError) as err:
        await ingestor(store.blobs).prepare(
            request(upload(BOMB, 0), upload(BOMB, 1), upload(b"GIF89a....", 2)), "t")
    assert (err.value.code, err.value.param) == ("unsupported_image_format", "image[2]")


async def test_decoded_images_count_against_the_memory_budget() -> None:
    store = Stored()
    budget = MemoryBudget(MIB, 0)
    other = budget.lease()
    await other.grow(MIB, param="body")  # another request holds all of it
    b64 = base64.b64encode(SMALL).decode()
    source = ReferenceSource(f"data:image/png;base64,{b64}", "image_urls", 0)
    with pytest.raises(ServiceUnavailableError) as err:
        await ingestor(store.blobs, budget).prepare(request(source), "t")
    assert (err.value.status_code, err.value.code, err.value.param) == (
        503, "server_busy", "image_urls[0]")
    assert err.value.headers["Retry-After"] == "1"
    assert budget.used == MIB and await store.count() == 0
    other.close()
    done = await ingestor(store.blobs, budget).prepare(request(source), "t")
    assert len(done.reference_images) == 1 and budget.used == 0


async def test_a_fetch_holds_room_for_the_largest_image_while_it_runs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    budget = MemoryBudget(64 * MIB, 0)
    seen: list[int] = []

    async def fetch(self: Fetcher, url: str, *, max_bytes: int) -> bytes:
        seen.append(budget.used)
        return SMALL

    monkeypatch.setattr(Fetcher, "fetch", fetch)
    store = Stored()
    source = ReferenceSource("https://images.example/a.png", "image_urls", 0)
    done = await ingestor(store.blobs, budget, max_image_bytes=5 * MIB).prepare(
        request(source), "t")
    assert seen == [5 * MIB] and len(done.reference_images) == 1 and budget.used == 0


async def test_a_data_url_header_is_capped() -> None:
    store = Stored()
    b64 = base64.b64encode(SMALL).decode()
    long_type = "image/" + "x" * 300
    source = ReferenceSource(f"data:{long_type};base64,{b64}", "image_urls", 0)
    with pytest.raises(InvalidRequestError) as err:
        await ingestor(store.blobs).prepare(request(source), "t")
    assert (err.value.code, err.value.param) == ("invalid_data_url", "image_urls[0]")
    assert "x" * 100 not in err.value.message
