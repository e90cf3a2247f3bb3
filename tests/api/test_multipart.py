"""The streaming multipart parser: the shapes httpx (openai SDK) and curl send, every chunking,
and limits that trip while the body is still streaming."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagegate.api.multipart import (
    MAX_FILE_NAME_CHARS,
    MAX_PART_HEADER_BYTES,
    MAX_PART_HEADERS,
    MAX_PART_NAME_CHARS,
    MultipartError,
    MultipartForm,
    MultipartLimits,
    UploadedFile,
    parse_multipart,
)

pytestmark = pytest.mark.anyio

MIB = 1024 * 1024
CHUNK_SIZES = [1, 7, 64 * 1024, 10 * MIB]
PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(3000)
JPEG = b"\xff\xd8\xff\xe0" + os.urandom(5000)


@dataclass
class Counter:
    yielded: int = 0
    chunks: int = 0


async def stream(body: bytes, size: int, counter: Counter | None = None) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        chunk = body[start : start + size]
        if counter is not None:
            counter.yielded += len(chunk)
            counter.chunks += 1
        yield chunk


async def parse(
    body: bytes,
    content_type: str,
    *,
    chunk: int = 64 * 1024,
    limits: MultipartLimits | None = None,
) -> MultipartForm:
    return await parse_multipart(stream(body, chunk), content_type, limits or MultipartLimits())


async def parse_error(
    body: bytes, content_type: str, *, chunk: int = 64 * 1024, limits: MultipartLimits | None = None
) -> MultipartError:
    with pytest.raises(MultipartError) as info:
        await parse(body, content_type, chunk=chunk, limits=limits)
    return info.value


def httpx_body(files: Any = None, data: Any = None) -> tuple[bytes, str]:
    """Exactly the bytes httpx (and so the openai SDK) sends for these files and fields."""
    request = httpx.Request("POST", "http://imagegate.test/v1/images/edits", files=files,
                            data=data)
    return request.read(), request.headers["content-type"]


BOUNDARY = "------------------------d74496d66958873e"


def curl_body(parts: Iterable[tuple[str, str | None, bytes]]) -> tuple[bytes, str]:
    """The shape `curl -F name=value -F name=@file` sends: (name, filename or None, bytes)."""
    out = bytearray()
    for name, filename, value in parts:
        out += f"--{BOUNDARY}\r\n".encode()
        if filename is None:
            out += f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        else:
            out += (
                f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                f"Content-Type: {guess_type(filename)}\r\n\r\n"
            ).encode()
        out += value + b"\r\n"
    out += f"--{BOUNDARY}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={BOUNDARY}"


def guess_type(filename: str) -> str:
    if filename.endswith(".png"):
        return "image/png"
    if filename.endswith(".jpg"):
        return "image/jpeg"
    return "application/octet-stream"


def raw_body(*parts: bytes, boundary: str = "XyZ", close: bool = True) -> tuple[bytes, str]:
    """Parts given as their header block and data (`b'headers\\r\\n\\r\\ndata'`)."""
    out = b"".join(b"--" + boundary.encode() + b"\r\n" + part + b"\r\n" for part in parts)
    if close:
        out += b"--" + boundary.encode() + b"--\r\n"
    return out, f"multipart/form-data; boundary={boundary}"


def summary(form: MultipartForm) -> tuple[dict[str, list[str]], list[UploadedFile]]:
    return form.fields, form.files


# --------------------------------------------------------------------------- client shapes


async def test_httpx_openai_style_body_in_every_chunking() -> None:
    body, content_type = httpx_body(
        files=[
            ("image[]", ("ref-1.png", PNG, "image/png")),
            ("image[]", ("ref-2.jpg", JPEG, "image/jpeg")),
            ("mask", ("mask.png", PNG, "image/png")),
        ],
        data={"prompt": "把图片改成复古胶片风格,保留主体", "model": "gpt-image-2", "n": "2",
              "size": "16:9"},
    )
    results = [await parse(body, content_type, chunk=size) for size in CHUNK_SIZES]
    for form in results:
        assert summary(form) == summary(results[0])
    form = results[0]
    assert form.fields == {
        "prompt": ["把图片改成复古胶片风格,保留主体"],
        "model": ["gpt-image-2"],
        "n": ["2"],
        "size": ["16:9"],
    }
    assert form.files == [
        UploadedFile("image[]", "ref-1.png", "image/png", PNG, 0),
        UploadedFile("image[]", "ref-2.jpg", "image/jpeg", JPEG, 1),
        UploadedFile("mask", "mask.png", "image/png", PNG, 2),
    ]


async def test_httpx_single_image_without_content_type() -> None:
    body, content_type = httpx_body(files={"image": ("photo", JPEG)}, data={"prompt": "x"})
    form = await parse(body, content_type, chunk=7)
    assert len(form.files) == 1
    upload = form.files[0]
    assert (upload.field, upload.filename, upload.data, upload.index) == ("image", "photo", JPEG, 0)
    # httpx guesses from the file name; with no extension it sends octet-stream.
    assert upload.content_type == "application/octet-stream"


@pytest.mark.parametrize("chunk", CHUNK_SIZES)
async def test_curl_shapes(chunk: int) -> None:
    body, content_type = curl_body(
        [
            ("model", None, b"gpt-image-2"),
            ("prompt", None, "融合两张参考图的风格".encode()),
            ("image", "reference.png", PNG),
            ("image[]", "ref-1.png", PNG),
            ("image[]", "ref-2.jpg", JPEG),
            ("images[]", "ref-3.png", PNG),
            ("image_1", "one.png", PNG),
            ("image_2", "two.jpg", JPEG),
            ("mask", "mask.png", PNG),
        ]
    )
    form = await parse(body, content_type, chunk=chunk)
    assert form.fields == {"model": ["gpt-image-2"], "prompt": ["融合两张参考图的风格"]}
    assert [(f.field, f.filename, f.content_type, f.index) for f in form.files] == [
        ("image", "reference.png", "image/png", 0),
        ("image[]", "ref-1.png", "image/png", 1),
        ("image[]", "ref-2.jpg", "image/jpeg", 2),
        ("images[]", "ref-3.png", "image/png", 3),
        ("image_1", "one.png", "image/png", 4),
        ("image_2", "two.jpg", "image/jpeg", 5),
        ("mask", "mask.png", "image/png", 6),
    ]
    assert [f.data for f in form.files] == [PNG, PNG, JPEG, PNG, PNG, JPEG, PNG]


async def test_text_image_field_holding_a_url_stays_a_text_field() -> None:
    body, content_type = curl_body(
        [
            ("prompt", None, b"make it blue"),
            ("image[]", None, b"https://example.com/a.png"),
            ("image[]", None, b"data:image/png;base64,iVBORw0KGgo="),
            ("image[]", "b.png", PNG),
        ]
    )
    form = await parse(body, content_type)
    assert form.fields["image[]"] == [
        "https://example.com/a.png",
        "data:image/png;base64,iVBORw0KGgo=",
    ]
    assert [(f.field, f.index) for f in form.files] == [("image[]", 0)]


async def test_repeated_text_fields_keep_their_order() -> None:
    # httpx sends fields-only forms urlencoded; one file makes it multipart.
    body, content_type = httpx_body(
        files={"image": ("a.png", PNG)}, data={"tag": ["a", "b", "c"], "prompt": "p"}
    )
    form = await parse(body, content_type, chunk=1)
    assert form.fields == {"tag": ["a", "b", "c"], "prompt": ["p"]}


async def test_empty_file_part_is_kept() -> None:
    body, content_type = curl_body([("image", "empty.png", b""), ("prompt", None, b"")])
    form = await parse(body, content_type)
    assert form.files == [UploadedFile("image", "empty.png", "image/png", b"", 0)]
    assert form.fields == {"prompt": [""]}


async def test_data_that_looks_like_a_boundary_is_data() -> None:
    tricky = b"\r\n--XyZ-not-quite\r\n--Xy" + b"\r\n--" * 100 + b"XyZX"
    body, content_type = raw_body(
        b'Content-Disposition: form-data; name="image"; filename="a.bin"\r\n\r\n' + tricky
    )
    for chunk in (1, 3, 7, 1024):
        form = await parse(body, content_type, chunk=chunk)
        assert form.files[0].data == tricky


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=4000), min_size=1, max_size=40))
def test_any_chunking_gives_the_same_form(cuts: list[int]) -> None:
    import anyio

    body, content_type = HYPOTHESIS_BODY
    pieces: list[bytes] = []
    position = 0
    for size in cuts:
        pieces.append(body[position : position + size])
        position += size
    pieces.append(body[position:])

    async def chunks() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    async def run() -> MultipartForm:
        return await parse_multipart(chunks(), content_type, MultipartLimits())

    form = anyio.run(run)
    assert summary(form) == summary(HYPOTHESIS_EXPECTED)


HYPOTHESIS_BODY = httpx_body(
    files=[("image[]", ("a.png", PNG, "image/png")), ("image[]", ("b.jpg", JPEG, "image/jpeg"))],
    data={"prompt": "hello", "n": "1"},
)
HYPOTHESIS_EXPECTED = MultipartForm(
    fields={"prompt": ["hello"], "n": ["1"]},
    files=[
        UploadedFile("image[]", "a.png", "image/png", PNG, 0),
        UploadedFile("image[]", "b.jpg", "image/jpeg", JPEG, 1),
    ],
)


# --------------------------------------------------------------------------- file names


async def test_rfc5987_filename_star_wins() -> None:
    body, content_type = raw_body(
        b'Content-Disposition: form-data; name="image"; filename="fallback.png"; '
        b"filename*=UTF-8''%E5%8F%82%E8%80%83%20%C3%A9.png\r\nContent-Type: image/png\r\n\r\n"
        + PNG
    )
    form = await parse(body, content_type)
    assert form.files[0].filename == "参考 é.png"


async def test_filename_star_alone_marks_a_file() -> None:
    body, content_type = raw_body(
        b"Content-Disposition: form-data; name=image; filename*=utf-8'en'na%C3%AFve.png"
        b"\r\n\r\n" + PNG
    )
    form = await parse(body, content_type)
    assert form.files[0].filename == "naïve.png"
    assert form.files[0].content_type is None
    assert form.fields == {}


async def test_undecodable_filename_star_falls_back() -> None:
    body, content_type = raw_body(
        b'Content-Disposition: form-data; name="image"; filename="plain.png"; '
        b"filename*=bogus-charset''%FF.png\r\n\r\n" + PNG
    )
    form = await parse(body, content_type)
    assert form.files[0].filename == "plain.png"


async def test_non_ascii_filenames() -> None:
    body, content_type = httpx_body(
        files=[("image", ('照片 "最终" \\ü.png', PNG, "image/png"))], data={"prompt": "x"}
    )
    form = await parse(body, content_type, chunk=7)
    # httpx escapes " as %22 and \ as \\ (HTML5 form encoding); both come back as sent.
    # The backslash then counts as a path separator: a file name is never a path.
    assert form.files[0].filename == "ü.png"
    body, content_type = curl_body([("image", "café 写真.png", PNG)])
    assert (await parse(body, content_type)).files[0].filename == "café 写真.png"
    latin1, content_type = raw_body(
        b'Content-Disposition: form-data; name="image"; filename="caf\xe9.png"\r\n\r\n' + PNG
    )
    assert (await parse(latin1, content_type)).files[0].filename == "café.png"


async def test_paths_and_escapes_in_filenames() -> None:
    body, content_type = raw_body(
        b'Content-Disposition: form-data; name="image"; filename="C:\\Users\\me\\a.png"'
        b"\r\n\r\n" + PNG,
        b'Content-Disposition: form-data; name="image"; filename="../../etc/b.png"\r\n\r\n' + PNG,
        b'Content-Disposition: form-data; name="image"; filename="say %22hi%22.png"\r\n\r\n'
        + PNG,
        b'Content-Disposition: form-data; name="image"; filename="q\\"uote.png"\r\n\r\n' + PNG,
        b'Content-Disposition: form-data; name="image"; filename=""\r\n\r\n',
    )
    form = await parse(body, content_type)
    assert [f.filename for f in form.files] == [
        "a.png", "b.png", 'say "hi".png', 'q"uote.png', None,
    ]
    assert form.files[-1].data == b""


async def test_quoted_semicolons_and_unusual_spacing() -> None:
    body, content_type = raw_body(
        b'content-disposition:   FORM-DATA ;NAME = "image[]" ; filename="a;b.png"\r\n'
        b"content-type: image/png\r\n\r\n" + PNG
    )
    form = await parse(body, content_type)
    assert (form.files[0].field, form.files[0].filename) == ("image[]", "a;b.png")


# --------------------------------------------------------------------------- limits


async def test_oversized_file_is_refused_while_streaming() -> None:
    big = b"\x89PNG\r\n\x1a\n" + b"\x00" * (21 * MIB)
    body, content_type = httpx_body(
        files=[("image", ("big.png", big, "image/png"))], data={"prompt": "x"}
    )
    counter = Counter()
    limits = MultipartLimits(max_file_bytes=20 * MIB)
    with pytest.raises(MultipartError) as info:
        await parse_multipart(stream(body, 64 * 1024, counter), content_type, limits)
    err = info.value
    assert (err.code, err.status, err.param) == ("file_too_large", 413, "image[0]")
    # The refusal comes within one chunk of the limit, not after reading the whole body.
    assert counter.yielded <= 20 * MIB + 64 * 1024 + 1024
    assert counter.yielded < len(body) - MIB // 2


async def test_file_exactly_at_the_limit_is_accepted() -> None:
    data = b"x" * 1000
    body, content_type = curl_body([("image", "a.png", data)])
    form = await parse(body, content_type, chunk=7, limits=MultipartLimits(max_file_bytes=1000))
    assert form.files[0].data == data
    error = await parse_error(
        body, content_type, chunk=7, limits=MultipartLimits(max_file_bytes=999)
    )
    assert error.code == "file_too_large"


async def test_total_limit_names_the_file_that_crossed_it() -> None:
    body, content_type = curl_body([("image[]", f"{i}.png", b"x" * 400) for i in range(4)])
    limits = MultipartLimits(max_file_bytes=500, max_total_bytes=1000)
    counter = Counter()
    with pytest.raises(MultipartError) as info:
        await parse_multipart(stream(body, 50, counter), content_type, limits)
    err = info.value
    assert (err.code, err.status, err.param) == ("request_too_large", 413, "image[2]")
    assert counter.yielded < len(body)


async def test_too_many_files() -> None:
    parts: list[tuple[str, str | None, bytes]] = [("prompt", None, b"p")]
    parts += [("image[]", f"{i}.png", PNG[:100]) for i in range(18)]
    body, content_type = curl_body(parts)
    error = await parse_error(body, content_type)
    assert (error.code, error.status, error.param) == ("too_many_files", 400, "image[17]")
    form = await parse(body, content_type, limits=MultipartLimits(max_files=18))
    assert len(form.files) == 18


async def test_param_names_each_file_of_a_repeated_field() -> None:
    body, content_type = curl_body(
        [("image", "a.png", b"12"), ("image", "b.png", b"1234"), ("image_2", "c.png", b"1")]
    )
    limits = MultipartLimits(max_file_bytes=3)
    error = await parse_error(body, content_type, limits=limits)
    assert error.param == "image[1]"
    body, content_type = curl_body([("image_2", "c.png", b"1234")])
    assert (await parse_error(body, content_type, limits=limits)).param == "image_2[0]"


async def test_too_many_fields() -> None:
    body, content_type = curl_body([(f"f{i}", None, b"v") for i in range(65)])
    error = await parse_error(body, content_type)
    assert (error.code, error.status, error.param) == ("too_many_fields", 400, "f64")
    body, content_type = curl_body([(f"f{i}", None, b"v") for i in range(64)])
    assert len((await parse(body, content_type)).fields) == 64


async def test_text_field_too_long() -> None:
    prompt = "字" * 32_000  # the longest prompt: 96,000 UTF-8 bytes
    body, content_type = curl_body([("prompt", None, prompt.encode())])
    error = await parse_error(body, content_type)
    assert (error.code, error.status, error.param) == ("field_too_large", 400, "prompt")
    limits = MultipartLimits(max_field_bytes=128 * 1024)
    assert (await parse(body, content_type, limits=limits)).fields["prompt"] == [prompt]


# --------------------------------------------------------------------------- malformed bodies


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data",
        "multipart/form-data; boundary=",
        'multipart/form-data; boundary=""',
        "multipart/form-data; charset=utf-8",
        "multipart/form-data; boundary=" + "a" * 300,
        "multipart/form-data; boundary=bad\r\nheader",
        "application/json",
        "multipart/mixed; boundary=XyZ",
        "",
    ],
)
async def test_missing_or_invalid_boundary(content_type: str) -> None:
    body, _ = raw_body(b'Content-Disposition: form-data; name="a"\r\n\r\nb')
    error = await parse_error(body, content_type)
    assert (error.code, error.status) == ("invalid_multipart", 400)


async def test_quoted_boundary_and_case() -> None:
    body, _ = raw_body(b'Content-Disposition: form-data; name="a"\r\n\r\nb', boundary="a b:c")
    form = await parse(body, 'Multipart/Form-Data; charset=utf-8; boundary="a b:c"')
    assert form.fields == {"a": ["b"]}


@pytest.mark.parametrize("chunk", [1, 7, 64 * 1024])
async def test_truncated_body(chunk: int) -> None:
    body, content_type = curl_body([("prompt", None, b"hello"), ("image", "a.png", PNG)])
    for cut in (0, 10, len(body) // 2, len(body) - 5, len(body) - 4):
        error = await parse_error(body[:cut], content_type, chunk=chunk)
        assert (error.code, error.status) == ("invalid_multipart", 400), cut
    # The final CRLF after the closing boundary is optional.
    assert len((await parse(body[:-2], content_type, chunk=chunk)).files) == 1


async def test_body_without_parts() -> None:
    form = await parse(b"--XyZ--\r\n", "multipart/form-data; boundary=XyZ")
    assert summary(form) == ({}, [])


async def test_wrong_boundary_in_body() -> None:
    body, _ = raw_body(b'Content-Disposition: form-data; name="a"\r\n\r\nb', boundary="other")
    error = await parse_error(body, "multipart/form-data; boundary=XyZ")
    assert error.code == "invalid_multipart"


@pytest.mark.parametrize(
    "part",
    [
        b"Content-Type: text/plain\r\n\r\nno disposition",
        b"Content-Disposition: attachment; name=\"a\"\r\n\r\nnot form-data",
        b"Content-Disposition: form-data\r\n\r\nno name",
        b'Content-Disposition: form-data; name=""\r\n\r\nempty name',
        b'Content-Disposition: form-data; name="prompt"\r\n\r\n\xff\xfe not utf-8',
        b'Content-Disposition: form-data; name="image"; filename="a.png"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=",
        b"no colon in this header line\r\n\r\ndata",
    ],
)
async def test_malformed_parts(part: bytes) -> None:
    body, content_type = raw_body(part)
    error = await parse_error(body, content_type)
    assert (error.code, error.status) == ("invalid_multipart", 400)


async def test_stops_reading_after_the_closing_boundary() -> None:
    body, content_type = curl_body([("prompt", None, b"hi")])
    pulled = Counter()

    async def endless() -> AsyncIterator[bytes]:
        yield body
        while True:
            pulled.chunks += 1
            yield b"epilogue " * 1000

    form = await parse_multipart(endless(), content_type, MultipartLimits())
    assert form.fields == {"prompt": ["hi"]}
    assert pulled.chunks == 0


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=0, max_value=len(HYPOTHESIS_BODY[0])),
    st.lists(st.tuples(st.integers(min_value=0, max_value=400), st.binary(max_size=8)),
             max_size=4),
    st.sampled_from([1, 5, 64, 4096]),
)
def test_damaged_bodies_only_raise_multipart_errors(
    cut: int, edits: list[tuple[int, bytes]], chunk: int
) -> None:
    import anyio

    body = bytearray(HYPOTHESIS_BODY[0][:cut])
    for where, replacement in edits:
        body[where : where + len(replacement)] = replacement

    async def run() -> None:
        try:
            await parse_multipart(stream(bytes(body), chunk), HYPOTHESIS_BODY[1],
                                  MultipartLimits())
        except MultipartError as exc:
            assert exc.status in (400, 413)

    anyio.run(run)


async def test_preamble_is_refused() -> None:
    body, content_type = curl_body([("prompt", None, b"hi")])
    error = await parse_error(b"This is a preamble.\r\n" + body, content_type)
    assert error.code == "invalid_multipart"


# --------------------------------------------------------------------------- bounded strings


async def test_part_headers_are_capped() -> None:
    disposition = b'Content-Disposition: form-data; name="prompt"\r\n'
    too_long = b"X-Pad: " + b"a" * MAX_PART_HEADER_BYTES
    too_many = b"".join(b"X-%d: a\r\n" % i for i in range(MAX_PART_HEADERS))
    for headers in (too_long + b"\r\n", too_many):
        body, content_type = raw_body(disposition + headers + b"\r\nhi")
        for chunk in (1, 64 * 1024):
            error = await parse_error(body, content_type, chunk=chunk)
            assert (error.code, error.status) == ("invalid_multipart", 400)
    fits = b"X-Pad: " + b"a" * (MAX_PART_HEADER_BYTES - 7)
    body, content_type = raw_body(disposition + fits + b"\r\n\r\nhi")
    assert (await parse(body, content_type)).fields == {"prompt": ["hi"]}


async def test_part_names_are_capped() -> None:
    name = "f" * MAX_PART_NAME_CHARS
    body, content_type = curl_body([(name, None, b"v")])
    assert (await parse(body, content_type)).fields == {name: ["v"]}
    body, content_type = curl_body([(name + "f", None, b"v")])
    error = await parse_error(body, content_type)
    assert (error.code, error.status) == ("string_above_max_length", 400)


async def test_file_names_are_capped() -> None:
    name = "n" * (MAX_FILE_NAME_CHARS - 4) + ".png"
    body, content_type = curl_body([("image[]", name, PNG)])
    assert (await parse(body, content_type)).files[0].filename == name
    body, content_type = curl_body([("image[]", "n" + name, PNG)])
    error = await parse_error(body, content_type)
    assert (error.code, error.status, error.param) == ("string_above_max_length", 400,
                                                       "image[0]")
    # Old browsers' full paths are cut to the name before the cap is applied.
    body, content_type = curl_body([("image", "C:\\\\" + "d" * 300 + "\\\\a.png", PNG)])
    assert (await parse(body, content_type)).files[0].filename == "a.png"
