"""`Range: bytes=…` on image downloads (RFC 9110 §14): one range, or the whole body.

Only a single range is served; a request for several (`bytes=0-9,20-29`), or a header that
is not a byte range at all, is answered with the whole image (§14.2: a server may ignore
`Range`). A range wholly past the end is a 416. `If-Range` with another validator than the
image's ETag also gets the whole image, as §13.1.5 asks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# At most 19 digits a side: any real offset fits, and no header makes a huge integer.
_RANGE = re.compile(r"bytes=(\d{0,19})-(\d{0,19})")


class RangeNotSatisfiable(Exception):
    """The range starts past the end of the image (answer 416)."""


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # exclusive

    @property
    def length(self) -> int:
        return self.end - self.start

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end - 1}/{size}"


def requested_range(header: str | None, size: int, *, if_range: str | None = None,
                    etag: str = "") -> ByteRange | None:
    """The part of a `size`-byte body the client asked for; None for the whole of it."""
    if not header or (if_range is not None and if_range.strip() != etag):
        return None
    m = _RANGE.fullmatch(header.strip().replace(" ", ""))
    if m is None:
        return None
    first, last = m.group(1), m.group(2)
    if not first and not last:
        return None
    if not first:  # the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return ByteRange(max(0, size - suffix), size)
    start = int(first)
    end = size if not last else int(last) + 1
    if last and end <= start:
        return None  # last before first: not a valid range, so no range at all
    if start >= size:
        raise RangeNotSatisfiable
    return ByteRange(start, min(end, size))
