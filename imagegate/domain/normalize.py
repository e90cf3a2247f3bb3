"""Every request check lives here: raw JSON body → `ImageRequest` or a 400 naming `param`.

`normalize` runs a fixed list of named steps (`_STEPS`), each reading a few fields of the body
and returning the `ImageRequest` fields it settles; the first failing check raises, so the
order of the list is the order clients see errors in.

A variation (`operation="variation"`) has its own short list (`_VARIATION_STEPS`): a model
whose catalog entry offers variations, exactly one image and no mask, no prompt, and the
model's own rules for `n`, `size` and `response_format`.

Reference images are only *collected* here (aliases, forms, count, `blob:`); turning them into
bytes is the ingest step's job (`imagegate.ingest`), which runs after this. So a size taken
from the reference image (the 002 seed's rule, `size_from_reference=True`) is settled after
ingest, by `settle_reference_size`, before anything is priced. A `webhook_url` is
only type-checked here: whether imagegate may call it is network policy, judged by the task
intake (`net/urls.py`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import replace
from itertools import islice
from typing import Any

from imagegate.domain import deadlines, webhook_events
from imagegate.domain.catalog import Catalog, ModelSpec
from imagegate.domain.limits import (
    FIELD_CHARS,
    IGNORED_FIELD_CHARS,
    IGNORED_FIELDS,
    REFERENCE_URL_CHARS,
)
from imagegate.domain.request import ImageRequest, Operation, ReferenceSource
from imagegate.domain.sizes import (
    RATIO_TABLE,
    TIER_PIXELS,
    TIERS,
    SizeError,
    check_flexible,
    is_valid_flexible,
    nearest_listed,
    parse_wxh,
    snap_flexible,
    table_ratio,
    table_sizes,
    tier_for_pixels,
)
from imagegate.errors import InvalidRequestError, ModelNotFoundError

# Fields this module understands; anything else is a vendor extra: ignored but recorded.
KNOWN_FIELDS = frozenset(
    {
        "model", "prompt", "n", "size", "resolution", "output_format", "output_compression",
        "background", "quality", "moderation", "style", "user", "response_format",
        "wait_for_result", "image_urls", "reference_images", "images", "image", "image_url",
        "input_image", "input_images", "mask_url", "mask", "stream", "partial_images",
        "official_fallback", "webhook_url", "webhook_events", "deadline_seconds",
    }
)
# A variation has no prompt: one sent is ignored (and recorded) like any vendor extra.
_VARIATION_KNOWN_FIELDS = KNOWN_FIELDS - {"prompt"}
# Reference-image aliases, in the order their items are taken when several are sent.
REFERENCE_FIELDS = (
    "image_urls", "reference_images", "images", "image", "image_url", "input_image",
    "input_images",
)
_FORMAT_ALIASES = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "webp": "webp"}
_BACKGROUNDS = ("auto", "transparent", "opaque")
_MODERATIONS = ("auto", "low")
_RESPONSE_FORMATS = ("url", "b64_json", "data_url")
_OPERATIONS: dict[str, Operation] = {
    "generate": "generate", "edit": "edit", "variation": "variation",
}


def bad(message: str, param: str, code: str = "invalid_value") -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code=code)


def too_long(where: str, length: int, cap: int) -> InvalidRequestError:
    # OpenAI's code for the same refusal, so clients written against it match on it.
    return bad(f"'{where}' is {length} characters long; at most {cap} are accepted", where,
               "string_above_max_length")


def _opt_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad(f"'{key}' must be a string, got {type(value).__name__}", key, "invalid_type")
    cap = FIELD_CHARS.get(key)
    if cap is not None and len(value) > cap:
        raise too_long(key, len(value), cap)
    return value


def record_ignored(names: Iterable[str]) -> tuple[str, ...]:
    """Unknown field names as the task records them: the first `IGNORED_FIELDS` sent, each cut
    to `IGNORED_FIELD_CHARS`, sorted. (A body of a million invented keys records 64.)"""
    return tuple(sorted({name[:IGNORED_FIELD_CHARS] for name in islice(names, IGNORED_FIELDS)}))


def _opt_int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    # bool is an int subclass in Python; `"n": true` is a client bug, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad(f"'{key}' must be an integer, got {type(value).__name__}", key, "invalid_type")
    return value


def opt_bool(body: dict[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise bad(f"'{key}' must be a boolean, got {type(value).__name__}", key, "invalid_type")


def _choice(value: str | None, key: str, allowed: tuple[str, ...], default: str) -> str:
    if value is None or value == "":
        return default
    v = value.strip().lower()
    if v not in allowed:
        raise bad(f"'{key}' must be one of {', '.join(allowed)}; got {value!r}", key)
    return v


def resolve_model(body: dict[str, Any], catalog: Catalog) -> ModelSpec:
    name = _opt_str(body, "model") or catalog.default_model
    spec = catalog.get(name.strip())
    if spec is None:
        raise ModelNotFoundError(
            f"The model '{name}' does not exist. Available models: {', '.join(catalog.names())}",
            param="model",
        )
    return spec


def resolve_variation_model(body: dict[str, Any], catalog: Catalog) -> ModelSpec:
    """The model of a variation: the one named (404 if unknown, 400 if it does not offer
    variations), else the catalog's first model that offers them (OpenAI's default, dall-e-2,
    in the default catalog), never `default_model`, which may not."""
    offering = [spec.name for spec in catalog.models.values() if spec.variations]
    name = (_opt_str(body, "model") or "").strip()
    if not name:
        if not offering:
            raise bad("No model of this service offers variations", "model", "unsupported_model")
        name = offering[0]
    spec = resolve_model({"model": name}, catalog)
    if not spec.variations:
        raise bad(
            f"{spec.name} does not offer variations; models that do: "
            f"{', '.join(offering) or 'none'}",
            "model", "unsupported_model",
        )
    return spec


def resolve_size(
    spec: ModelSpec, size: str | None, resolution: str | None
) -> tuple[int, int, str]:
    """(width, height, tier) for a model; SizeError says what is wrong and what is allowed."""
    res = resolution.strip().lower() if resolution else None
    if res is not None and res not in TIERS:
        raise SizeError(f"'resolution' must be one of {', '.join(TIERS)}; got {resolution!r}",
                        param="resolution")
    raw = (size or "").strip().lower() or spec.default_size
    if raw == "auto":
        raw = "1:1" if spec.size_rule == "flexible" else spec.default_size
    if raw in RATIO_TABLE:
        tier = res or "1k"
        width, height = RATIO_TABLE[raw][tier]
        if spec.size_rule == "enumerated" and f"{width}x{height}" not in spec.sizes:
            raise SizeError(
                f"size {raw!r} at {tier} is {width}x{height}, which {spec.name} does not offer; "
                f"{spec.name} accepts {', '.join(spec.sizes)}"
            )
        if spec.max_n(tier) < 1:
            raise SizeError(f"{spec.name} does not offer the {tier} tier", param="resolution")
        return width, height, tier
    wxh = parse_wxh(raw)
    if wxh is None:
        raise SizeError(
            f"size {size!r} is not 'auto', a ratio ({', '.join(RATIO_TABLE)}) or WxH"
        )
    width, height = wxh
    if spec.size_rule == "enumerated":
        if f"{width}x{height}" not in spec.sizes:
            raise SizeError(
                f"size {width}x{height} is not supported by {spec.name}; "
                f"it accepts {', '.join(spec.sizes)}"
            )
        return width, height, "1k"
    tier = table_sizes().get((width, height)) or ""
    if not tier:
        check_flexible(width, height, spec.flexible)
        tier = tier_for_pixels(width, height)
    if spec.max_n(tier) < 1:
        raise SizeError(f"size {width}x{height} is {tier}, a tier {spec.name} does not offer")
    return width, height, tier


def collect_references(body: dict[str, Any]) -> tuple[ReferenceSource, ...]:
    """Every reference image of every alias, each as a string with its field and index."""
    out: list[ReferenceSource] = []
    for field in REFERENCE_FIELDS:
        value = body.get(field)
        if value is None or value == "" or value == []:
            continue
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            out.append(ReferenceSource(_reference_value(item, f"{field}[{i}]"), field, i))
    return tuple(out)


def _reference_value(item: Any, where: str) -> str:
    if isinstance(item, dict):
        for key in ("url", "image_url", "b64_json", "data"):
            inner = item.get(key)
            if isinstance(inner, dict):  # {"image_url": {"url": ...}} (chat-style)
                inner = inner.get("url")
            if isinstance(inner, str):
                item = inner
                break
        else:
            raise bad(f"{where}: an object must carry 'url' or 'image_url'", where, "invalid_type")
    if not isinstance(item, str) or not item.strip():
        raise bad(f"{where}: expected a URL, data URL or base64 string", where, "invalid_type")
    value = item.strip()
    if value.lower().startswith("blob:"):
        raise bad(
            f"{where}: browser blob: URLs exist only inside the browser that made them; "
            "upload the file somewhere the server can fetch it, or send it as a data: URL",
            where,
        )
    return value


Fields = dict[str, Any]
"""Some of the `ImageRequest` fields, as a step settles them."""
Step = Callable[[dict[str, Any], ModelSpec, Fields], Fields]
"""(body, model, fields settled so far) -> the fields this step settles."""


def _prompt(body: dict[str, Any], spec: ModelSpec, _done: Fields) -> Fields:
    prompt = _opt_str(body, "prompt")
    if prompt is None or not prompt.strip():
        raise bad("'prompt' is required", "prompt", "missing_required_parameter")
    if len(prompt) > spec.max_prompt_chars:
        raise bad(
            f"'prompt' is {len(prompt)} characters; {spec.name} accepts at most "
            f"{spec.max_prompt_chars}",
            "prompt",
        )
    return {"prompt": prompt}


def _size(body: dict[str, Any], spec: ModelSpec, _done: Fields) -> Fields:
    try:
        width, height, tier = resolve_size(
            spec, _opt_str(body, "size"), _opt_str(body, "resolution")
        )
    except SizeError as exc:
        raise bad(str(exc), exc.param) from None
    return {"width": width, "height": height, "tier": tier, "size_label": f"{width}x{height}"}


def _count(body: dict[str, Any], spec: ModelSpec, done: Fields) -> Fields:
    n = _opt_int(body, "n")
    n = 1 if n is None else n
    tier = done["tier"]
    limit = spec.max_n(tier)
    if not 1 <= n <= limit:
        raise bad(f"'n' must be between 1 and {limit} for {spec.name} at {tier}; got {n}", "n")
    return {"n": n}


def _output(body: dict[str, Any], spec: ModelSpec, _done: Fields) -> Fields:
    """Format, compression and background: each depends on the one before."""
    fmt_raw = _opt_str(body, "output_format")
    fmt = _FORMAT_ALIASES.get(fmt_raw.strip().lower(), "") if fmt_raw else "png"
    if fmt_raw and (not fmt or fmt not in spec.output_formats):
        raise bad(
            f"'output_format' must be one of {', '.join(spec.output_formats)} for {spec.name}; "
            f"got {fmt_raw!r}",
            "output_format",
        )
    compression = _opt_int(body, "output_compression")
    if compression is not None:
        if not 0 <= compression <= 100:
            raise bad(f"'output_compression' must be 0-100; got {compression}",
                      "output_compression")
        # 100 is the documented default, so clients send it with png too; anything else with
        # png would be silently meaningless, which is worse than an error.
        if fmt == "png" and compression != 100:
            raise bad("'output_compression' applies to jpeg and webp only", "output_compression")
        if fmt == "png":
            compression = None
    background = _choice(_opt_str(body, "background"), "background", _BACKGROUNDS, "auto")
    if background == "transparent":
        if not spec.transparent_background:
            raise bad(f"{spec.name} does not support transparent backgrounds", "background")
        if fmt not in ("png", "webp"):
            raise bad("a transparent background needs output_format png or webp", "background")
    return {"output_format": fmt, "output_compression": compression, "background": background}


def _rendering(body: dict[str, Any], spec: ModelSpec, _done: Fields) -> Fields:
    """Quality, moderation, style, user and how the result is handed back."""
    # `auto` is accepted for every model (003), DALL·E included, and stands for the
    # catalog's `auto_quality`: the request records what will be made and billed.
    accepted = spec.qualities if "auto" in spec.qualities else ("auto", *spec.qualities)
    quality = _choice(_opt_str(body, "quality"), "quality", accepted, spec.default_quality)
    quality_auto = quality == "auto"
    if quality_auto:
        quality = spec.auto_quality
    moderation = _choice(_opt_str(body, "moderation"), "moderation", _MODERATIONS, "auto")
    style_raw = _opt_str(body, "style")
    style = None
    if style_raw:
        style = _choice(style_raw, "style", spec.styles or ("vivid", "natural"), "vivid")
    user = _opt_str(body, "user")
    response_format = _choice(
        _opt_str(body, "response_format"), "response_format", _RESPONSE_FORMATS, "url"
    )
    if response_format not in spec.response_formats:
        raise bad(f"{spec.name} does not offer response_format {response_format!r}",
                  "response_format")
    return {"quality": quality, "quality_auto": quality_auto, "moderation": moderation,
            "style": style, "user": user, "response_format": response_format}


def _delivery(body: dict[str, Any], spec: ModelSpec, _done: Fields) -> Fields:
    """How the client follows the task: waiting, streaming, routing, a webhook."""
    opt_bool(body, "wait_for_result")  # type-checked here; the API layer reads it
    stream = bool(opt_bool(body, "stream"))
    if stream:
        _check_streams(spec)
    partial_images = _opt_int(body, "partial_images") or 0
    if not 0 <= partial_images <= 3:
        raise bad(f"'partial_images' must be between 0 and 3; got {partial_images}",
                  "partial_images")
    if stream and partial_images == 0:
        # The 004 seed's (and OpenAI's) exact message, so clients can match on it.
        raise InvalidRequestError("Streaming must have non-zero partial images",
                                  param="partial_images", code=None)
    deadline = body.get(deadlines.FIELD)
    return {"stream": stream, "partial_images": partial_images,
            "official_fallback": bool(opt_bool(body, "official_fallback")),
            "webhook_url": _opt_str(body, "webhook_url"),
            "webhook_events": webhook_events.parse(body.get("webhook_events")),
            # Type and sign here; the server's cap is the API layer's (`api/creation.py`).
            "deadline_seconds": None if deadline is None
            else deadlines.check_deadline(deadline, deadlines.FIELD, math.inf)}


def _check_streams(spec: ModelSpec) -> None:
    if not spec.streaming:
        # 003: streaming (with partial images) is for GPT image models only (the catalog's
        # `streaming`); OpenAI's words and code, on every profile.
        raise bad(f"Streaming is not supported for the model {spec.name}.", "stream",
                  "unsupported_value")


def _no_stream(body: dict[str, Any], spec: ModelSpec, _done: Fields) -> Fields:
    """Variations answer whole images only (OpenAI streams GPT image models' generations and
    edits); a stream asked for gets a 400 rather than a differently shaped answer: the
    model's own refusal when it does not stream at all (dall-e-2)."""
    if opt_bool(body, "stream"):
        _check_streams(spec)
        raise bad("variations are not streamed; leave out 'stream'", "stream")
    return {}


_STEPS: tuple[Step, ...] = (_prompt, _size, _count, _output, _rendering, _delivery)
_VARIATION_STEPS: tuple[Step, ...] = (_size, _count, _output, _rendering, _no_stream, _delivery)


def _body_mask(body: dict[str, Any]) -> ReferenceSource | None:
    mask_field = "mask_url" if body.get("mask_url") else "mask"
    mask_value = body.get(mask_field)
    if mask_value is None:
        return None
    return ReferenceSource(_reference_value(mask_value, mask_field), mask_field, 0)


def _variation_input(body: dict[str, Any], references: tuple[ReferenceSource, ...] | None,
                     mask: ReferenceSource | None) -> Fields:
    """The one image a variation is made from: required, alone, without a mask."""
    refs = references if references is not None else collect_references(body)
    mask = mask if mask is not None else _body_mask(body)
    if not refs:
        raise bad("a variation needs an image", "image", "missing_required_parameter")
    if mask is not None:
        raise bad("a variation takes no mask; send only the image", mask.field)
    if len(refs) > 1:
        raise bad(f"a variation is made from exactly one image; got {len(refs)}",
                  refs[0].field)
    return {"references": refs, "mask": None}


def _inputs(body: dict[str, Any], spec: ModelSpec, operation: str,
            references: tuple[ReferenceSource, ...] | None,
            mask: ReferenceSource | None) -> Fields:
    """Reference images and the mask: collected (not loaded) and counted."""
    refs = references if references is not None else collect_references(body)
    if mask is None:
        mask = _body_mask(body)
    if operation == "edit" and not spec.edits:
        raise bad(f"{spec.name} does not support image edits", "model", "unsupported_model")
    if operation == "edit" and not refs:
        raise bad("an edit needs at least one image", "image", "missing_required_parameter")
    if refs and len(refs) > spec.max_references:
        raise bad(
            f"{len(refs)} reference images; {spec.name} accepts at most {spec.max_references}",
            refs[0].field,
        )
    if mask is not None and not refs:
        raise bad("a mask needs at least one reference image", mask.field)
    for source in (*refs, *((mask,) if mask is not None else ())):
        # Uploaded files carry their file name here (capped by the multipart parser).
        if (source.data is None and len(source.value) > REFERENCE_URL_CHARS
                and source.value[:8].lower().startswith(("http://", "https://"))):
            raise too_long(source.param, len(source.value), REFERENCE_URL_CHARS)
    return {"references": refs, "mask": mask}


def normalize(
    body: dict[str, Any],
    catalog: Catalog,
    *,
    operation: str = "generate",
    references: tuple[ReferenceSource, ...] | None = None,
    mask: ReferenceSource | None = None,
    size_from_reference: bool = False,
) -> ImageRequest:
    """The single entry point: a parsed JSON (or multipart) body → a valid ImageRequest.

    `references`/`mask` let a multipart surface pass uploaded files; JSON bodies leave them None
    and the aliases are read from the body. `size_from_reference` is the 002 seed's rule
    (the apimart profile): with reference images and no `size`, the output has the first
    reference's size, settled after ingest by `settle_reference_size`.
    """
    if not isinstance(body, dict):
        raise bad("The request body must be a JSON object", "body", "invalid_type")
    op = _OPERATIONS.get(operation, "generate")
    fields: Fields = {}
    if op == "variation":
        spec = resolve_variation_model(body, catalog)
        fields.update(_variation_input(body, references, mask), prompt="")
        steps, known = _VARIATION_STEPS, _VARIATION_KNOWN_FIELDS
    else:
        spec = resolve_model(body, catalog)
        steps, known = _STEPS, KNOWN_FIELDS
    for step in steps:
        fields.update(step(body, spec, fields))
    if op != "variation":
        fields.update(_inputs(body, spec, op, references, mask))
        if size_from_reference and fields["references"] and not (
                _opt_str(body, "size") or "").strip():
            resolution = (_opt_str(body, "resolution") or "").strip().lower()
            fields.update(size_from_reference=True, resolution=resolution or None)
    return ImageRequest(
        operation=op,
        model=spec.name,
        revises_prompt=spec.revised_prompt,
        ignored_fields=record_ignored(k for k in body if k not in known),
        **fields,
    )


def size_for_reference(spec: ModelSpec, width: int, height: int,
                       resolution: str | None = None) -> tuple[int, int, str]:
    """(width, height, tier) of an output that keeps a `width`x`height` input's size (002:
    "不传 size 时输出分辨率 = 输入图分辨率"), within the model's rules:

    - enumerated models: the listed size nearest in aspect, then in pixels;
    - flexible models, no `resolution`: the input's own size when the model accepts it as
      `size` (it keeps the `WxH` rules, or it is a size of the table), else the nearest
      valid size keeping its aspect (`snap_flexible`); the tier follows from the pixels, as
      for an explicit `WxH`;
    - flexible models with a `resolution` of another tier than that: the input's shape at
      that tier: the table's size when its aspect is one of the table's ratios, else its
      aspect scaled to the tier's 1:1 pixel count and snapped.
    """
    if spec.size_rule == "enumerated":
        w, h = nearest_listed(width, height, spec.sizes)
        return w, h, "1k"
    tier = table_sizes().get((width, height)) or ""
    if tier:
        w, h = width, height
    else:
        w, h = ((width, height) if is_valid_flexible(width, height, spec.flexible)
                else snap_flexible(width, height, spec.flexible))
        tier = table_sizes().get((w, h)) or tier_for_pixels(w, h)
    if resolution and resolution != tier:
        ratio = table_ratio(width, height)
        if ratio is not None:
            w, h = RATIO_TABLE[ratio][resolution]
        else:
            w, h = snap_flexible(width, height, spec.flexible, TIER_PIXELS[resolution])
        tier = resolution
    if spec.max_n(tier) < 1:
        raise SizeError(
            f"the reference image is {width}x{height}, which makes a {tier} image "
            f"({w}x{h}), a tier {spec.name} does not offer; send 'size'"
        )
    return w, h, tier


def settle_reference_size(request: ImageRequest, catalog: Catalog) -> ImageRequest:
    """The request with its size taken from its first stored reference image, when it asked
    for that (`size_from_reference`); run after ingest (which knows the image's dimensions
    from its header) and before pricing, so the hold is for the tier actually made. A size
    whose tier the model does not offer, or whose `n` limit is below `n`, is a 400."""
    if not request.size_from_reference or not request.reference_images:
        return request
    spec = catalog.models[request.model]
    ref = request.reference_images[0]
    try:
        width, height, tier = size_for_reference(spec, ref.width, ref.height,
                                                 request.resolution)
    except SizeError as exc:
        raise bad(str(exc), exc.param) from None
    limit = spec.max_n(tier)
    if request.n > limit:
        raise bad(
            f"'n' must be between 1 and {limit} for {spec.name} at {tier}; got {request.n} "
            f"(the reference image makes a {width}x{height} image, which is {tier})",
            "n",
        )
    return replace(request, width=width, height=height, tier=tier,
                   size_label=f"{width}x{height}")
