"""The moderation model's rules without a server: which categories refuse (thresholds, the
model's flags, `moderation: low`), answers that are not the documented shape, and which
channel `moderation_channel` names (the settings' own checks are in tests/test_config.py)."""

from __future__ import annotations

from typing import Any

import pytest

from imagegate.config import Settings
from imagegate.errors import ProviderError
from imagegate.moderation.model import Scores, _parse, channel_config, refused_categories

SCORES = Scores(flags={"violence": True, "sexual": False, "hate": False},
                scores={"violence": 0.8, "sexual": 0.4, "hate": 0.1})


@pytest.mark.parametrize(("thresholds", "low", "expected"), [
    ({}, None, ["violence"]),                                   # the model's flags
    ({"sexual": 0.3}, None, ["violence", "sexual"]),             # a threshold adds, by score
    ({"violence": 0.9}, None, []),                               # ... or lets through
    ({}, {"sexual": 0.5}, []),                                   # low: only its categories
    ({}, {"violence": 0.7, "hate": 0.05}, ["violence", "hate"]),
])
def test_refused_categories(thresholds: dict[str, float], low: dict[str, float] | None,
                            expected: list[str]) -> None:
    assert refused_categories(SCORES, thresholds, low) == expected


def test_a_service_that_says_only_flagged() -> None:
    assert refused_categories(Scores({}, {}, flagged=True), {}) == ["flagged"]


@pytest.mark.parametrize("answer", [
    [], {}, {"results": []}, {"results": ["x"]},
    {"results": [{"categories": [], "category_scores": {}}]},
])
def test_answers_of_another_shape_are_upstream_errors(answer: Any) -> None:
    with pytest.raises(ProviderError) as info:
        _parse(answer, "mod")
    assert info.value.code == "upstream_bad_response"


def test_scores_that_are_not_numbers_are_ignored() -> None:
    parsed = _parse({"results": [{"flagged": True, "categories": {"a": True},
                                  "category_scores": {"a": 0.9, "b": "high", "c": True}}]},
                    "mod")
    assert parsed == Scores({"a": True}, {"a": 0.9}, flagged=True)


def test_channel_config() -> None:
    assert channel_config(Settings()) is None
    quick = channel_config(Settings(openai_api_key="sk-q", moderation_channel="openai"))
    assert quick is not None and quick.secret() == "sk-q" and quick.models == []
    named = channel_config(Settings(moderation_channel="m", channels=[
        {"name": "m", "adapter": "openai_compatible", "base_url": "https://m.example/v1",
         "models": []}]))
    assert named is not None and named.base_url == "https://m.example/v1"

