"""The JSON response class of every route: orjson-encoded (several times faster than the
stdlib encoder for task objects, which matters on the polling path); and `json_response`,
which writes the base64 of stored images into a JSON body in pieces.

A 2 MiB result answered as `b64_json` is a 2.9 MB body. Built whole (base64 of the blob,
then the JSON of that str) it cost three 2.9 MB buffers per response, the last sitting in
memory until the client read it. `json_response` serializes the body with an `InlineImage`
in place of each image's base64, then streams it: the JSON around the images as it is, each
image read from the blob store in pieces whose size is a multiple of 3 (48 KiB) and
base64-encoded piece by piece (the encodings of 3-byte-aligned pieces, joined, are the
encoding of the whole), each piece sent only when the connection has drained the last.
The bytes are exactly `orjson.dumps` of the body with the base64 strings in place (base64
needs no JSON escaping), and the length is known up front (4 characters per 3 bytes), so
the response has a Content-Length.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
import pybase64
from starlette.responses import JSONResponse as StarletteJSONResponse
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from imagegate.domain.task import StoredImage
from imagegate.storage.links import ResultLinks

# Raw bytes per piece sent (a multiple of 3; 64 KiB of base64): little held per waiting
# client, and every buffer under glibc's initial mmap threshold (128 KiB) even in a process
# (tests, embedding) that never freed a big block: a larger piece was then a fresh mmap, page
# faults and munmap each time (`cli/memory.py`). Measured on
# 2.2 MB: 0.4 ms to encode in these pieces from 96 KiB reads against 3.7 ms in 128 KiB
# pieces from 256 KiB reads (1.3 ms whole).
_PIECE = 48 * 1024


class JSONResponse(StarletteJSONResponse):
    """A JSON response class FastAPI recognises as one, so its OpenAPI output describes the
    routes' bodies by the schemas they declare (`api/openapi.py`) rather than as text."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class InlineImage:
    """Where a body holds a stored image's base64, after `prefix` (a `data:` URL's header,
    or nothing): a string value in the JSON `json_response` writes. (Not a dataclass:
    orjson would serialize one as an object instead of asking `default`.)"""

    __slots__ = ("image", "links", "prefix")

    def __init__(self, links: ResultLinks, image: StoredImage, prefix: str = "") -> None:
        self.links = links
        self.image = image
        self.prefix = prefix

    @property
    def length(self) -> int:
        return len(self.prefix) + (self.image.size + 2) // 3 * 4


async def json_response(content: Any, *, status_code: int = 200,
                        headers: Mapping[str, str] | None = None) -> Response:
    """`JSONResponse(content)`, with every `InlineImage` in `content` streamed from its blob
    (see the module's docstring). Every blob is opened before anything is sent, so a missing
    one raises BlobNotFoundError here and the client gets an error body, not half of one."""
    images: list[InlineImage] = []
    # A random mark per response, so no text of the body (a prompt) can pose as a
    # placeholder; drawn only when there is an image (task polls mostly have none).
    marks: list[str] = []

    def placeholder(value: Any) -> str:
        if isinstance(value, InlineImage):
            if not marks:
                marks.append(f"imagegate-inline-{secrets.token_hex(8)}-")
            images.append(value)
            return f"{marks[0]}{len(images) - 1}"
        raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")

    body = orjson.dumps(content, default=placeholder)
    if not images:
        return Response(body, status_code=status_code, headers=headers,
                        media_type="application/json")
    # orjson writes values in order, so the placeholders stand in the body in `images` order.
    literals: list[bytes] = []
    pos = 0
    for index in range(len(images)):
        token = f"{marks[0]}{index}".encode()
        at = body.index(token, pos)
        literals.append(body[pos:at])
        pos = at + len(token)
    literals.append(body[pos:])
    sources = [await image.links.open(image.image) for image in images]
    length = sum(map(len, literals)) + sum(image.length for image in images)
    return _StreamedJSON(_pieces(literals, images, sources), length, status_code, headers)


async def _pieces(literals: list[bytes], images: list[InlineImage],
                  sources: list[AsyncIterator[bytes]]) -> AsyncIterator[bytes]:
    pending = literals[0]
    for image, source, after in zip(images, sources, literals[1:], strict=True):
        pending += image.prefix.encode()
        carry = b""
        read = 0
        async for chunk in source:
            read += len(chunk)
            if read > image.image.size:
                raise _Changed(image.image)
            data = carry + chunk if carry else chunk
            whole = len(data) - len(data) % 3
            view = memoryview(data)
            for start in range(0, whole, _PIECE):
                piece = pybase64.b64encode(view[start:min(start + _PIECE, whole)])
                if pending:
                    piece, pending = pending + piece, b""
                yield piece
            carry = bytes(view[whole:])
        if read != image.image.size:
            raise _Changed(image.image)
        pending += pybase64.b64encode(carry) + after
    yield pending


class _Changed(RuntimeError):
    """The blob's size is not the one recorded: the response, its length already sent,
    cannot be finished (the connection is dropped rather than a wrong body completed)."""

    def __init__(self, image: StoredImage) -> None:
        super().__init__(f"blob {image.key} does not have its recorded {image.size} bytes")


class _StreamedJSON(Response):
    """Sends its pieces one `send` each: the server awaits the connection's drain before
    each (backpressure), so a slow client holds one piece here, not the body."""

    media_type = "application/json"

    def __init__(self, pieces: AsyncIterator[bytes], length: int, status_code: int,
                 headers: Mapping[str, str] | None) -> None:
        self._pieces = pieces
        self.status_code = status_code
        self.background = None
        self.init_headers({**(headers or {}), "content-length": str(length)})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        async for piece in self._pieces:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
