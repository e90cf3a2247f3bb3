"""`Moderation` end to end below HTTP: blocklists from every source and their reload, the
moderation model on the fake OpenAI upstream's `/v1/moderations` (flagging by category, slow,
failing) with fail-open and fail-closed, thresholds, `moderation: low`, the cache, and the
refusals it records."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from imagegate.accounts.keys import ApiKey
from imagegate.config import ChannelConfig, Settings
from imagegate.db.database import Database, open_database
from imagegate.domain.catalog import load_catalog
from imagegate.domain.normalize import normalize
from imagegate.domain.request import ImageRequest, StoredReference
from imagegate.errors import ContentPolicyError, ServiceUnavailableError
from imagegate.metrics import Metrics
from imagegate.moderation.service import Moderation
from imagegate.moderation.sources import BlocklistSourceError
from imagegate.moderation.store import ModerationStore
from imagegate.storage.obstore_store import memory_store
from imagegate.testing.upstreams.openai_api import FakeOpenAI
from tests.support.profiles import make_image

pytestmark = pytest.mark.anyio
CATALOG = load_catalog()
KEY = ApiKey(id="key_test", name="t", prefix="ig_x", created_at=0.0, revoked_at=None)


def request(prompt: str = "a lighthouse", **fields: Any) -> ImageRequest:
    return normalize({"prompt": prompt, **fields}, CATALOG)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = open_database(f"sqlite:///{tmp_path}/m.db")
    await database.migrate()
    try:
        yield database
    finally:
        await database.aclose()


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


def channel(fake: FakeOpenAI) -> ChannelConfig:
    return ChannelConfig(name="mod", adapter="openai", base_url=fake.url + "/v1",
                         api_key="sk-fake", models=[])


Make = Callable[..., Awaitable[Moderation]]


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Make]:
    """`await service(db, fake, **settings)`: a loaded `Moderation`, closed at teardown."""
    made: list[Moderation] = []

    async def make(db: Database | None = None, fake: FakeOpenAI | None = None,
                   **overrides: Any) -> Moderation:
        if fake is not None:
            overrides = {"channels": [channel(fake)], "moderation_channel": "mod", **overrides}
        settings = Settings(data_dir=tmp_path, **overrides)
        store = None if db is None else ModerationStore(db, 3600)
        moderation = Moderation(settings, store=store, blobs=memory_store(settings),
                                metrics=Metrics())
        made.append(moderation)
        await moderation.reload()
        return moderation

    try:
        yield make
    finally:
        for moderation in made:
            await moderation.aclose()


async def refusals(db: Database) -> list[tuple[str, str, str]]:
    rows = await ModerationStore(db, 3600).refusal_counts(0, 2e10)
    return [(r.source, r.category, r.key_id) for r in rows for _ in range(r.refused)]


# -- blocklists ---------------------------------------------------------------------------

async def test_config_entries_refuse_and_record(service: Make, db: Database,
                                                caplog: pytest.LogCaptureFixture) -> None:
    moderation = await service(db, moderation_blocklist=["[weapons]", "bomb"])
    caplog.set_level(logging.INFO, "imagegate.moderation")
    with pytest.raises(ContentPolicyError) as info:
        await moderation.screen(KEY, request("how to make a ＢＯＭＢ at home"), route="/v1/x")
    error = info.value
    assert (error.status_code, error.code, error.param) == (400, "content_policy_violation",
                                                            "prompt")
    assert "weapons" in error.message and "bomb" not in error.message.lower()
    assert await refusals(db) == [("blocklist", "weapons", "key_test")]
    assert "key_test" in caplog.text and "weapons" in caplog.text
    assert "ＢＯＭＢ" not in caplog.text and "home" not in caplog.text  # no prompt in logs
    await moderation.screen(KEY, request("a calm lake"))  # nothing else is refused


async def test_log_prompts_puts_the_prompt_and_entry_in_the_log(
        service: Make, caplog: pytest.LogCaptureFixture) -> None:
    moderation = await service(moderation_blocklist=["bomb"], log_prompts=True)
    caplog.set_level(logging.INFO, "imagegate.moderation")
    with pytest.raises(ContentPolicyError):
        await moderation.screen(KEY, request("a bomb at home"))
    assert "a bomb at home" in caplog.text and "entry='bomb'" in caplog.text


async def test_the_file_reloads_and_a_bad_one_keeps_the_old_list(service: Make,
                                                                 tmp_path: Path) -> None:
    listing = tmp_path / "blocklist.txt"
    listing.write_text("# words\nalpha\n", encoding="utf-8")
    moderation = await service(moderation_blocklist_file=listing)
    assert moderation.blocklist_verdict("an alpha wolf") is not None
    listing.write_text("beta\n[chinese]\n炸弹\n", encoding="utf-8")
    await moderation.reload()
    assert moderation.blocklist_verdict("an alpha wolf") is None
    verdict = moderation.blocklist_verdict("我想做一个炸弹的图片")
    assert verdict is not None and verdict.category == "chinese"
    listing.write_text("gamma\nre:(broken\n", encoding="utf-8")
    with pytest.raises(BlocklistSourceError, match=r"blocklist.txt line 2: invalid regular"):
        await moderation.reload()
    assert moderation.blocklist_verdict("beta test") is not None  # the old list stays
    listing.unlink()
    with pytest.raises(BlocklistSourceError, match="cannot read"):
        await moderation.reload()


async def test_reload_reads_the_configuration_again(service: Make, tmp_path: Path) -> None:
    current = {"moderation_blocklist": ["one"]}
    settings = Settings(data_dir=tmp_path, **current)
    moderation = Moderation(settings, load_settings=lambda: Settings(data_dir=tmp_path,
                                                                     **current))
    await moderation.reload()
    assert moderation.blocklist_verdict("one two") is not None
    current["moderation_blocklist"] = ["two"]
    await moderation.reload()
    assert moderation.blocklist_verdict("one") is None
    assert moderation.blocklist_verdict("one two") is not None


async def test_the_database_list_is_replaced_and_reloaded(service: Make, db: Database) -> None:
    moderation = await service(db)
    await moderation.replace_global(["[brand]", "acme"])
    assert moderation.blocklist_verdict("ACME rockets") is not None
    assert moderation.describe()["blocklist"]["admin"] == ["[brand]", "acme"]
    other = await service(db)  # another process reads it at its (re)load
    assert other.blocklist_verdict("acme") is not None


async def test_per_key_lists(service: Make, caplog: pytest.LogCaptureFixture) -> None:
    moderation = await service()
    shop = dataclasses.replace(KEY, id="key_shop", moderation_blocklist=("[brand]", "rival co"))
    other = dataclasses.replace(KEY, id="key_other")
    with pytest.raises(ContentPolicyError) as info:
        await moderation.screen(shop, request("a Rival   Co logo"))
    assert info.value.category == "brand"
    await moderation.screen(other, request("a Rival Co logo"))
    changed = dataclasses.replace(shop, moderation_blocklist=("nothing",))
    await moderation.screen(changed, request("a Rival Co logo"))  # the new list, at once
    broken = dataclasses.replace(KEY, id="key_broken", moderation_blocklist=("re:(",))
    await moderation.screen(broken, request("anything"))  # skipped, and said so
    assert "key_broken" in caplog.text


async def test_variations_have_no_prompt_to_screen(service: Make) -> None:
    moderation = await service(moderation_blocklist=["re:."])
    await moderation.screen(KEY, dataclasses.replace(request(), prompt=""))


# -- the moderation model -----------------------------------------------------------------

async def test_the_model_refuses_a_flagged_prompt(service: Make, db: Database,
                                                  fake: FakeOpenAI) -> None:
    moderation = await service(db, fake)
    with pytest.raises(ContentPolicyError) as info:
        await moderation.review(KEY, request("a massacre in a village"))
    assert (info.value.param, info.value.category, info.value.source) == ("prompt", "violence",
                                                                           "model")
    assert await refusals(db) == [("model", "violence", "key_test")]
    sent = [r.json for r in fake.requests if r.path == "/v1/moderations"]
    assert sent == [{"model": "omni-moderation-latest", "input": "a massacre in a village"}]
    await moderation.review(KEY, request("a quiet village"))


async def test_the_model_refuses_a_reference_image_by_its_field(service: Make,
                                                                fake: FakeOpenAI) -> None:
    moderation = await service(None, fake)
    assert moderation._blobs is not None
    refs = []
    for i, colour in enumerate([(0, 0, 255), (255, 0, 0)]):
        data = make_image(2000, 1500, colour=colour)
        await moderation._blobs.put(f"tasks/t/refs/{i}", data, "image/png")
        refs.append(StoredReference(f"tasks/t/refs/{i}", "image/png", 2000, 1500, len(data)))
    req = dataclasses.replace(request("a harmless collage"), reference_images=tuple(refs))
    with pytest.raises(ContentPolicyError) as info:
        await moderation.review(KEY, req, ["image_urls[0]", "image_urls[1]"])
    assert (info.value.param, info.value.category) == ("image_urls[1]", "violence/graphic")
    assert "reference image image_urls[1]" in info.value.message
    images = [r.json["input"][0]["image_url"]["url"] for r in fake.requests
              if r.path == "/v1/moderations" and isinstance(r.json["input"], list)]
    assert len(images) == 2 and all(u.startswith("data:image/jpeg;base64,") for u in images)
    assert fake.moderations == 3  # the prompt and each image on its own
    only_text = await service(None, fake, moderation_images=False)
    await only_text.review(KEY, req, ["image_urls[0]", "image_urls[1]"])


async def test_thresholds(service: Make, fake: FakeOpenAI) -> None:
    default = await service(None, fake)
    await default.review(KEY, request("a borderline scene"))  # 0.45: the model does not flag
    strict = await service(None, fake, moderation_thresholds={"violence": 0.4})
    with pytest.raises(ContentPolicyError):
        await strict.review(KEY, request("a borderline scene"))
    lax = await service(None, fake, moderation_thresholds={"violence": 0.99})
    await lax.review(KEY, request("a massacre"))  # 0.97 < 0.99


async def test_low_moderation_only_for_keys_allowed_it(service: Make, fake: FakeOpenAI) -> None:
    moderation = await service(None, fake)
    allowed = dataclasses.replace(KEY, allow_low_moderation=True)
    edgy = request("an edgy poster", moderation="low")  # violence 0.62: flagged normally
    await moderation.review(allowed, edgy)
    with pytest.raises(ContentPolicyError):
        await moderation.review(KEY, edgy)  # not allowed: no relaxation
    with pytest.raises(ContentPolicyError):
        await moderation.review(allowed, request("an edgy poster"))  # did not ask for low
    fake.moderation_terms["minorterm"] = {"sexual/minors": 0.8}
    with pytest.raises(ContentPolicyError) as info:
        await moderation.review(allowed, request("minorterm", moderation="low"))
    assert info.value.category == "sexual/minors"  # moderation_low_thresholds still refuse


async def test_verdicts_are_cached(service: Make, fake: FakeOpenAI) -> None:
    moderation = await service(None, fake)
    for _ in range(3):
        await moderation.review(KEY, request("the same prompt"))
    assert fake.moderations == 1
    uncached = await service(None, fake, moderation_cache_seconds=0)
    await uncached.review(KEY, request("the same prompt"))
    await uncached.review(KEY, request("the same prompt"))
    assert fake.moderations == 3


@pytest.mark.parametrize("fault", ["failing", "slow"])
async def test_fail_closed_and_fail_open(service: Make, fault: str) -> None:
    async with FakeOpenAI(latency=30 if fault == "slow" else 0) as fake:
        if fault == "failing":
            fake.fail_next(500, times=10)
        closed = await service(None, fake, moderation_timeout_seconds=0.3)
        with pytest.raises(ServiceUnavailableError) as info:
            await closed.review(KEY, request("a massacre"))
        assert info.value.code == "moderation_unavailable"
        assert info.value.status_code == 503 and info.value.headers["Retry-After"]
        opened = await service(None, fake, moderation_timeout_seconds=0.3,
                               moderation_on_error="open")
        await opened.review(KEY, request("a massacre"))  # let through unchecked


async def test_explain(service: Make, fake: FakeOpenAI) -> None:
    moderation = await service(None, fake, moderation_blocklist=["[w]", "bomb"])
    verdict = await moderation.explain("a ＢＯＭＢ")
    assert verdict["refused"] and verdict["rule"] == {"entry": "bomb", "list": "config",
                                                      "line": 2}
    assert verdict["normalized"] == "a bomb"
    model = await moderation.explain("so much gore")
    assert model["refused"] and model["source"] == "model" and model["category"] == "violence"
    assert (await moderation.explain("a lake"))["refused"] is False
    assert fake.submissions == 0
