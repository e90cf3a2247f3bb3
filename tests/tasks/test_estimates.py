"""Duration estimates: the catalog's figure before any history, a moving average after, one
seeding read per model × tier (shared by concurrent askers), and a failing read that leaves
the catalog's figure in place."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from imagegate.domain.catalog import DEFAULT_TYPICAL_SECONDS, load_catalog
from imagegate.tasks.estimates import ALPHA, DurationEstimates

pytestmark = pytest.mark.anyio
CATALOG = load_catalog()


async def test_catalog_figure_before_any_history() -> None:
    est = DurationEstimates(CATALOG)
    assert await est.estimate("gpt-image-2", "1k") == 60
    assert await est.estimate("gpt-image-2", "4k") == 180
    assert await est.estimate("dall-e-3", "1k") == 15
    # A tier the model does not list takes its largest figure; an unknown model the default.
    assert await est.estimate("dall-e-3", "4k") == 15
    assert await est.estimate("no-such-model", "1k") == DEFAULT_TYPICAL_SECONDS


async def test_moving_average_of_recorded_runs() -> None:
    est = DurationEstimates(CATALOG)
    est.record("gpt-image-2", "2k", 100.0)
    assert await est.estimate("gpt-image-2", "2k") == 100.0
    est.record("gpt-image-2", "2k", 50.0)
    assert await est.estimate("gpt-image-2", "2k") == round(100 + ALPHA * (50 - 100), 1)
    # Other tiers and models keep their own figures.
    assert await est.estimate("gpt-image-2", "1k") == 60
    est.record("gpt-image-2", "1k", -1.0)  # a clock step backwards is not a run time
    assert await est.estimate("gpt-image-2", "1k") == 60


async def test_seeded_once_from_recent_tasks_newest_weighing_most() -> None:
    calls: list[tuple[str, str, int]] = []
    gate = asyncio.Event()

    async def recent(model: str, tier: str, limit: int) -> Sequence[float]:
        calls.append((model, tier, limit))
        await gate.wait()
        return [10.0, 30.0] if tier == "1k" else []  # newest first

    est = DurationEstimates(CATALOG, recent)
    askers = [asyncio.create_task(est.estimate("gpt-image-2", "1k")) for _ in range(5)]
    await asyncio.sleep(0)
    gate.set()
    values = await asyncio.gather(*askers)
    expected = round(30 + ALPHA * (10 - 30), 1)
    assert values == [expected] * 5
    assert calls == [("gpt-image-2", "1k", 50)]  # one read for all five
    # No history for 2k: the catalog's figure, and the empty history is not read again.
    assert await est.estimate("gpt-image-2", "2k") == 120
    assert await est.estimate("gpt-image-2", "2k") == 120
    assert len(calls) == 2
    # Runs finished here move the seeded average.
    est.record("gpt-image-2", "1k", 100.0)
    assert await est.estimate("gpt-image-2", "1k") == round(expected + ALPHA * (100 - expected), 1)


async def test_a_failing_read_falls_back_and_is_tried_again() -> None:
    tries = 0

    async def recent(model: str, tier: str, limit: int) -> Sequence[float]:
        nonlocal tries
        tries += 1
        if tries == 1:
            raise OSError("database away")
        return [42.0]

    est = DurationEstimates(CATALOG, recent)
    assert await est.estimate("gpt-image-2", "1k") == 60
    assert await est.estimate("gpt-image-2", "1k") == 42.0
    assert tries == 2
