"""Input images as callers give them: a path, bytes, an open file, or a URL (http(s) or
`data:`). `load` reads each into an `ImageFile` (bytes to upload) or an `ImageURL` (passed on
for the server to fetch), so the dialects only ever see those two."""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeAlias

from imagegate.client.errors import InputError

ImageInput: TypeAlias = "str | os.PathLike[str] | bytes | IO[bytes]"
URL_PREFIXES = ("http://", "https://", "data:")
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
          (b"GIF8", "image/gif"))
_BY_SUFFIX = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
              ".webp": "image/webp", ".gif": "image/gif"}
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp",
              "image/gif": "gif"}


@dataclass(frozen=True)
class ImageFile:
    name: str
    data: bytes
    content_type: str

    def data_url(self) -> str:
        return f"data:{self.content_type};base64,{base64.b64encode(self.data).decode()}"


@dataclass(frozen=True)
class ImageURL:
    url: str


Loaded: TypeAlias = ImageFile | ImageURL


def load(image: ImageInput, *, name: str = "image") -> Loaded:
    """One input image, read. A string is a URL when it starts with http://, https:// or
    data:, otherwise a path."""
    if isinstance(image, str) and image.startswith(URL_PREFIXES):
        return ImageURL(image)
    if isinstance(image, str | os.PathLike):
        path = Path(image)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
        return ImageFile(path.name, data, content_type(data, path.name))
    if isinstance(image, bytes | bytearray | memoryview):
        data = bytes(image)
        mime = content_type(data, "")
        return ImageFile(f"{name}.{EXTENSIONS.get(mime, 'bin')}", data, mime)
    read = getattr(image, "read", None)
    if read is None:
        raise InputError(f"an image must be a path, bytes, a file object or a URL, not "
                         f"{type(image).__name__}")
    try:
        data = read()
    except OSError as exc:
        raise InputError(f"cannot read {getattr(image, 'name', 'the file')}: {exc}") from None
    if not isinstance(data, bytes):
        raise InputError("an image file must be opened in binary mode ('rb')")
    filename = Path(str(getattr(image, "name", "") or "")).name
    mime = content_type(data, filename)
    return ImageFile(filename or f"{name}.{EXTENSIONS.get(mime, 'bin')}", data, mime)


def load_all(images: ImageInput | Sequence[ImageInput] | None) -> list[Loaded]:
    if images is None:
        return []
    if isinstance(images, str | bytes | bytearray | os.PathLike) or hasattr(images, "read"):
        return [load(images)]  # type: ignore[arg-type]
    return [load(image) for image in images]


def content_type(data: bytes, filename: str) -> str:
    """The MIME type by the bytes (PNG, JPEG, WebP, GIF), else by the file name."""
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return _BY_SUFFIX.get(Path(filename).suffix.lower(), "application/octet-stream")


def as_reference(image: Loaded) -> str:
    """An image as a JSON reference: the URL, or the file as a `data:` URL."""
    return image.url if isinstance(image, ImageURL) else image.data_url()
