"""Input image validation: magic-byte sniffing, pure-Python headers, bomb refusal before any
decode, and a full libvips decode that catches truncation. Images are generated in code."""

from __future__ import annotations

import struct
import time
import zlib
from typing import Any

import pytest
import pyvips
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagegate.ingest.images import (
    ImageInfo,
    ImageRejected,
    check_dimensions,
    header_info,
    sniff,
    validate,
)

pytestmark = pytest.mark.anyio

MAX_PIXELS = 50_000_000


# --------------------------------------------------------------------------- generated images


def picture(width: int, height: int, bands: int = 3) -> Any:
    """A noisy gradient: noise keeps the compressed body large, so a cut lands in pixel data."""
    gradient = (pyvips.Image.xyz(width, height)[0] * 255 / max(width, 1)).cast("uchar")
    noise = pyvips.Image.gaussnoise(width, height, mean=128, sigma=40).cast("uchar")
    layers = [gradient, noise, (gradient + noise).cast("uchar"), noise][:bands]
    return layers[0].bandjoin(layers[1:]) if bands > 1 else layers[0]


def png(width: int, height: int, bands: int = 3, **options: Any) -> bytes:
    return bytes(picture(width, height, bands).write_to_buffer(".png", **options))


def jpeg(width: int, height: int, *, progressive: bool = False) -> bytes:
    return bytes(picture(width, height).write_to_buffer(".jpg", interlace=progressive, Q=85))


def webp(
    width: int, height: int, *, bands: int = 3, lossless: bool = False, metadata: bool = False
) -> bytes:
    # Without metadata libvips writes the simple formats (a lone VP8 or VP8L chunk); EXIF
    # metadata or lossy alpha make it use the extended format (VP8X first).
    keep = "all" if metadata else "none"
    image = picture(width, height, bands)
    return bytes(image.write_to_buffer(".webp", lossless=lossless, keep=keep))


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_header_only(width: int, height: int, tail: bytes = b"") -> bytes:
    """A valid PNG signature and IHDR (correct CRC) claiming any size, then `tail`."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + tail


def jpeg_with_segments(data: bytes) -> bytes:
    """`data` (a JPEG) with EXIF, an APP2, a comment and fill bytes before its frame header."""
    assert data[:2] == b"\xff\xd8"
    exif = b"Exif\x00\x00" + b"MM\x00*\x00\x00\x00\x08" + bytes(range(256)) * 40
    app1 = b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
    # SOF-looking bytes inside a segment must be skipped, not parsed as a frame header.
    icc = b"ICC_PROFILE\x00\x01\x01" + b"\xff\xc0\x00\x11\x08\x00\x01\x00\x01" * 50
    app2 = b"\xff\xe2" + struct.pack(">H", len(icc) + 2) + icc
    comment = b"\xff\xfe" + struct.pack(">H", 7) + b"hello"
    # Extra 0xFF fill bytes before a marker are legal (ITU T.81 B.1.1.2).
    return data[:2] + app1 + app2 + b"\xff\xff\xff" + comment + data[2:]


def rejected(code: str, call: Any, *args: Any) -> ImageRejected:
    with pytest.raises(ImageRejected) as info:
        call(*args)
    assert info.value.code == code, (info.value.code, info.value.message, info.value.detail)
    return info.value


def webp_first_chunk(data: bytes) -> bytes:
    return data[12:16]


SIZES = [(1, 1), (17, 5), (640, 480), (257, 1031)]


# --------------------------------------------------------------------------- headers


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_png_header(width: int, height: int) -> None:
    for bands in (1, 3, 4):
        data = png(width, height, bands)
        assert sniff(data) == "png"
        assert header_info(data) == ImageInfo("png", "image/png", width, height)
    interlaced = png(width, height, interlace=True)
    assert header_info(interlaced) == ImageInfo("png", "image/png", width, height)


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_jpeg_header(width: int, height: int) -> None:
    baseline = jpeg(width, height)
    progressive = jpeg(width, height, progressive=True)
    assert b"\xff\xc2" in progressive
    for data in (baseline, progressive, jpeg_with_segments(baseline)):
        assert sniff(data) == "jpeg"
        assert header_info(data) == ImageInfo("jpeg", "image/jpeg", width, height)


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_webp_header(width: int, height: int) -> None:
    lossy = webp(width, height)
    lossless = webp(width, height, lossless=True)
    alpha = webp(width, height, bands=4)
    extended_lossless = webp(width, height, lossless=True, metadata=True)
    assert webp_first_chunk(lossy) == b"VP8 "
    assert webp_first_chunk(lossless) == b"VP8L"
    assert webp_first_chunk(alpha) == b"VP8X"
    assert webp_first_chunk(extended_lossless) == b"VP8X"
    assert b"VP8L" in extended_lossless
    for data in (lossy, lossless, alpha, extended_lossless):
        assert sniff(data) == "webp"
        assert header_info(data) == ImageInfo("webp", "image/webp", width, height)


async def test_jpeg_with_segments_decodes() -> None:
    data = jpeg_with_segments(jpeg(300, 200))
    assert await validate(data, max_pixels=MAX_PIXELS) == ImageInfo("jpeg", "image/jpeg", 300, 200)


async def test_validate_accepts_every_format() -> None:
    cases = [
        (png(320, 240), "png"),
        (png(320, 240, 4), "png"),
        (png(320, 240, interlace=True), "png"),
        (jpeg(320, 240), "jpeg"),
        (jpeg(320, 240, progressive=True), "jpeg"),
        (webp(320, 240), "webp"),
        (webp(320, 240, lossless=True), "webp"),
        (webp(320, 240, bands=4), "webp"),
        (webp(320, 240, lossless=True, metadata=True), "webp"),
    ]
    for data, fmt in cases:
        info = await validate(data, max_pixels=MAX_PIXELS)
        assert (info.format, info.width, info.height) == (fmt, 320, 240)
        assert info.content_type == f"image/{fmt}"


# --------------------------------------------------------------------------- bombs


def test_check_dimensions_refuses_a_claimed_50000_square() -> None:
    info = header_info(png_header_only(50_000, 50_000, b"\x00" * 64))
    assert (info.width, info.height) == (50_000, 50_000)
    err = rejected("image_too_large_dimensions", check_dimensions, info, MAX_PIXELS)
    assert err.status == 400
    assert "50000×50000" in err.message
    assert "50,000,000" in err.message


def test_check_dimensions_edges() -> None:
    check_dimensions(ImageInfo("png", "image/png", 16384, 100), MAX_PIXELS)
    rejected(
        "image_too_large_dimensions",
        check_dimensions,
        ImageInfo("png", "image/png", 16385, 1),
        MAX_PIXELS,
    )
    check_dimensions(ImageInfo("png", "image/png", 100, 100), 10_000)
    rejected(
        "image_too_large_dimensions",
        check_dimensions,
        ImageInfo("png", "image/png", 100, 101),
        10_000,
    )
    check_dimensions(ImageInfo("png", "image/png", 20000, 10), MAX_PIXELS, max_edge=20000)


async def test_bomb_is_refused_before_libvips_sees_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: Any, **kwargs: Any) -> Any:
        pytest.fail("libvips was called for an image whose header is already over the limit")

    monkeypatch.setattr(pyvips.Image, "new_from_buffer", never)
    for name in ("pngload_buffer", "jpegload_buffer", "webpload_buffer"):
        monkeypatch.setattr(pyvips.Image, name, never)
    bomb = png_header_only(50_000, 50_000, png_chunk(b"IDAT", zlib.compress(b"\x00" * 100_000)))
    with pytest.raises(ImageRejected) as info:
        await validate(bomb, max_pixels=MAX_PIXELS)
    assert info.value.code == "image_too_large_dimensions"
    assert info.value.status == 400


async def test_validate_with_a_small_pixel_limit() -> None:
    with pytest.raises(ImageRejected) as info:
        await validate(png(200, 200), max_pixels=10_000)
    assert info.value.code == "image_too_large_dimensions"


# --------------------------------------------------------------------------- corrupt bodies


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.99])
@pytest.mark.parametrize("kind", ["png", "jpeg", "progressive"])
async def test_truncated_images_are_corrupt(kind: str, fraction: float) -> None:
    data = {
        "png": lambda: png(600, 400),
        "jpeg": lambda: jpeg(600, 400),
        "progressive": lambda: jpeg(600, 400, progressive=True),
    }[kind]()
    cut = data[: int(len(data) * fraction)]
    # The header is intact, so only the full decode can notice the missing rows.
    assert (header_info(cut).width, header_info(cut).height) == (600, 400)
    with pytest.raises(ImageRejected) as info:
        await validate(cut, max_pixels=MAX_PIXELS)
    assert info.value.code == "corrupt_image"
    assert info.value.message == "the image is truncated or corrupt"
    assert info.value.status == 400


@pytest.mark.parametrize("lossless", [False, True])
async def test_truncated_webp_is_corrupt(lossless: bool) -> None:
    data = webp(600, 400, lossless=lossless)
    cut = data[: len(data) // 2]
    with pytest.raises(ImageRejected) as info:
        await validate(cut, max_pixels=MAX_PIXELS)
    assert info.value.code == "corrupt_image"


async def test_png_whose_ihdr_lies_about_its_size_is_corrupt() -> None:
    data = bytearray(png(64, 64))
    ihdr = bytes(data[12:16]) + struct.pack(">II", 128, 128) + bytes(data[24:29])
    data[12:33] = ihdr + struct.pack(">I", zlib.crc32(ihdr))
    assert header_info(bytes(data)).width == 128
    with pytest.raises(ImageRejected) as info:
        await validate(bytes(data), max_pixels=MAX_PIXELS)
    assert info.value.code == "corrupt_image"


async def test_corrupted_pixel_data_is_corrupt() -> None:
    data = bytearray(png(300, 300))
    middle = len(data) // 2
    data[middle : middle + 200] = bytes(200)  # zlib stream and CRC no longer agree
    with pytest.raises(ImageRejected) as info:
        await validate(bytes(data), max_pixels=MAX_PIXELS)
    assert info.value.code == "corrupt_image"


def test_broken_headers_are_corrupt() -> None:
    good_png = png(10, 10)
    bad_crc = bytearray(good_png)
    bad_crc[20] ^= 0xFF
    cases = [
        good_png[:20],  # cut inside IHDR
        bytes(bad_crc),  # IHDR CRC mismatch
        png_header_only(0, 10),  # zero width
        png_header_only(10, 0),
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IDAT", b"x" * 13),  # no IHDR first
        b"\xff\xd8\xff",  # SOI only
        b"\xff\xd8\xff\xe0\x00\x10JFIF",  # segment runs past the end
        b"\xff\xd8\xff\xda\x00\x08" + b"\x00" * 20,  # scan before a frame header
        b"\xff\xd8\xff\xd9",  # EOI before a frame header
        b"\xff\xd8\xff\xc0\x00\x0b\x08\x00\x00\x00\x10\x01\x01\x11\x00",  # zero height
        b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x10\x00\x10\x01\x01\x11\x00",  # length ≠ components
        b"RIFF\x04\x00\x00\x00WEBP",  # no chunk
        b"RIFF\xff\xff\x00\x00WEBPVP8 \x10\x00\x00\x00" + b"\x00" * 16,  # RIFF size too big
        b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0e\x00\x00\x00" + b"\x00" * 14,  # no VP8L signature
        b"RIFF\x1a\x00\x00\x00WEBPXXXX\x0e\x00\x00\x00" + b"\x00" * 14,  # unknown first chunk
    ]
    for data in cases:
        rejected("corrupt_image", header_info, data)
    truncated_webp = webp(50, 50)
    rejected("corrupt_image", header_info, truncated_webp[: len(truncated_webp) - 10])


# --------------------------------------------------------------------------- not an image


def bmp() -> bytes:
    header = b"BM" + struct.pack("<IHHI", 70, 0, 0, 54)
    dib = struct.pack("<IiiHHIIiiII", 40, 2, 2, 1, 24, 0, 16, 2835, 2835, 0, 0)
    return header + dib + b"\x00" * 16


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"GIF89a\x01\x00\x01\x00\x80\x00\x00", "GIF"),
        (b"GIF87a\x01\x00\x01\x00", "GIF"),
        (bmp(), "BMP"),
        (b"II*\x00\x08\x00\x00\x00", "TIFF"),
        (b"MM\x00*\x00\x00\x00\x08", "TIFF"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIC"),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic", "HEIC"),
        (b"\x00\x00\x00\x14ftypmif1\x00\x00\x00\x00mif1", "HEIF"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", "AVIF"),
        (b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avif", "AVIF"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
        (b'\xef\xbb\xbf  <svg xmlns="http://www.w3.org/2000/svg" width="10"></svg>', "SVG"),
        (b"<!DOCTYPE html><html><body>Not found</body></html>", "HTML"),
        (b"\n<html><head><title>403</title></head></html>", "HTML"),
        (b'<?xml version="1.0"?><Error><Code>AccessDenied</Code></Error>', "XML"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "PDF"),
    ],
)
def test_named_unsupported_formats(data: bytes, kind: str) -> None:
    err = rejected("unsupported_image_format", sniff, data)
    assert err.message == f"{kind} images are not supported; send PNG, JPEG or WebP"
    assert err.status == 400
    rejected("unsupported_image_format", header_info, data)


@pytest.mark.parametrize(
    "data",
    [
        b"\x00",
        b"hello world",
        bytes(range(256)),
        b"BM",  # too short to be a BMP
        b"\x89PNG",  # a cut signature
        b"RIFF\x00\x00\x00\x00WAVE",
        b'{"error": "not found"}',
        b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2",  # an MP4
    ],
)
def test_unknown_bytes(data: bytes) -> None:
    err = rejected("unsupported_image_format", sniff, data)
    assert err.message == "not a PNG, JPEG or WebP image"


async def test_empty() -> None:
    err = rejected("empty_image", sniff, b"")
    assert err.message == "the image is empty"
    rejected("empty_image", header_info, b"")
    with pytest.raises(ImageRejected) as info:
        await validate(b"", max_pixels=MAX_PIXELS)
    assert info.value.code == "empty_image"


async def test_format_is_decided_by_magic_not_by_libvips() -> None:
    # A GIF is refused even though libvips could decode it.
    gif = bytes(picture(8, 8, 1).write_to_buffer(".gif"))
    with pytest.raises(ImageRejected) as info:
        await validate(gif, max_pixels=MAX_PIXELS)
    assert info.value.code == "unsupported_image_format"


# --------------------------------------------------------------------------- never anything else

REAL = {"png": png(64, 48), "jpeg": jpeg(64, 48), "webp": webp(64, 48)}
MAGICS = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF\x00\x01\x00\x00WEBP", b"RIFF"]


def only_rejections(data: bytes) -> None:
    try:
        sniff(data)
    except ImageRejected:
        pass
    try:
        info = header_info(data)
    except ImageRejected:
        return
    assert info.width > 0
    assert info.height > 0


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_random_bytes_only_raise_rejections(data: bytes) -> None:
    only_rejections(data)


@settings(max_examples=400)
@given(st.sampled_from(MAGICS), st.binary(max_size=256))
def test_random_bodies_behind_real_magic_only_raise_rejections(magic: bytes, tail: bytes) -> None:
    only_rejections(magic + tail)


@settings(max_examples=400)
@given(
    st.sampled_from(sorted(REAL)),
    st.integers(min_value=0, max_value=4096),
    st.lists(st.tuples(st.integers(min_value=0, max_value=200), st.integers(0, 255)), max_size=4),
)
def test_truncated_and_mutated_real_images_only_raise_rejections(
    fmt: str, cut: int, flips: list[tuple[int, int]]
) -> None:
    data = bytearray(REAL[fmt][:cut])
    for where, value in flips:
        if where < len(data):
            data[where] = value
    only_rejections(bytes(data))


# --------------------------------------------------------------------------- timing


async def test_large_images_validate_in_reasonable_time() -> None:
    """A noisy 4K PNG (~20 MB) and a ~20 MB JPEG decode well within a request's time."""
    big_png = png(3840, 2160)
    started = time.perf_counter()
    assert (await validate(big_png, max_pixels=MAX_PIXELS)).width == 3840
    png_seconds = time.perf_counter() - started

    big_jpeg = bytes(picture(3000, 2250).write_to_buffer(".jpg", Q=100))
    assert 15_000_000 < len(big_jpeg) < 25_000_000
    started = time.perf_counter()
    assert (await validate(big_jpeg, max_pixels=MAX_PIXELS)).height == 2250
    jpeg_seconds = time.perf_counter() - started
    assert png_seconds < 10
    assert jpeg_seconds < 10
