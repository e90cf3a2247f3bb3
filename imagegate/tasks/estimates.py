"""How long a task typically takes, per model × tier: a task's `estimated_seconds`.

A moving average of the run time (started → images stored) of runs that delivered, kept in memory
per process: the poll route is the hottest one, so reading an estimate must cost nothing.
It learns from the tasks this process's worker finishes, and the first time a model × tier
is asked about it is seeded once from the store's recent succeeded tasks (so a freshly
started API process does not fall back to the catalog while history exists). Before any
history at all, the catalog's `typical_seconds`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from imagegate.domain.catalog import DEFAULT_TYPICAL_SECONDS, Catalog

log = logging.getLogger("imagegate.estimates")

# Weight of the newest run: about the last ten runs matter, so a slower upstream day shows
# within minutes, while one outlier moves the estimate by a fifth of its difference.
ALPHA = 0.2
# Finished tasks read to seed a model × tier.
SEED_TASKS = 50

RecentDurations = Callable[[str, str, int], Awaitable[Sequence[float]]]


class DurationEstimates:
    def __init__(self, catalog: Catalog, recent: RecentDurations | None = None) -> None:
        """`recent(model, tier, limit)`: run times of recent succeeded tasks, newest first
        (`TaskStore.recent_durations`); None: learn only from this process."""
        self._catalog = catalog
        self._recent = recent
        self._averages: dict[tuple[str, str], float] = {}
        self._seeding: dict[tuple[str, str], asyncio.Task[None]] = {}

    def record(self, model: str, tier: str, seconds: float) -> None:
        """A task of `model` × `tier` ran for `seconds` and succeeded."""
        if seconds < 0:
            return
        key = (model, tier)
        before = self._averages.get(key)
        self._averages[key] = seconds if before is None else before + ALPHA * (seconds - before)

    def typical(self, model: str, tier: str) -> float:
        spec = self._catalog.get(model)
        return spec.typical(tier) if spec is not None else DEFAULT_TYPICAL_SECONDS

    async def estimate(self, model: str, tier: str) -> float:
        """Seconds a task of `model` × `tier` is expected to run, rounded to 0.1 s."""
        key = (model, tier)
        if key not in self._averages and self._recent is not None:
            # One seeding per key, shared by every concurrent poll that asks meanwhile.
            seeding = self._seeding.get(key)
            if seeding is None:
                seeding = asyncio.ensure_future(self._seed(key))
                self._seeding[key] = seeding
            await asyncio.shield(seeding)
        value = self._averages.get(key)
        return round(self.typical(model, tier) if value is None else value, 1)

    async def _seed(self, key: tuple[str, str]) -> None:
        assert self._recent is not None
        try:
            durations = await self._recent(key[0], key[1], SEED_TASKS)
        except Exception:  # an estimate is a hint: the catalog's figure will do
            log.warning("could not read recent run times of %s %s", *key, exc_info=True)
            del self._seeding[key]
            return
        average: float | None = None
        for seconds in reversed(durations):  # oldest first, so the newest weigh most
            if seconds >= 0:
                average = seconds if average is None else average + ALPHA * (seconds - average)
        if average is not None and key not in self._averages:
            self._averages[key] = average
        # The seeding stays recorded once done, so an empty history is not read again.
