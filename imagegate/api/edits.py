"""`POST /v1/images/edits`: multipart uploads (the 001 seed's and OpenAI's field names) or
OpenAI's JSON form (`images: [{image_url}]`, `mask: {image_url}`). After parsing, an edit is
the same task as a generation with references: same sync/async switch, same task object."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from imagegate.api import openapi
from imagegate.api.creation import CreationDep
from imagegate.api.deps import api_key, json_body
from imagegate.api.images import run_request
from imagegate.api.multipart import (
    MultipartError,
    MultipartForm,
    MultipartLimits,
    parse_multipart,
)
from imagegate.config import Settings
from imagegate.domain.normalize import REFERENCE_FIELDS, normalize
from imagegate.domain.numbers import parse_decimal, parse_int
from imagegate.domain.request import ReferenceSource
from imagegate.errors import (
    ImagegateError,
    InvalidRequestError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)

router = APIRouter(tags=["images"])

# Multipart sends every value as text; these fields are converted to the JSON types that
# normalization expects (a value that does not convert stays text and gets the usual 400).
# Integers must be canonical ASCII (`domain/numbers.py`): `+2`, `02`, `1_0` and `２` stay text.
_INT_FIELDS = ("n", "output_compression", "partial_images")
_BOOL_FIELDS = ("wait_for_result", "stream")
_NUMBER_FIELDS = ("deadline_seconds",)  # a decimal: `90`, `2.5`
_MASK_FIELDS = ("mask", "mask_url")


def image_field(name: str) -> str | None:
    """The reference field a part name stands for: image, image[], images, images[],
    image_1 … image_N (all one list), the JSON aliases (image_urls, …), or None."""
    base = name[:-2] if name.endswith("[]") else name
    if base in REFERENCE_FIELDS:
        return base
    if base.startswith("image_") and parse_int(base[6:]) is not None:
        return "image"
    return None


def form_to_request(form: MultipartForm) -> tuple[dict[str, Any], tuple[ReferenceSource, ...],
                                                  ReferenceSource | None]:
    """The JSON-shaped body, the uploaded (or linked) references and the mask of a form."""
    body: dict[str, Any] = {}
    refs: list[ReferenceSource] = []
    mask: ReferenceSource | None = None
    counts: dict[str, int] = {}

    def add(field: str, value: str, data: bytes | None) -> None:
        # Indexed per part name (without `[]`), as the multipart parser names its errors.
        nonlocal mask
        if field in _MASK_FIELDS:
            if mask is not None:
                raise InvalidRequestError("only one mask may be sent", param="mask")
            mask = ReferenceSource(value, "mask", 0, data)
            return
        index = counts.get(field, 0)
        counts[field] = index + 1
        refs.append(ReferenceSource(value, field, index, data))

    for upload in form.files:
        base = upload.field.removesuffix("[]")
        field = base if image_field(upload.field) or base in _MASK_FIELDS else None
        if field is None:
            raise InvalidRequestError(
                f"unexpected file field '{upload.field}'; send images as image, image[], "
                "images[] or image_1…image_N, and the mask as mask",
                param=upload.field, code="unknown_file_field",
            )
        add(field, upload.filename or upload.field, upload.data)
    for name, values in form.fields.items():
        base = name.removesuffix("[]")
        field = base if image_field(name) or base in _MASK_FIELDS else None
        if field is not None:  # a URL, data URL or base64 sent as a text field
            for value in values:
                add(field, value.strip(), None)
            continue
        text = values[-1].strip()
        number = parse_int(values[-1], signed=True) if name in _INT_FIELDS else None
        if number is not None:
            body[name] = number
        elif name in _NUMBER_FIELDS and (seconds := parse_decimal(text)) is not None:
            body[name] = seconds
        elif name in _BOOL_FIELDS and text.lower() in ("true", "false"):
            body[name] = text.lower() == "true"
        else:
            body[name] = values[-1]
    return body, tuple(refs), mask


def _multipart_error(exc: MultipartError) -> ImagegateError:
    cls = PayloadTooLargeError if exc.status == 413 else InvalidRequestError
    # One code for "this image is over the per-image cap", however it came.
    code = "image_too_large" if exc.code == "file_too_large" else exc.code
    return cls(exc.message, param=exc.param, code=code)


EditInput = tuple[dict[str, Any], tuple[ReferenceSource, ...] | None, ReferenceSource | None]


async def read_edit_input(request: Request, settings: Settings) -> EditInput:
    """An edit request as every profile reads it: the JSON-shaped body, and for multipart the
    uploaded references and mask (None for JSON: normalize reads them from the body)."""
    content_type = request.headers.get("content-type", "")
    if content_type.lower().startswith("multipart/form-data"):
        limits = MultipartLimits(
            max_file_bytes=settings.max_reference_bytes,
            max_total_bytes=settings.max_reference_total_bytes,
        )
        try:
            form = await parse_multipart(request.stream(), content_type, limits)
        except MultipartError as exc:
            raise _multipart_error(exc) from None
        return form_to_request(form)
    if content_type.lower().startswith("application/json") or not content_type:
        return await json_body(request), None, None
    raise UnsupportedMediaTypeError(
        f"Content-Type '{content_type}' is not accepted; send multipart/form-data with "
        "image files, or a JSON body",
        param="content-type",
    )


@router.post("/v1/images/edits",
             openapi_extra=openapi.json_body(openapi.EDIT_REQUEST, multipart=True,
                                             examples=openapi.EDIT_EXAMPLES, prefer=True),
             responses=openapi.responses(
                 {200: openapi.preferred(openapi.images_ok(
                     "ImageResponse", "The images (or, with `stream: true`, Server-Sent "
                     "Events)")),
                  202: openapi.ACCEPTED},
                 openapi.EDIT))
async def create_edit(request: Request, run: CreationDep) -> Response:
    key = await api_key(request)
    body, refs, mask = await read_edit_input(request, run.settings)
    image_request = normalize(body, run.catalog, operation="edit", references=refs, mask=mask)
    return await run_request(request, run, key, body, image_request)
