"""`Moderation`: the one object the create path asks before anything is charged or sent.

- `screen(key, request)` (before the reference images are fetched): the prompt, normalized
  (text.py), against the global blocklist and the key's own list. Cheap, in-process.
- `review(key, request, params)` (after they are stored, before the hold): the moderation
  model, when `moderation_channel` is set, on the prompt and each reference image.

Either raises `ContentPolicyError` (400 `content_policy_violation`, naming the category, never
the entry or the list) after counting the refusal (metrics, the refusals table) and logging it
without the prompt unless `log_prompts` is on. A model check that fails or times out refuses
with 503 `moderation_unavailable` (`moderation_on_error = "closed"`) or lets the request
through with a warning (`"open"`).

The global lists are swapped whole on `reload()`: requests running meanwhile see the old or the
new lists, never half of each. No method here writes a task or touches a balance.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from imagegate.accounts.keys import ApiKey
from imagegate.config import Settings
from imagegate.domain.request import ImageRequest
from imagegate.errors import ContentPolicyError, ImagegateError, ServiceUnavailableError
from imagegate.metrics import Metrics, ModerationOutcome
from imagegate.moderation.blocklist import Blocklist, BlocklistError, Rule, parse_entries
from imagegate.moderation.model import ModerationModel, Scores, channel_config, refused_categories
from imagegate.moderation.sources import GlobalSources, global_sources
from imagegate.moderation.store import ModerationStore
from imagegate.moderation.text import normalize_text
from imagegate.storage.base import BlobStore

log = logging.getLogger("imagegate.moderation")

SettingsLoader = Callable[[], Settings]
Check = Callable[[], Coroutine[Any, Any, tuple[Scores, bool]]]  # one input's classification
_KEY_CACHE_MAX = 10_000
UPSTREAM = "upstream"


@dataclass(frozen=True, slots=True)
class Verdict:
    """Why a request is refused: `source` blocklist or model, the category, the field it is
    about, and for blocklists the rule (never shown to the client)."""

    source: str
    category: str
    param: str
    rule: Rule | None = None

    def error(self) -> ContentPolicyError:
        what = "prompt" if self.param == "prompt" else f"reference image {self.param}"
        return ContentPolicyError(
            f"The {what} was refused by this service's content policy (category: "
            f"{self.category}). Nothing was charged.",
            param=self.param, source=self.source, category=self.category)


class Moderation:
    def __init__(self, settings: Settings, *, store: ModerationStore | None = None,
                 blobs: BlobStore | None = None, metrics: Metrics | None = None,
                 model: ModerationModel | None = None,
                 load_settings: SettingsLoader | None = None) -> None:
        """`model` overrides the one `moderation_channel` names (tests); `load_settings`
        re-reads the configuration on reload (the server passes its own loader)."""
        self._settings = settings
        self._store = store
        self._blobs = blobs
        self._metrics = metrics
        self._load_settings = load_settings
        config = channel_config(settings)
        self.model = model if model is not None else (
            None if config is None else ModerationModel(
                config, model=settings.moderation_model,
                cache_seconds=settings.moderation_cache_seconds))
        self._sources = GlobalSources((), None, (), (), ())
        self._global = Blocklist.empty()
        self.loaded_at: float | None = None
        self._keys: dict[str, tuple[tuple[str, ...], Blocklist]] = {}

    async def aclose(self) -> None:
        if self.model is not None:
            await self.model.aclose()

    # -- the lists
    async def reload(self) -> GlobalSources:
        """Read every global source again and swap the list in one assignment; on any error
        (BlocklistSourceError, a bad configuration) the old list stays and the error is
        raised."""
        settings = self._settings if self._load_settings is None else self._load_settings()
        admin = await self._store.global_entries() if self._store is not None else []
        sources = global_sources(settings, admin)
        self._sources, self._global = sources, Blocklist(sources.rules)
        self.loaded_at = time.time()
        return sources

    async def replace_global(self, entries: Sequence[str]) -> GlobalSources:
        """Store `entries` as the admin's global list and reload. BlocklistError (with the
        entry's index) before anything is stored when one is unusable."""
        parse_entries(entries, "admin")
        if self._store is None:
            raise RuntimeError("no database to keep the list in")
        await self._store.replace_global(entries)
        return await self.reload()

    @property
    def sources(self) -> GlobalSources:
        return self._sources

    def key_list(self, key: ApiKey) -> Blocklist:
        entries = key.moderation_blocklist
        if not entries:
            return Blocklist.empty()
        cached = self._keys.get(key.id)
        if cached is not None and cached[0] == entries:
            return cached[1]
        try:
            compiled = Blocklist(parse_entries(entries, "key"))
        except BlocklistError as exc:  # stored past the admin API's check: skip, say so
            log.warning("the blocklist of key %s has an unusable entry %d (%s); it is not "
                        "applied", key.id, exc.index + 1, exc.message)
            compiled = Blocklist.empty()
        if len(self._keys) >= _KEY_CACHE_MAX:
            self._keys.clear()
        self._keys[key.id] = (entries, compiled)
        return compiled

    def blocklist_verdict(self, prompt: str, key: ApiKey | None = None) -> Verdict | None:
        if not prompt:
            return None
        text = normalize_text(prompt)
        rule = self._global.find(text)
        if rule is None and key is not None:
            rule = self.key_list(key).find(text)
        return None if rule is None else Verdict("blocklist", rule.category, "prompt", rule)

    # -- the create path
    async def screen(self, key: ApiKey, request: ImageRequest, *, route: str = "") -> None:
        """The blocklists; raises ContentPolicyError (after recording it) on a hit."""
        verdict = self.blocklist_verdict(request.prompt, key)
        if verdict is not None:
            raise await self._refused(key, request, verdict, route)

    async def review(self, key: ApiKey, request: ImageRequest, params: Sequence[str] = (), *,
                     route: str = "") -> None:
        """The model check of the prompt and the stored reference images (`params` names
        each image's field, in order); raises ContentPolicyError or, failing closed,
        ServiceUnavailableError."""
        model = self.model
        if model is None:
            return
        checks: list[tuple[str, Check]] = []
        if request.prompt:
            checks.append(("prompt", lambda: model.text(request.prompt)))
        if self._settings.moderation_images and self._blobs is not None:
            for index, ref in enumerate(request.reference_images):
                param = params[index] if index < len(params) else f"image[{index}]"
                checks.append((param, self._image_check(model, ref.key)))
        if not checks:
            return
        results = await self._run_checks(checks, key, route)
        if results is None:
            return  # failed open
        low = self._low_thresholds(key, request)
        for (param, _), scores in zip(checks, results, strict=True):
            categories = refused_categories(scores, self._settings.moderation_thresholds, low)
            if categories:
                raise await self._refused(key, request, Verdict("model", categories[0], param),
                                          route)

    def _low_thresholds(self, key: ApiKey | None, request: ImageRequest | None
                        ) -> Mapping[str, float] | None:
        if key is not None and request is not None and key.allow_low_moderation \
                and request.moderation == "low":
            return self._settings.moderation_low_thresholds
        return None

    def _image_check(self, model: ModerationModel, blob_key: str
                     ) -> Check:
        async def check() -> tuple[Scores, bool]:
            assert self._blobs is not None
            return await model.image(await self._blobs.get(blob_key))
        return check

    async def _run_checks(
        self, checks: Sequence[tuple[str, Check]],
        key: ApiKey, route: str,
    ) -> list[Scores] | None:
        """Every check at once under one deadline; None when one failed and the service
        fails open."""
        failure: tuple[ModerationOutcome, str] | None = None
        try:
            async with asyncio.timeout(self._settings.moderation_timeout_seconds):
                async with asyncio.TaskGroup() as group:
                    tasks: list[asyncio.Task[tuple[Scores, bool]]] = [
                        group.create_task(run()) for _, run in checks]
        except* TimeoutError:
            failure = ("timeout", "it did not answer in time")
        except* (ImagegateError, OSError, LookupError, ValueError) as failures:
            first = failures.exceptions[0]
            why = first.message if isinstance(first, ImagegateError) else type(first).__name__
            failure = ("error", why)
        if failure is not None:
            self._failed(key, route, *failure)  # raises unless the service fails open
            return None
        out = []
        for task in tasks:
            scores, cached = task.result()
            if self._metrics is not None:
                self._metrics.model_check("cached" if cached else "called")
            out.append(scores)
        return out

    def _failed(self, key: ApiKey, route: str, outcome: ModerationOutcome, why: str) -> None:
        if self._metrics is not None:
            self._metrics.model_check(outcome)
        if self._settings.moderation_on_error == "open":
            log.warning("moderation model check failed (%s) for key %s on %s; the request "
                        "goes on unchecked (moderation_on_error = open)", why, key.id, route)
            return
        log.warning("moderation model check failed (%s) for key %s on %s; the request is "
                    "refused with 503 (moderation_on_error = closed)", why, key.id, route)
        raise ServiceUnavailableError(
            "Content moderation is unavailable right now, so the request was not accepted; "
            "nothing was charged. Please retry shortly.",
            code="moderation_unavailable", headers={"Retry-After": "5"})

    async def _refused(self, key: ApiKey, request: ImageRequest, verdict: Verdict,
                       route: str) -> ContentPolicyError:
        await self.record(key.id, verdict.source, verdict.category, request.model)
        details = ""
        if self._settings.log_prompts:
            entry = f" entry={verdict.rule.entry!r}" if verdict.rule is not None else ""
            details = f" prompt={request.prompt!r}{entry}"
        log.info("refused a request of key %s on %s: %s, category %s, param %s%s", key.id,
                 route or "-", verdict.source, verdict.category, verdict.param, details)
        return verdict.error()

    async def record(self, key_id: str, source: str, category: str, model: str | None
                     ) -> None:
        """Count one refusal (metrics and the refusals table); also used for an upstream's
        own content-policy refusal (source "upstream"). A failure to write is logged, never
        raised: the refusal itself stands."""
        if self._metrics is not None:
            self._metrics.refused(source, category)
        if self._store is None:
            return
        try:
            await self._store.record_refusal(key_id, source, category, model)
        except Exception:
            log.exception("could not record a moderation refusal of key %s", key_id)

    async def upstream_refused(self, key_id: str, model: str | None) -> None:
        await self.record(key_id, UPSTREAM, UPSTREAM, model)

    # -- the operator's view
    async def explain(self, prompt: str, key: ApiKey | None = None,
                      moderation: str = "auto") -> dict[str, Any]:
        """What `imagegate moderation test` prints: whether and why this prompt would be
        refused (blocklists, then the model on the text), recording nothing."""
        out: dict[str, Any] = {"object": "moderation.test", "normalized": normalize_text(prompt),
                               "refused": False, "source": None, "category": None,
                               "rule": None, "model": None}
        verdict = self.blocklist_verdict(prompt, key)
        if verdict is not None and verdict.rule is not None:
            rule = verdict.rule
            out.update(refused=True, source="blocklist", category=verdict.category,
                       rule={"entry": rule.entry, "list": rule.origin, "line": rule.line})
            return out
        if self.model is None or not prompt:
            return out
        low = None
        if key is not None and key.allow_low_moderation and moderation == "low":
            low = self._settings.moderation_low_thresholds
        try:
            async with asyncio.timeout(self._settings.moderation_timeout_seconds):
                scores, _ = await self.model.text(prompt)
        except (TimeoutError, ImagegateError) as exc:
            why = exc.message if isinstance(exc, ImagegateError) else "timed out"
            failed_closed = self._settings.moderation_on_error == "closed"
            out["model"] = {"error": why, "on_error": self._settings.moderation_on_error}
            if failed_closed:
                out.update(refused=True, source="model", category="moderation_unavailable")
            return out
        categories = refused_categories(scores, self._settings.moderation_thresholds, low)
        top = sorted(scores.scores.items(), key=lambda kv: -kv[1])[:5]
        out["model"] = {"low": low is not None, "flagged": categories,
                        "top_scores": dict(top)}
        if categories:
            out.update(refused=True, source="model", category=categories[0])
        return out

    def describe(self) -> dict[str, Any]:
        """`GET /admin/moderation`: where the lists come from and what the model check is."""
        s, settings = self._sources, self._settings
        return {
            "object": "moderation",
            "loaded_at": self.loaded_at,
            "entries": len(self._global),
            "blocklist": {
                "config": list(s.config),
                "file": None if s.file is None else str(s.file),
                "file_entries": list(s.file_entries),
                "admin": list(s.admin),
            },
            "model": None if self.model is None else {
                "channel": self.model.channel.name,
                "model": self.model.model,
                "thresholds": settings.moderation_thresholds,
                "low_thresholds": settings.moderation_low_thresholds,
                "timeout_seconds": settings.moderation_timeout_seconds,
                "on_error": settings.moderation_on_error,
                "images": settings.moderation_images,
                "cache_seconds": settings.moderation_cache_seconds,
            },
        }
