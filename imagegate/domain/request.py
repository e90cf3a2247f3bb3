"""The one normalized request every surface produces (DESIGN §2).

Surfaces (native, openai, apimart profiles; JSON or multipart) turn their input into an
`ImageRequest`; everything after that point (tasks, providers, billing) only sees this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from imagegate.domain.images import MIME_TYPES, ImageFormat

Background = Literal["auto", "transparent", "opaque"]
# What a response may name as made: never `auto` (003's `ImagesResponse` enums).
PRODUCED_QUALITIES = frozenset({"low", "medium", "high", "standard", "hd"})
PRODUCED_BACKGROUNDS = frozenset({"transparent", "opaque"})
ResponseFormat = Literal["url", "b64_json", "data_url"]
# A variation (dall-e-2) has one input image and no prompt: `prompt` is "" on its request.
Operation = Literal["generate", "edit", "variation"]


@dataclass(frozen=True, slots=True)
class ReferenceSource:
    """A reference image (or mask) exactly as the client gave it, before ingest.

    `value` is an http(s) URL, a `data:` URL or bare base64 — or, for an uploaded file, its
    file name with the bytes in `data`. `field` and `index` name where it came from so an
    ingest error can point at the item (`image_urls[2]`).
    """

    value: str
    field: str
    index: int
    data: bytes | None = None

    @property
    def param(self) -> str:
        # There is only ever one mask, so it is named without an index.
        if self.field in ("mask", "mask_url"):
            return self.field
        return f"{self.field}[{self.index}]"


@dataclass(frozen=True, slots=True)
class StoredReference:
    """An input image after ingest: validated, stored as a blob of its task."""

    key: str
    content_type: str
    width: int
    height: int
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "content_type": self.content_type, "width": self.width,
                "height": self.height, "size": self.size}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> StoredReference:
        return cls(**d)


@dataclass(frozen=True, slots=True)
class ImageRequest:
    operation: Operation
    model: str
    prompt: str
    n: int
    width: int
    height: int
    tier: str  # "1k" | "2k" | "4k": what `n` limits and prices key on
    size_label: str  # the `WxH` string reported back in responses
    output_format: ImageFormat
    output_compression: int | None
    background: Background
    quality: str  # what is made and billed: never "auto" (see `quality_auto`)
    moderation: str
    style: str | None
    user: str | None
    response_format: ResponseFormat
    # Before ingest: what the client sent. After ingest these are empty and the stored
    # images below take their place (the task row never holds a 20 MB data URL).
    references: tuple[ReferenceSource, ...] = ()
    mask: ReferenceSource | None = None
    reference_images: tuple[StoredReference, ...] = ()
    mask_image: StoredReference | None = None
    stream: bool = False
    partial_images: int = 0  # partial renders a streaming client receives before the final
    ignored_fields: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    # The 002 seed's flag: may fall back to channels marked `official` (routing).
    official_fallback: bool = False
    # Where to POST (signed) when the task finishes; else the key's webhook URL, if any.
    webhook_url: str | None = None
    # Which events go to the webhook (`domain/webhook_events.py`): the request's, else the
    # key's (intake fills it in), None: the end only.
    webhook_events: tuple[str, ...] | None = None
    # The client left the quality to the model (`auto`, or none sent where the default is
    # auto): relays pass `auto` on, and `quality` holds what the catalog says it makes.
    quality_auto: bool = False
    # The 002 seed's image-to-image rule (apimart profile): no `size` was sent, so the size
    # is the first reference image's, resolved after ingest (`settle_reference_size`);
    # until then width/height/tier are provisional. `resolution` is the tier that was sent,
    # if one was, which the reference's shape is then scaled to.
    size_from_reference: bool = False
    resolution: str | None = None
    # The model rewrites prompts (003: dall-e-3 only, the catalog's `revised_prompt`): its
    # results keep the `revised_prompt` an upstream sends (the sandbox makes one); the
    # results of other models never carry one.
    revises_prompt: bool = False
    # Seconds after submission at which the task is cancelled if not finished (`Cancel-After`
    # header or `deadline_seconds`); None: no deadline. The task row keeps it as `deadline_at`.
    deadline_seconds: float | None = None

    @property
    def content_type(self) -> str:
        return MIME_TYPES[self.output_format]

    @property
    def produced_background(self) -> str:
        """The background made when no upstream says otherwise: `auto` makes an opaque one
        (a transparent one is only made when asked for)."""
        return made_background(self.background)

    def to_json(self) -> dict[str, Any]:
        """What the task row stores; `from_json` is its exact inverse."""
        return {
            "operation": self.operation,
            "model": self.model,
            "prompt": self.prompt,
            "n": self.n,
            "width": self.width,
            "height": self.height,
            "tier": self.tier,
            "size_label": self.size_label,
            "output_format": self.output_format,
            "output_compression": self.output_compression,
            "background": self.background,
            "quality": self.quality,
            "moderation": self.moderation,
            "style": self.style,
            "user": self.user,
            "response_format": self.response_format,
            "references": [[r.value, r.field, r.index] for r in self.references],
            "mask": [self.mask.value, self.mask.field, self.mask.index] if self.mask else None,
            "reference_images": [r.to_json() for r in self.reference_images],
            "mask_image": self.mask_image.to_json() if self.mask_image else None,
            "stream": self.stream,
            "partial_images": self.partial_images,
            "ignored_fields": list(self.ignored_fields),
            "extra": self.extra,
            "official_fallback": self.official_fallback,
            "webhook_url": self.webhook_url,
            "webhook_events": None if self.webhook_events is None else list(self.webhook_events),
            "quality_auto": self.quality_auto,
            "size_from_reference": self.size_from_reference,
            "resolution": self.resolution,
            "revises_prompt": self.revises_prompt,
            "deadline_seconds": self.deadline_seconds,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImageRequest:
        refs = tuple(ReferenceSource(v, f, i) for v, f, i in data.get("references", []))
        mask = data.get("mask")
        mask_image = data.get("mask_image")
        return cls(
            operation=data["operation"],
            model=data["model"],
            prompt=data["prompt"],
            n=data["n"],
            width=data["width"],
            height=data["height"],
            tier=data["tier"],
            size_label=data["size_label"],
            output_format=data["output_format"],
            output_compression=data["output_compression"],
            background=data["background"],
            quality=data["quality"],
            moderation=data["moderation"],
            style=data.get("style"),
            user=data.get("user"),
            response_format=data["response_format"],
            references=refs,
            mask=ReferenceSource(*mask) if mask else None,
            reference_images=tuple(
                StoredReference.from_json(r) for r in data.get("reference_images", [])
            ),
            mask_image=StoredReference.from_json(mask_image) if mask_image else None,
            stream=data.get("stream", False),
            partial_images=data.get("partial_images", 0),
            ignored_fields=tuple(data.get("ignored_fields", [])),
            extra=data.get("extra", {}),
            official_fallback=data.get("official_fallback", False),
            webhook_url=data.get("webhook_url"),
            webhook_events=None if data.get("webhook_events") is None
            else tuple(data["webhook_events"]),
            quality_auto=data.get("quality_auto", False),
            size_from_reference=data.get("size_from_reference", False),
            resolution=data.get("resolution"),
            revises_prompt=data.get("revises_prompt", False),
            deadline_seconds=data.get("deadline_seconds"),
        )


class MadeAsAsked(Protocol):
    """What `produced_fields` reads of a request: an `ImageRequest` or a `ResponseShape`."""

    @property
    def size_label(self) -> str: ...
    @property
    def quality(self) -> str: ...
    @property
    def output_format(self) -> str: ...
    @property
    def produced_background(self) -> str: ...


@dataclass(frozen=True, slots=True)
class ResponseShape:
    """The few fields of a stored request that rendering its response needs, read from the
    task row's JSON without building the whole `ImageRequest` (which was a tenth of a task
    poll)."""

    response_format: str
    size_label: str
    quality: str
    background: str
    output_format: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResponseShape:
        return cls(data["response_format"], data["size_label"], data["quality"],
                   data["background"], data["output_format"])

    @property
    def produced_background(self) -> str:
        return made_background(self.background)


def made_background(asked: str) -> str:
    """`auto` makes an opaque background; a transparent one is only made when asked for."""
    return "opaque" if asked == "auto" else asked


def produced_fields(request: MadeAsAsked, result: dict[str, Any] | None) -> dict[str, str]:
    """`size`, `quality`, `background` and `output_format` as a response reports them: what
    was made, never `auto`. An upstream's own report (kept in the task's `result` by the
    worker) wins over the request's resolved values."""
    made = result or {}
    quality = made.get("quality")
    background = made.get("background")
    size = made.get("size")
    return {
        # The worker records a size only where the images are not the size asked for.
        "size": size if isinstance(size, str) else request.size_label,
        "quality": quality if quality in PRODUCED_QUALITIES else request.quality,
        "background": (background if background in PRODUCED_BACKGROUNDS
                       else request.produced_background),
        "output_format": request.output_format,
    }
