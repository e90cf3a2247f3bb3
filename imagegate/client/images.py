"""The bytes of a result image, whatever form it came in, and the name it is saved under."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote_to_bytes, urlsplit

from imagegate.client.errors import UnexpectedResponseError
from imagegate.client.inputs import EXTENSIONS, content_type
from imagegate.client.models import ImageItem


def same_origin(url: str, base_url: str) -> bool:
    a, b = urlsplit(url), urlsplit(base_url)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


def decode_data_url(url: str) -> tuple[bytes, str | None]:
    head, sep, payload = url.partition(",")
    if not sep:
        raise UnexpectedResponseError("a data: URL without a comma")
    mime = head.removeprefix("data:").split(";")[0] or None
    if head.endswith(";base64"):
        return b64(payload), mime
    return unquote_to_bytes(payload), mime


def b64(text: str) -> bytes:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_"
                                if "-" in text or "_" in text else None)
    except (binascii.Error, ValueError) as exc:
        raise UnexpectedResponseError(f"an image that is not valid base64: {exc}") from None


def default_name(item: ImageItem, data: bytes, mime: str | None) -> str:
    """`<task id>_<index>.<ext>`, the extension from the bytes, else what the server said."""
    sniffed = content_type(data, "")
    ext = EXTENSIONS.get(sniffed) or EXTENSIONS.get((mime or "").split(";")[0].strip()) \
        or item.output_format or "bin"
    return f"{item.task_id or 'image'}_{item.index}.{ext}"
