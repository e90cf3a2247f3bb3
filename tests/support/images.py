"""Images made in code for the ingest tests."""

from __future__ import annotations

import struct
import zlib


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload)))


def flat_png(width: int, height: int) -> bytes:
    """A valid one-colour (black, 1-bit grey) PNG: 49 megapixels compress to about 6 KB, the
    image a pixel budget must refuse before anything decodes it."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte "none", then the packed bits
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    pixels = zlib.compress(row * height, 9)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", pixels)
            + _chunk(b"IEND", b""))
