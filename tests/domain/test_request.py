"""What a response reports as made (issue 18, item 3): never `auto`."""

from __future__ import annotations

from typing import Any

import pytest

from imagegate.domain.catalog import load_catalog
from imagegate.domain.normalize import normalize
from imagegate.domain.request import ResponseShape, produced_fields

CATALOG = load_catalog()


@pytest.mark.parametrize(("body", "expected"), [
    ({}, {"quality": "medium", "background": "opaque"}),
    ({"quality": "auto", "background": "auto"}, {"quality": "medium", "background": "opaque"}),
    ({"quality": "low", "background": "opaque"}, {"quality": "low", "background": "opaque"}),
    ({"model": "gpt-image-1", "background": "transparent"},
     {"quality": "medium", "background": "transparent"}),
    ({"model": "dall-e-3"}, {"quality": "standard", "background": "opaque"}),
    ({"model": "dall-e-3", "quality": "auto"}, {"quality": "standard", "background": "opaque"}),
    ({"model": "dall-e-3", "quality": "hd"}, {"quality": "hd", "background": "opaque"}),
    ({"model": "dall-e-2", "quality": "auto"}, {"quality": "standard", "background": "opaque"}),
])
def test_without_an_upstream_report_the_resolved_request_values(
        body: dict[str, Any], expected: dict[str, str]) -> None:
    request = normalize({"prompt": "p", **body}, CATALOG)
    made = produced_fields(request, {"images": []})
    assert made == {"size": "1024x1024", "output_format": "png", **expected}


@pytest.mark.parametrize(("result", "expected"), [
    ({"quality": "high", "background": "transparent"}, ("high", "transparent")),
    ({"quality": "auto", "background": "auto"}, ("medium", "opaque")),  # not a made value
    ({"quality": 3, "background": None}, ("medium", "opaque")),
    (None, ("medium", "opaque")),
])
def test_an_upstream_report_wins_when_it_names_a_made_value(
        result: dict[str, Any] | None, expected: tuple[str, str]) -> None:
    made = produced_fields(normalize({"prompt": "p", "model": "gpt-image-1"}, CATALOG), result)
    assert (made["quality"], made["background"]) == expected


@pytest.mark.parametrize("body", [
    {}, {"quality": "low", "background": "transparent", "model": "gpt-image-1"},
    {"model": "dall-e-3", "quality": "hd", "response_format": "b64_json"},
    {"size": "16:9", "output_format": "webp", "response_format": "data_url"},
])
@pytest.mark.parametrize("result", [None, {"quality": "high", "background": "transparent",
                                           "size": "1536x1024"}])
def test_a_response_shape_renders_as_the_whole_request_does(
        body: dict[str, Any], result: dict[str, Any] | None) -> None:
    # Polls render from the stored JSON's ResponseShape, the sync answer from the request.
    request = normalize({"prompt": "p", **body}, CATALOG)
    shape = ResponseShape.from_json(request.to_json())
    assert shape.response_format == request.response_format
    assert produced_fields(shape, result) == produced_fields(request, result)
