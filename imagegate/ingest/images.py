"""Validate an input image (reference or mask) without trusting a byte of it.

The order matters and is the point of this module:

1. `sniff` names the format from its magic bytes only: a declared Content-Type or a file
   name is never believed.
2. `header_info` reads width and height from the container header in pure Python. No image
   library has seen the bytes yet, so a malformed header can only make us raise
   `ImageRejected`, never crash or allocate in a decoder.
3. `check_dimensions` refuses a decompression bomb (a 200 KB PNG claiming 50,000 × 50,000)
   from those header numbers alone, before any pixel is decoded.
4. `validate` then decodes every pixel once with libvips (sequential access, failing on
   errors) in a worker thread, so a truncated or corrupt body is caught here rather than in
   a provider, and checks that libvips reads the same size we did.
"""

from __future__ import annotations

import asyncio
import re
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import pyvips

from imagegate.domain.images import MIME_TYPES, ImageFormat

# libvips loader names (its `vips-loader` metadata) for the formats we accept.
_LOADERS: dict[ImageFormat, str] = {
    "png": "pngload",
    "jpeg": "jpegload",
    "webp": "webpload",
}

DEFAULT_MAX_EDGE = 16384

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOI = b"\xff\xd8\xff"

_EMPTY = "the image is empty"
_CORRUPT = "the image is truncated or corrupt"
_NOT_SUPPORTED = "not a PNG, JPEG or WebP image"


class ImageRejected(Exception):
    """An input image we refuse; `status` is 400, or 413 for a size limit on bytes."""

    def __init__(
        self, code: str, message: str, *, status: int = 400, detail: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        # What exactly was wrong, for logs and tests; clients only see the stable `message`.
        self.detail = detail

    def __repr__(self) -> str:
        return f"ImageRejected(code={self.code!r}, message={self.message!r}, status={self.status})"


@dataclass(frozen=True, slots=True)
class ImageInfo:
    format: ImageFormat
    content_type: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _corrupt(detail: str) -> ImageRejected:
    return ImageRejected("corrupt_image", _CORRUPT, detail=detail)


def _unsupported(kind: str | None) -> ImageRejected:
    if kind is None:
        return ImageRejected("unsupported_image_format", _NOT_SUPPORTED)
    return ImageRejected(
        "unsupported_image_format",
        f"{kind} images are not supported; send PNG, JPEG or WebP",
    )


# --------------------------------------------------------------------------- sniffing

# ISO base media (ftyp box) brands that mean a still-image HEIF/AVIF file.
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis"})
_HEIF_BRANDS = frozenset({b"mif1", b"msf1", b"mif2"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
# BMP info-header sizes (BITMAPCOREHEADER … BITMAPV5HEADER): "BM" alone is too weak a magic.
_BMP_DIB_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})


def _ftyp_kind(data: bytes) -> str | None:
    """HEIC / HEIF / AVIF from an ISO-BMFF `ftyp` box, or None for other ftyp files."""
    if len(data) < 12 or data[4:8] != b"ftyp":
        return None
    box_size = int.from_bytes(data[0:4], "big")
    # Compatible brands follow the major brand and minor version; read only inside the box,
    # and only its first few brands (a hostile box size must not make this loop long).
    end = min(len(data), box_size, 64) if box_size >= 16 else 12
    brands = {data[8:12]} | {data[i : i + 4] for i in range(16, end - 3, 4)}
    if brands & _AVIF_BRANDS:
        return "AVIF"
    if brands & _HEIC_BRANDS:
        return "HEIC"
    if brands & _HEIF_BRANDS:
        return "HEIF"
    return None


def _text_kind(data: bytes) -> str | None:
    """SVG / XML / HTML for markup sent where an image was expected."""
    head = data[:4096]
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    head = head.lstrip(b" \t\r\n").lower()
    if not head.startswith(b"<"):
        return None
    if b"<svg" in head:
        return "SVG"
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head[:512]:
        return "HTML"
    if head.startswith((b"<?xml", b"<!--", b"<!doctype")):
        return "XML"
    return None


def _unsupported_kind(data: bytes) -> str | None:
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if (
        data.startswith(b"BM")
        and len(data) >= 18
        and int.from_bytes(data[14:18], "little") in _BMP_DIB_SIZES
    ):
        return "BMP"
    if data.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "TIFF"
    if data.startswith(b"%PDF-"):
        return "PDF"
    if data.startswith(b"8BPS"):
        return "PSD"
    if data.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")):
        return "JPEG XL"
    if data.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n"):
        return "JPEG 2000"
    return _ftyp_kind(data) or _text_kind(data)


def sniff(data: bytes) -> ImageFormat:
    """The image format from magic bytes alone; unsupported formats are named when known."""
    if not data:
        raise ImageRejected("empty_image", _EMPTY)
    if data.startswith(_PNG_SIGNATURE):
        return "png"
    if data.startswith(_JPEG_SOI):
        return "jpeg"
    if len(data) >= 12 and data[0:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    raise _unsupported(_unsupported_kind(data))


# --------------------------------------------------------------------------- headers


def _png_size(data: bytes) -> tuple[int, int]:
    # signature(8) | length(4)=13 | "IHDR" | width(4) height(4) depth type comp filter lace | crc
    if len(data) < 33:
        raise _corrupt("PNG shorter than its IHDR chunk")
    length, ctype = struct.unpack_from(">I4s", data, 8)
    if ctype != b"IHDR" or length != 13:
        raise _corrupt("PNG does not start with a 13-byte IHDR chunk")
    width, height, depth, color, comp, filt, lace = struct.unpack_from(">IIBBBBB", data, 16)
    (crc,) = struct.unpack_from(">I", data, 29)
    if zlib.crc32(data[12:29]) != crc:
        raise _corrupt("PNG IHDR CRC mismatch")
    allowed_depths = {0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}
    if depth not in allowed_depths.get(color, set()) or comp != 0 or filt != 0 or lace > 1:
        raise _corrupt("PNG IHDR has invalid depth, colour type or method")
    # The spec caps each edge at 2**31 - 1.
    if width >= 1 << 31 or height >= 1 << 31:
        raise _corrupt("PNG edge above 2**31 - 1")
    return width, height


# One marker: any 0xFF fill bytes, then the marker code. Searching with a regex keeps a body
# full of garbage or fill bytes from turning into a byte-at-a-time Python loop.
_JPEG_MARKER = re.compile(rb"\xff+([\x00-\xfe])")
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers with no length field: TEM, RST0-7, SOI (EOI and SOS end the search, see below).
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8), 0xD8})


def _jpeg_size(data: bytes) -> tuple[int, int]:
    pos = 2  # after SOI
    while True:
        match = _JPEG_MARKER.search(data, pos)
        if match is None:
            raise _corrupt("JPEG ends before a frame header (SOFn)")
        # libjpeg skips stray bytes before a marker with only a warning, so we skip them too
        # rather than refuse files that decode everywhere else.
        marker = match.group(1)[0]
        pos = match.end()
        if marker == 0x00:  # a stuffed 0xFF00 is data, not a marker
            continue
        if marker in _JPEG_STANDALONE:
            continue
        if marker in (0xD9, 0xDA):  # EOI / SOS before any frame header
            raise _corrupt("JPEG has no frame header before its scan")
        if pos + 2 > len(data):
            raise _corrupt("JPEG segment length cut short")
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2 or pos + length > len(data):
            raise _corrupt("JPEG segment runs past the end of the data")
        if marker in _JPEG_SOF:
            # length(2) precision(1) height(2) width(2) components(1), then 3 bytes each
            if length < 8:
                raise _corrupt("JPEG frame header too short")
            _precision, height, width, components = struct.unpack_from(">BHHB", data, pos + 2)
            if components == 0 or length != 8 + 3 * components:
                raise _corrupt("JPEG frame header length disagrees with its component count")
            return width, height
        pos += length


def _webp_size(data: bytes) -> tuple[int, int]:
    # RIFF | size(4, LE) | "WEBP" | first chunk: fourcc(4) size(4, LE) payload
    if len(data) < 20:
        raise _corrupt("WebP shorter than its first chunk header")
    riff_size = int.from_bytes(data[4:8], "little")
    if riff_size < 12 or riff_size + 8 > len(data):
        raise _corrupt("WebP RIFF size disagrees with the data length")
    fourcc = data[12:16]
    chunk_size = int.from_bytes(data[16:20], "little")
    payload = data[20 : 20 + chunk_size]
    if len(payload) < chunk_size or 20 + chunk_size > riff_size + 8:
        raise _corrupt("WebP first chunk runs past the end of the data")
    if fourcc == b"VP8 ":
        # frame tag(3) | start code 9d 01 2a | width(14 bits + 2 scale) | height(same)
        if len(payload) < 10 or payload[3:6] != b"\x9d\x01\x2a" or payload[0] & 1:
            raise _corrupt("WebP VP8 chunk is not a key frame")
        width = int.from_bytes(payload[6:8], "little") & 0x3FFF
        height = int.from_bytes(payload[8:10], "little") & 0x3FFF
        return width, height
    if fourcc == b"VP8L":
        # signature 0x2f | 14 bits width-1 | 14 bits height-1 | alpha(1) | version(3) = 0
        if len(payload) < 5 or payload[0] != 0x2F:
            raise _corrupt("WebP VP8L signature missing")
        bits = int.from_bytes(payload[1:5], "little")
        if bits >> 29:
            raise _corrupt("WebP VP8L version is not 0")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if fourcc == b"VP8X":
        # flags(1) reserved(3) | canvas width-1 (24 bits) | canvas height-1 (24 bits)
        if len(payload) < 10:
            raise _corrupt("WebP VP8X chunk too short")
        width = int.from_bytes(payload[4:7], "little") + 1
        height = int.from_bytes(payload[7:10], "little") + 1
        return width, height
    raise _corrupt("WebP first chunk is not VP8, VP8L or VP8X")


def header_info(data: bytes) -> ImageInfo:
    """Format and size from the header alone; pixels are never decoded here."""
    fmt = sniff(data)
    if fmt == "png":
        width, height = _png_size(data)
    elif fmt == "jpeg":
        width, height = _jpeg_size(data)
    else:
        width, height = _webp_size(data)
    if width <= 0 or height <= 0:
        raise _corrupt(f"zero dimension {width}x{height}")
    return ImageInfo(format=fmt, content_type=MIME_TYPES[fmt], width=width, height=height)


def check_dimensions(info: ImageInfo, max_pixels: int, max_edge: int = DEFAULT_MAX_EDGE) -> None:
    """Refuse an image whose header claims too many pixels (decided before any decode)."""
    if info.pixels > max_pixels or info.width > max_edge or info.height > max_edge:
        raise ImageRejected(
            "image_too_large_dimensions",
            f"the image claims {info.width}×{info.height} pixels ({info.pixels:,}); the limit "
            f"is {max_pixels:,} pixels and {max_edge:,} pixels per edge",
        )


# --------------------------------------------------------------------------- decoding


def _decode_all(data: bytes, info: ImageInfo) -> None:
    """Decode every pixel once in libvips; runs in a worker thread."""
    try:
        # fail_on="error" is what makes a truncated PNG or JPEG raise: with libvips' default
        # (fail_on="none") the missing rows are silently filled in. "warning" would also fail
        # on the harmless libjpeg warnings that many camera JPEGs trigger. Sequential access
        # lets libvips stream rows through avg() instead of holding the whole image.
        image: Any = pyvips.Image.new_from_buffer(
            data, "", access="sequential", fail_on="error"
        )
        loader = str(image.get("vips-loader"))
        width, height = int(image.width), int(image.height)
        if not loader.startswith(_LOADERS[info.format]):
            raise _corrupt(f"libvips chose {loader} for a {info.format} image")
        if (width, height) != (info.width, info.height):
            raise _corrupt(
                f"libvips reads {width}x{height}, the header says {info.width}x{info.height}"
            )
        image.avg()
    except pyvips.Error as exc:
        raise _corrupt(f"libvips: {exc}") from None


def check_header(data: bytes, *, max_pixels: int, max_edge: int = DEFAULT_MAX_EDGE
                 ) -> ImageInfo:
    """Steps 1-3: sniff, read and bound the header. No pixel is decoded; ImageRejected."""
    info = header_info(data)
    check_dimensions(info, max_pixels, max_edge)
    return info


_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_JPEG_EOI = b"\xff\xd9"


def check_trailer(data: bytes, info: ImageInfo) -> None:
    """The cheap completeness check for an image `check_header` passed: the container's end is
    where it must be (PNG: the IEND chunk closes the file; JPEG: EOI, trailing zero padding
    allowed; WebP: the RIFF size is the file's). A transfer cut short, the common failure of
    an upstream's answer, fails here in microseconds; what it cannot catch is a body damaged
    in its middle, which only `decode` (every pixel) finds."""
    if info.format == "png":
        ok = data.endswith(_PNG_IEND)
    elif info.format == "jpeg":
        ok = data.rstrip(b"\x00").endswith(_JPEG_EOI)
    else:
        ok = int.from_bytes(data[4:8], "little") + 8 == len(data)
    if not ok:
        raise _corrupt(f"{info.format} data does not end where its container says: truncated")


async def decode(data: bytes, info: ImageInfo) -> None:
    """Step 4 for an image `check_header` passed: every pixel once, in a worker thread."""
    await asyncio.to_thread(_decode_all, data, info)


async def validate(data: bytes, *, max_pixels: int, max_edge: int = DEFAULT_MAX_EDGE) -> ImageInfo:
    """Sniff, read and bound the header, then decode every pixel; ImageRejected on failure.

    Both our header parser and libvips' are used on purpose: ours runs before libvips sees
    the bytes at all, so dimension limits hold even if a libvips loader would allocate (or
    misbehave) on a hostile header; libvips' full decode then proves the body is complete.
    """
    info = check_header(data, max_pixels=max_pixels, max_edge=max_edge)
    await decode(data, info)
    return info
