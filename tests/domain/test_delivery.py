"""Billing what was delivered (issue 14, item 9): fewer images, a smaller tier, a cheaper
quality than asked cost less; never more than the hold."""

from __future__ import annotations

from dataclasses import replace

import pytest

from imagegate.domain.catalog import load_catalog
from imagegate.domain.delivery import bill_delivery, delivered_tier
from imagegate.domain.normalize import normalize

CATALOG = load_catalog()
GPT2 = CATALOG.models["gpt-image-2"]  # 0.04 / 0.08 / 0.16 per 1k / 2k / 4k image
GPT1 = CATALOG.models["gpt-image-1"]  # 1k only: low 0.011, medium 0.042, high 0.167


@pytest.mark.parametrize(("size", "tier"), [
    ((1024, 1024), "1k"), ((2048, 2048), "2k"), ((2880, 2880), "4k"),
    # A table size is its table tier, though its pixel count alone says 1k.
    ((2048, 1152), "2k"), ((1536, 1024), "1k"), ((1280, 1280), "1k"), ((3840, 2160), "4k"),
])
def test_delivered_tier(size: tuple[int, int], tier: str) -> None:
    assert delivered_tier(*size) == tier


def test_a_2k_request_answered_at_1k_costs_the_1k_price() -> None:
    request = normalize({"prompt": "p", "size": "2048x2048"}, CATALOG)
    assert request.tier == "2k"
    d = bill_delivery(GPT2, request, [(1024, 1024)], unit_price=80_000, hold=80_000)
    assert d.charged == 40_000 and d.tiers == ("1k",) and d.tier == "1k"
    assert d.memo(request) == ("delivered 1 of 1: 1024x1024 (1k); requested 2048x2048 (2k), "
                               "quality medium")
    assert d.to_json()["sizes"] == ["1024x1024"]


def test_fewer_images_than_n_cost_only_what_came() -> None:
    request = normalize({"prompt": "p", "size": "2048x2048", "n": 4}, CATALOG)
    d = bill_delivery(GPT2, request, [(2048, 2048)] * 2, unit_price=80_000, hold=320_000)
    assert d.charged == 160_000 and d.images == 2 and d.requested == 4


def test_bigger_or_better_than_asked_never_costs_more_than_the_hold() -> None:
    request = normalize({"prompt": "p", "size": "1024x1024"}, CATALOG)
    d = bill_delivery(GPT2, request, [(2880, 2880)], unit_price=40_000, hold=40_000)
    assert d.charged == 40_000 and d.tiers == ("4k",)
    gpt1 = normalize({"model": "gpt-image-1", "prompt": "p"}, CATALOG)  # auto bills medium
    high = bill_delivery(GPT1, gpt1, [(1024, 1024)], unit_price=42_000, hold=42_000,
                         reported_quality="high")
    assert high.charged == 42_000


def test_a_cheaper_quality_the_upstream_reports_is_what_is_billed() -> None:
    request = normalize({"model": "gpt-image-1", "prompt": "p"}, CATALOG)
    d = bill_delivery(GPT1, request, [(1024, 1024)], unit_price=42_000, hold=42_000,
                      reported_quality="low")
    assert d.charged == 11_000 and d.quality == "low"
    # A report that is not one of the model's qualities changes nothing.
    odd = bill_delivery(GPT1, request, [(1024, 1024)], unit_price=42_000, hold=42_000,
                        reported_quality="ultra")
    assert odd.charged == 42_000 and odd.quality == "medium"


def test_a_tier_the_catalog_has_no_price_for_keeps_the_held_price() -> None:
    # gpt-image-1 is priced at 1k only; a smaller image of an unpriced tier is never free.
    request = replace(normalize({"model": "gpt-image-1", "prompt": "p"}, CATALOG), tier="2k")
    d = bill_delivery(GPT1, request, [(1024, 1024)], unit_price=42_000, hold=42_000)
    assert d.charged == 42_000


def test_without_a_catalog_entry_each_image_costs_the_unit_price() -> None:
    request = normalize({"prompt": "p", "size": "2048x2048", "n": 3}, CATALOG)
    d = bill_delivery(None, request, [(1024, 1024)] * 2, unit_price=80_000, hold=240_000)
    assert d.charged == 160_000
