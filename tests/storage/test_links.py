"""ResultLinks: one rendering of result URLs for every profile and for webhooks."""

from __future__ import annotations

import base64
import time

import pytest

from imagegate.domain.task import StoredImage, Task, TaskStatus
from imagegate.storage.base import BlobStore
from imagegate.storage.links import ResultLinks
from imagegate.storage.obstore_store import ObstoreBlobStore
from imagegate.storage.signing import UrlSigner

pytestmark = pytest.mark.anyio

SIGNER = UrlSigner(b"0123456789abcdef0123456789abcdef", 3600)
IMAGE = StoredImage(key="tasks/img_1/1/0.png", content_type="image/png", size=4, etag="e",
                    width=1, height=1)


def _task(expires_in: float = 86_400) -> Task:
    now = time.time()
    return Task(id="img_1", key_id="k", status=TaskStatus.SUCCEEDED, progress=100,
                operation="generate", model="gpt-image-2", provider="sandbox", request={},
                result={"images": [IMAGE.to_json()]}, error=None, created_at=now,
                started_at=now, completed_at=now, expires_at=now + expires_in,
                lease_owner=None, lease_expires_at=None, attempts=1, upstream_task_id=None)


async def _blobs() -> BlobStore:
    blobs = ObstoreBlobStore.memory()
    await blobs.put(IMAGE.key, b"\x89PNG", IMAGE.content_type)
    return blobs


async def test_relative_signed_url_verifies() -> None:
    links = ResultLinks(SIGNER, await _blobs())
    url, exp = await links.url(_task(), 0)
    assert url.startswith("/p/img/img_1/0?exp=")
    sig = url.rsplit("sig=", 1)[1]
    assert links.verify("img_1", 0, exp, sig)
    assert not links.verify("img_1", 1, exp, sig)


async def test_absolute_urls_use_the_public_base() -> None:
    links = ResultLinks(SIGNER, await _blobs(), url_mode="absolute",
                        public_base_url="https://img.example.com")
    url, _ = await links.url(_task(), 0)
    assert url.startswith("https://img.example.com/p/img/img_1/0?exp=")


async def test_data_mode_and_base64() -> None:
    links = ResultLinks(SIGNER, await _blobs(), url_mode="data")
    task = _task()
    url, exp = await links.url(task, 0)
    assert url == "data:image/png;base64," + base64.b64encode(b"\x89PNG").decode()
    assert exp == int(task.expires_at * 1000)
    assert await links.b64(IMAGE) == base64.b64encode(b"\x89PNG").decode()
    assert await links.read(IMAGE) == b"\x89PNG"
    # A signed URL is still available where a profile needs one beside base64.
    assert links.signed_url(task, 0)[0].startswith("/p/img/img_1/0?")


async def test_a_url_never_outlives_its_task() -> None:
    task = _task(expires_in=120)
    _, exp = ResultLinks(SIGNER, await _blobs()).signed_url(task, 0)
    assert exp <= task.expires_at * 1000


async def test_links_bound_to_an_origin_are_kept_per_origin_and_bounded() -> None:
    links = ResultLinks(SIGNER, await _blobs())
    a = links.for_origin("http://a.example")
    assert links.for_origin("http://a.example") is a
    b = links.for_origin("https://b.example:8443")
    assert b is not a
    assert a.signed_url(_task(), 0)[0].startswith("http://a.example/p/img/img_1/0?")
    assert b.signed_url(_task(), 0)[0].startswith("https://b.example:8443/p/img/img_1/0?")
    for i in range(200):  # Host headers are the client's: the memo must not grow with them
        assert links.for_origin(f"http://h{i}.example").link("/x") == f"http://h{i}.example/x"
    assert len(links._bound) <= 64
    assert links.link("/x") == "/x"  # the unbound links are untouched
