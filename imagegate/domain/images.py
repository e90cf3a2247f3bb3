"""Image values shared by providers, events, ingest and tasks, and the one table of the
formats imagegate reads and writes.

They live in `domain/` because every floor above uses them: a provider makes
`GeneratedImage`s and `PartialImage`s, the event bus carries partials to streaming clients,
ingest validates what becomes a `ReferenceImage`, and the worker stores results by format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

ImageFormat = Literal["png", "jpeg", "webp"]

MIME_TYPES: Mapping[ImageFormat, str] = MappingProxyType({
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
})
"""Format name -> media type. The format name is also the file extension imagegate uses."""

_FORMATS: Mapping[str, ImageFormat] = MappingProxyType({v: k for k, v in MIME_TYPES.items()})


def format_of(content_type: str) -> ImageFormat | None:
    """The format of a media type imagegate produces, or None for anything else."""
    return _FORMATS.get(content_type)


@dataclass(frozen=True, slots=True)
class GeneratedImage:
    """One finished image as a provider returns it (bytes verified by whoever made them)."""

    data: bytes
    content_type: str
    width: int
    height: int
    revised_prompt: str | None = None


@dataclass(frozen=True, slots=True)
class PartialImage:
    """A progressively refined preview for streaming clients (`partial_images` of them per
    image, in order)."""

    image_index: int
    partial_index: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ReferenceImage:
    """A validated input image (reference or mask), loaded from the task's blobs."""

    data: bytes
    content_type: str
    width: int
    height: int
