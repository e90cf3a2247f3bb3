"""A fake of the OpenAI Images API, and of resellers that speak it (the 003 and 004 seeds).

Official behaviour (the default): per-model parameter and size validation by the seeds' own
rules, written out in `openai_rules` (gpt-image-1 class: three sizes; gpt-image-2 class: free
`WxH` under 004's custom-size rules; DALL·E 3/2: their sizes and qualities), `response_format`
refused by gpt-image models, which always answer base64 with `usage`; DALL·E answers a URL
unless asked for `b64_json`; GPT image answers report the `quality` and `background` made
(`auto` made `high` and `opaque`); a prompt containing "forbidden" is blocked by "the safety
system" (400 `moderation_blocked`, or `content_policy_violation` for DALL·E). Error bodies
are OpenAI's `{"error": {message, type, param, code}}`. POST /v1/images/variations (dall-e-2,
one square PNG under 4 MB) answers `n` images whose colours are seeded by the input's bytes
(`variation_seed`).

Reseller behaviour: `accepted_fields` replaces the per-model allowlist (anything else is
`unknown_parameter`), `reseller=True` accepts the 004 seed's `image` array on generations,
and `result_mode` picks how results come back, quirks included (relative URLs, data URLs,
`url` as a list, `b64_json: ""` beside a URL). Result files are served at GET /files/{id}.

POST /v1/moderations (OpenAI's moderation endpoint, `moderation_rules`): text and `data:`
image inputs classified by the fake's own terms and colours, so tests can have a prompt or
an image flagged in a chosen category; `moderations` counts its calls, and `latency` and
planned faults apply to it as to the image endpoints.

`fixed_image` (bench/bench_relay.py) answers every request with those exact bytes, whatever
the size or format asked, its base64 encoded once: a payload of a chosen size (a ~2 MiB
noise PNG) at almost no cost to the fake, so a benchmark measures the relay, not the fake.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterable
from typing import Any, Literal

import orjson
import pyvips
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import Payload

from imagegate.testing.upstreams import delivery_rules, moderation_rules
from imagegate.testing.upstreams.common import FakeUpstream, RecordedRequest
from imagegate.testing.upstreams.openai_rules import (
    Rejection,
    family,
    parse_wxh,
    validate,
    validate_variation,
)


def variation_seed(image: bytes, index: int) -> str:
    """The seed of the fake's variation `index` of `image` (tests rebuild the bytes with
    `fake.png(w, h, variation_seed(image, i))`)."""
    return f"variation:{hashlib.sha256(image).hexdigest()[:16]}:{index}"


def _mean_colour(data: bytes) -> tuple[float, ...]:
    """The mean of each colour band of an image (a Rejection when it is no image)."""
    try:
        img = pyvips.Image.new_from_buffer(data, "")
        bands = min(3, int(img.bands))
        return tuple(float(img.extract_band(i).avg()) for i in range(bands))
    except pyvips.Error:
        raise Rejection(400, "image_url.url holds no image this service can read",
                        param="input", code="invalid_image") from None


ResultMode = Literal["b64", "url", "relative_url", "data_url", "url_list", "empty_b64_with_url"]


def made_quality(params: dict[str, Any]) -> str:
    """The quality a GPT image answer reports: what was asked, and for `auto` (the default)
    `high`, as in the 003 seed's response example; never `auto` (its `ImagesResponse.quality`
    is low, medium or high)."""
    quality = str(params.get("quality") or "auto")
    return "high" if quality == "auto" else quality


def made_background(params: dict[str, Any]) -> str:
    """The background a GPT image answer reports: `transparent` or `opaque` (003's enum);
    `auto` makes an opaque one."""
    return "transparent" if params.get("background") == "transparent" else "opaque"


class FakeOpenAI(FakeUpstream):
    def __init__(self, *, api_key: str = "sk-fake", latency: float = 0.0,
                 result_mode: ResultMode | None = None,
                 accepted_fields: Iterable[str] | None = None,
                 reseller: bool = False, fixed_image: bytes | None = None,
                 refuse_streaming: bool = False) -> None:
        """`refuse_streaming`: answer `stream: true` with a 400 naming `stream`, as an
        upstream (or reseller) without streaming does."""
        super().__init__(api_key=api_key, latency=latency)
        self.refuse_streaming = refuse_streaming
        self.result_mode = result_mode
        self.accepted_fields = frozenset(accepted_fields) if accepted_fields is not None else None
        self.reseller = reseller
        self.fixed_image = fixed_image
        self._fixed_b64 = base64.b64encode(fixed_image).decode() if fixed_image else None
        self._fixed_b64_bytes = self._fixed_b64.encode() if self._fixed_b64 else b""
        # The moderation classifier's terms and colours (moderation_rules), replaceable.
        self.moderation_terms = dict(moderation_rules.DEFAULT_TERMS)
        self.moderation_colours = dict(moderation_rules.DEFAULT_COLOURS)
        self.moderations = 0

    def routes(self) -> list[web.RouteDef]:
        return [*super().routes(),
                web.post("/v1/images/generations", self._generations),
                web.post("/v1/images/edits", self._edits),
                web.post("/v1/images/variations", self._variations),
                web.post("/v1/moderations", self._moderation)]

    def error_body(self, status: int, message: str | None = None,
                   code: str | None = None) -> Any:
        defaults: dict[int, tuple[str, str, str | None]] = {
            400: ("Invalid request.", "invalid_request_error", "invalid_value"),
            401: ("Incorrect API key provided. You can find your API key at "
                  "https://platform.openai.com/account/api-keys.",
                  "invalid_request_error", "invalid_api_key"),
            402: ("Insufficient balance.", "insufficient_quota", "insufficient_quota"),
            404: ("The model does not exist or you do not have access to it.",
                  "invalid_request_error", "model_not_found"),
            429: ("Rate limit reached for requests. Please try again in 1s.", "requests",
                  "rate_limit_exceeded"),
            500: ("The server had an error while processing your request. Sorry about that!",
                  "server_error", None),
            503: ("The engine is currently overloaded, please try again later.",
                  "server_error", None),
        }
        text, kind, default_code = defaults.get(status, (f"HTTP {status}", "server_error", None))
        if code == "insufficient_quota":
            text, kind = ("You exceeded your current quota, please check your plan and "
                          "billing details.", "insufficient_quota")
        return {"error": {"message": message or text, "type": kind, "param": None,
                          "code": code or default_code}}

    def rejection_response(self, exc: Rejection) -> web.Response:
        return self.json_response(exc.body(), status=exc.status)

    # ------------------------------------------------------------------ endpoints

    async def _generations(self, request: web.Request) -> web.StreamResponse:
        record, early = await self.begin(request)
        if early is not None:
            return early
        params = record.json if isinstance(record.json, dict) else {}
        return await self._handle(params, record, edit=False)

    async def _edits(self, request: web.Request) -> web.StreamResponse:
        record, early = await self.begin(request)
        if early is not None:
            return early
        if isinstance(record.json, dict):  # OpenAI's JSON edit form: images: [{image_url}]
            params = dict(record.json)
            images = params.pop("images", None)
            if isinstance(images, list) and images:
                params["image[]"] = images
        else:
            params = record.fields()
            for part in record.form:
                if part.filename is not None:
                    params[part.name] = part.filename
        return await self._handle(params, record, edit=True)

    async def _variations(self, request: web.Request) -> web.StreamResponse:
        record, early = await self.begin(request)
        if early is not None:
            return early
        params = record.fields()
        files = record.files("image")
        image = files[0].data if files else None
        if image is not None:
            params["image"] = files[0].filename
        try:
            _model, size, n = validate_variation(params, image,
                                                 accepted_fields=self.accepted_fields)
        except Rejection as exc:
            return self.rejection_response(exc)
        assert image is not None  # validate_variation refuses a request without one
        self.submissions += 1
        await self.delay()
        w, h = parse_wxh(size) or (1024, 1024)
        mode = self.result_mode or (
            "b64" if params.get("response_format") == "b64_json" else "url")
        data = [self._item(self.image(w, h, variation_seed(image, i)), "png", mode)
                for i in range(n)]
        return self.json_response({"created": int(time.time()), "data": data})

    async def _moderation(self, request: web.Request) -> web.StreamResponse:
        record, early = await self.begin(request)
        if early is not None:
            return early
        try:
            model, inputs = moderation_rules.parse_request(record.json)
            means = [_mean_colour(data) for data in inputs.images]
        except Rejection as exc:
            return self.rejection_response(exc)
        self.moderations += 1
        await self.delay()
        terms, colours = self.moderation_terms, self.moderation_colours
        if inputs.one_result_each:
            results = [moderation_rules.result(moderation_rules.text_scores(t, terms), {},
                                               has_text=True, has_image=False)
                       for t in inputs.texts]
        else:
            text: dict[str, float] = {}
            for t in inputs.texts:
                for c, v in moderation_rules.text_scores(t, terms).items():
                    text[c] = max(text.get(c, 0.0), v)
            image: dict[str, float] = {}
            for mean in means:
                for c, v in moderation_rules.image_scores(mean, colours).items():
                    image[c] = max(image.get(c, 0.0), v)
            results = [moderation_rules.result(text, image, has_text=bool(inputs.texts),
                                               has_image=bool(inputs.images))]
        return self.json_response({"id": self.new_id("modr-"), "model": model,
                                   "results": results})

    async def _handle(self, params: dict[str, Any], record: RecordedRequest, *,
                      edit: bool) -> web.StreamResponse:
        try:
            model, size, n = self._validate(params, record, edit=edit)
        except Rejection as exc:
            return self.rejection_response(exc)
        if str(params.get("stream")).lower() == "true":
            if self.refuse_streaming:
                return self.json_response({"error": {
                    "message": "Unsupported parameter: 'stream' is not supported with this "
                               "model.", "type": "invalid_request_error", "param": "stream",
                    "code": "unsupported_parameter"}}, status=400)
            self.submissions += 1
            await self.delay()
            return self._streamed(model, params, size, n, edit=edit)
        self.submissions += 1
        await self.delay()
        return self._answer(model, params, size, n)

    # ------------------------------------------------------------------ validation

    def _validate(self, params: dict[str, Any], record: RecordedRequest, *,
                  edit: bool) -> tuple[str, str, int]:
        has_image = bool(record.files("image[]") or record.files("image")
                         or params.get("image[]"))
        model, fam, size, n = validate(params, edit=edit, has_image=has_image,
                                       accepted_fields=self.accepted_fields,
                                       reseller=self.reseller)
        if "forbidden" in str(params["prompt"]).lower():
            code = "content_policy_violation" if fam.startswith("dall-e") else "moderation_blocked"
            raise Rejection(400, "Your request was rejected as a result of our safety system. "
                            "Your request may contain content that is not allowed by our "
                            "safety system.", code=code, error_type="image_generation_user_error")
        return model, size, n

    # ------------------------------------------------------------------ answers

    def _answer(self, model: str, params: dict[str, Any], size: str, n: int) -> web.Response:
        fam = family(model) or "gpt"
        prompt = str(params["prompt"])
        n, (w, h) = delivery_rules.delivered(prompt, n, parse_wxh(size) or (1024, 1024))
        fmt = str(params.get("output_format") or "png") if "gpt" in fam else "png"
        mode = self.result_mode
        if mode is None:  # OpenAI: gpt-image always base64, DALL·E a URL unless asked
            b64 = "gpt" in fam or params.get("response_format") == "b64_json"
            mode = "b64" if b64 else "url"
        data = [self._item(self.image(w, h, f"{prompt}:{i}", fmt), fmt, mode)
                for i in range(n)]
        body: dict[str, Any] = {"created": int(time.time()), "data": data}
        if "gpt" in fam:
            text_tokens = max(1, len(prompt) // 4)
            output_tokens = w * h * n // 4096
            body.update(background=made_background(params), output_format=fmt,
                        quality=made_quality(params), size=f"{w}x{h}",
                        usage={"input_tokens": text_tokens,
                               "input_tokens_details": {"text_tokens": text_tokens,
                                                        "image_tokens": 0},
                               "output_tokens": output_tokens,
                               "total_tokens": text_tokens + output_tokens})
        elif fam == "dall-e-3":
            for item in data:
                item["revised_prompt"] = f"revised: {prompt}"
        return self._fixed_answer(body) or self.json_response(body)

    def _fixed_answer(self, body: dict[str, Any]) -> web.Response | None:
        """The answer with `fixed_image`'s base64 written from the one shared copy, or None
        when it holds none. A bench's burst has thousands of 2.9 MB answers waiting for a
        relay that reads a few at a time; serialized per request they were a copy each (and
        the transport's), and the fake was once killed for memory at 21 GB."""
        token = "imagegate-fake-fixed-image-b64"
        swapped = [item for item in body["data"] if item.get("b64_json") is self._fixed_b64]
        if not swapped:
            return None
        for item in swapped:
            item["b64_json"] = token
        parts = orjson.dumps(body).split(token.encode())
        pieces = [parts[0]]
        for tail in parts[1:]:
            pieces += [self._fixed_b64_bytes, tail]
        return web.Response(body=_Pieces(pieces), content_type="application/json")

    def _streamed(self, model: str, params: dict[str, Any], size: str, n: int, *,
                  edit: bool) -> web.Response:
        """OpenAI's Images API with `stream: true`: per image, `partial_images` events
        `image_generation.partial_image` (`image_edit.*` for edits), then one
        `image_generation.completed` with the image and `usage`, as Server-Sent Events."""
        response = self._answer(model, params, size, n)
        plain = response.body
        if isinstance(plain, _Pieces):
            plain = b"".join(plain.pieces)
        answer = orjson.loads(plain if isinstance(plain, bytes) else b"{}")
        prefix = "image_edit" if edit else "image_generation"
        common = {"created_at": answer["created"], "size": answer.get("size", size),
                  "quality": answer.get("quality", "high"),
                  "background": answer.get("background", "opaque"),
                  "output_format": answer.get("output_format", "png")}
        w, h = parse_wxh(size) or (1024, 1024)
        count = int(params.get("partial_images") or 0)
        chunks: list[bytes] = []
        for i, item in enumerate(answer["data"]):
            for k in range(count):
                preview = self.image(w, h, f"{params['prompt']}:{i}:partial{k}",
                                     common["output_format"])
                chunks.append(_sse(f"{prefix}.partial_image", {
                    "type": f"{prefix}.partial_image", "b64_json": self._b64(preview),
                    "partial_image_index": k, **common}))
            chunks.append(_sse(f"{prefix}.completed", {
                "type": f"{prefix}.completed", "b64_json": item.get("b64_json"), **common,
                "usage": answer.get("usage")}))
        return web.Response(body=b"".join(chunks), content_type="text/event-stream")

    def _b64(self, data: bytes) -> str:
        if data is self.fixed_image and self._fixed_b64 is not None:
            return self._fixed_b64
        return base64.b64encode(data).decode()

    def _item(self, data: bytes, fmt: str, mode: ResultMode) -> dict[str, Any]:
        content_type = f"image/{fmt}"
        if mode == "b64":
            return {"b64_json": self._b64(data)}
        if mode == "data_url":
            return {"url": f"data:{content_type};base64,{self._b64(data)}"}
        path = self.store_file(data, content_type)
        if mode == "relative_url":
            return {"url": path}
        if mode == "url_list":
            return {"url": [self.url + path]}
        if mode == "empty_b64_with_url":
            return {"url": self.url + path, "b64_json": "", "revised_prompt": ""}
        return {"url": self.url + path}

    def image(self, width: int, height: int, seed: str, fmt: str = "png") -> bytes:
        if self.fixed_image is not None:
            return self.fixed_image
        if fmt == "png":
            return self.png(width, height, seed)
        rgb = pyvips.Image.new_from_buffer(self.png(width, height, seed), "")
        saved = rgb.jpegsave_buffer(Q=80) if fmt == "jpeg" else rgb.webpsave_buffer(Q=80)
        return bytes(saved)


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class _Pieces(Payload):
    """A JSON body sent as pieces (some shared by every answer), each in slices of 64 KiB:
    aiohttp's writer waits for the connection to drain after each, so an answer waiting
    for a slow reader holds a slice, not a copy of the body."""

    _SLICE = 64 * 1024

    def __init__(self, pieces: list[bytes]) -> None:
        super().__init__(pieces, content_type="application/json")
        self.pieces = pieces
        self._size = sum(map(len, pieces))

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return b"".join(self.pieces).decode(encoding, errors)

    async def write(self, writer: AbstractStreamWriter) -> None:
        for piece in self.pieces:
            view = memoryview(piece)
            for start in range(0, len(view), self._SLICE):
                await writer.write(view[start:start + self._SLICE])
