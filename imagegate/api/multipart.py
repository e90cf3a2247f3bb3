"""A streaming `multipart/form-data` parser that enforces its limits while the body arrives.

Starlette's own form parser spools files to disk and compares sizes only once a part is
complete. Here every chunk is counted as it streams in: the moment a file passes its limit
(or all files together pass theirs) we raise and stop pulling from the stream, so a client
can never make us hold or read more than the limits plus one chunk.

The byte-level parsing is `python_multipart.MultipartParser`; this module adds the part
headers (`Content-Disposition` with `name`, `filename` and RFC 5987 `filename*`), the
file-or-text decision and the limits.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser

from imagegate.api.header_values import split_unquoted, unquote

MIB = 1024 * 1024

# python_multipart refuses longer boundaries; RFC 2046 allows 70, every client stays below.
_MAX_BOUNDARY = 256
# A part's headers (Content-Disposition, Content-Type, …): how many, and the bytes of each
# line. python_multipart enforces both; they are passed explicitly so the caps are ours.
MAX_PART_HEADERS = 8
MAX_PART_HEADER_BYTES = 4096
# Part names are field names (`image[]`, `prompt`); file names are metadata only (the bytes
# decide the format), and no file system stores a longer name than 255.
MAX_PART_NAME_CHARS = 256
MAX_FILE_NAME_CHARS = 255
# RFC 2046 bchars (plus a few characters real clients use anyway), no CR/LF.
_BOUNDARY_CHARS = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? !#$%&*;<>@\[\]^`{|}~]+$")


@dataclass(frozen=True, slots=True)
class MultipartLimits:
    max_file_bytes: int = 20 * MIB
    max_total_bytes: int = 256 * MIB
    max_files: int = 17  # 16 references and a mask
    max_fields: int = 64
    max_field_bytes: int = 64 * 1024  # a prompt is at most 32,000 characters


@dataclass(frozen=True, slots=True)
class UploadedFile:
    field: str
    filename: str | None
    content_type: str | None
    data: bytes
    index: int  # order of arrival among the files of the form


@dataclass(slots=True)
class MultipartForm:
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: list[UploadedFile] = field(default_factory=list)


class MultipartError(Exception):
    """A body we refuse; `param` names the part (`image[1]` for the second `image[]` file)."""

    def __init__(
        self, code: str, message: str, *, param: str | None = None, status: int = 400
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.status = status

    def __repr__(self) -> str:
        return (
            f"MultipartError(code={self.code!r}, message={self.message!r}, "
            f"param={self.param!r}, status={self.status})"
        )


def _invalid(message: str, param: str | None = None) -> MultipartError:
    return MultipartError("invalid_multipart", message, param=param)


# --------------------------------------------------------------------------- header values


def parse_header_params(value: str) -> tuple[str, dict[str, str]]:
    """`form-data; name="a"; filename="b"` → ("form-data", {"name": "a", "filename": "b"}).

    Parameter names are lower-cased; the first occurrence of a name wins.
    """
    head, *rest = [p.strip() for p in split_unquoted(value, ";")]
    params: dict[str, str] = {}
    for item in rest:
        key, sep, raw = item.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            continue
        params.setdefault(key, unquote(raw.strip()))
    return head.strip().lower(), params


def _rfc5987(value: str) -> str | None:
    """`UTF-8''na%C3%AFve.png` → "naïve.png"; None when it is not a valid extended value."""
    charset, sep, rest = value.partition("'")
    _language, sep2, encoded = rest.partition("'")
    if not sep or not sep2:
        return None
    try:
        return unquote_to_bytes(encoded).decode(charset.strip() or "utf-8")
    except (LookupError, UnicodeDecodeError):
        return None


# HTML forms (browsers, httpx, curl) escape these three characters in names and filenames.
_HTML5_ESCAPES = re.compile(r"%(22|0A|0D)", re.IGNORECASE)


def _html5_unescape(value: str) -> str:
    return _HTML5_ESCAPES.sub(lambda m: chr(int(m.group(1), 16)), value)


def _clean_filename(value: str) -> str | None:
    # The name is metadata only, never a path: old browsers sent C:\full\path\a.png.
    name = _html5_unescape(value).replace("\\", "/").rsplit("/", 1)[-1]
    return name or None


def _header_text(raw: bytes) -> str:
    # Clients send raw UTF-8 in quoted filenames (RFC 7578 §4.2); older ones send latin-1.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


# --------------------------------------------------------------------------- the parser


def boundary_of(content_type: str) -> bytes:
    """The boundary of a `multipart/form-data` Content-Type, or `invalid_multipart`."""
    kind, params = parse_header_params(content_type)
    if kind != "multipart/form-data":
        raise _invalid(f"expected Content-Type multipart/form-data, got '{kind or content_type}'")
    boundary = params.get("boundary", "")
    if not boundary:
        raise _invalid("the multipart/form-data Content-Type has no boundary parameter")
    if len(boundary) > _MAX_BOUNDARY or not _BOUNDARY_CHARS.match(boundary):
        raise _invalid("the multipart/form-data boundary is invalid")
    return boundary.encode("ascii")


class _Collector:
    """The parser's callbacks: collects parts and enforces the limits as bytes arrive."""

    def __init__(self, limits: MultipartLimits) -> None:
        self.limits = limits
        self.form = MultipartForm()
        self.ended = False
        self.text_count = 0
        self.total_file_bytes = 0
        self.per_name: dict[str, int] = {}
        self._reset_part()

    def _reset_part(self) -> None:
        self.headers: dict[str, str] = {}
        self.header_field = bytearray()
        self.header_value = bytearray()
        self.name = ""
        self.param = ""
        self.filename: str | None = None
        self.content_type: str | None = None
        self.is_file = False
        self.buffer = bytearray()

    # -- headers

    def on_part_begin(self) -> None:
        self._reset_part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        name = bytes(self.header_field).decode("latin-1").strip().lower()
        self.headers.setdefault(name, _header_text(bytes(self.header_value)).strip())
        self.header_field.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        disposition = self.headers.get("content-disposition")
        if disposition is None:
            raise _invalid("a part has no Content-Disposition header")
        kind, params = parse_header_params(disposition)
        if kind != "form-data":
            raise _invalid(f"a part has Content-Disposition '{kind}', expected form-data")
        name = params.get("name")
        if not name:
            raise _invalid("a part has no name in its Content-Disposition header")
        self.name = _html5_unescape(name)
        if len(self.name) > MAX_PART_NAME_CHARS:
            raise MultipartError(
                "string_above_max_length",
                f"a part's name is {len(self.name)} characters long; at most "
                f"{MAX_PART_NAME_CHARS} are accepted",
            )
        encoding = self.headers.get("content-transfer-encoding", "").lower()
        if encoding not in ("", "binary", "7bit", "8bit"):
            # RFC 7578 §4.7 deprecates it; decoding base64 here would only hide client bugs.
            raise _invalid(
                f"Content-Transfer-Encoding '{encoding}' is not supported; send the bytes "
                "as they are",
                self.name,
            )
        extended = params.get("filename*")
        if extended is not None or "filename" in params:
            # RFC 6266 §4.3: filename* wins where both are sent and it can be decoded.
            decoded = _rfc5987(extended) if extended is not None else None
            self.filename = _clean_filename(decoded if decoded is not None
                                            else params.get("filename", ""))
            self.is_file = True
            self.content_type = self.headers.get("content-type") or None
            self._begin_file()
            if self.filename is not None and len(self.filename) > MAX_FILE_NAME_CHARS:
                raise MultipartError(
                    "string_above_max_length",
                    f"{self.param}: the file name is {len(self.filename)} characters long; "
                    f"at most {MAX_FILE_NAME_CHARS} are accepted",
                    param=self.param,
                )
        else:
            self._begin_text()

    def _begin_file(self) -> None:
        count = self.per_name.get(self.name, 0)
        self.per_name[self.name] = count + 1
        base = self.name[:-2] if self.name.endswith("[]") else self.name
        # Files are named `<name>[<n>]` (image[0], image[1]…, also for a lone `image`), as
        # the later image checks name them; the single mask is just `mask`.
        self.param = base if base in ("mask", "mask_url") else f"{base}[{count}]"
        if len(self.form.files) >= self.limits.max_files:
            raise MultipartError(
                "too_many_files",
                f"too many files: at most {self.limits.max_files} may be uploaded",
                param=self.param,
            )

    def _begin_text(self) -> None:
        self.param = self.name
        self.text_count += 1
        if self.text_count > self.limits.max_fields:
            raise MultipartError(
                "too_many_fields",
                f"too many form fields: at most {self.limits.max_fields} are accepted",
                param=self.name,
            )

    # -- data

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        size = end - start
        if self.is_file:
            self.total_file_bytes += size
            if len(self.buffer) + size > self.limits.max_file_bytes:
                raise MultipartError(
                    "file_too_large",
                    f"{self.param}: the file is larger than {self.limits.max_file_bytes} bytes, "
                    "the limit per file",
                    param=self.param,
                    status=413,
                )
            if self.total_file_bytes > self.limits.max_total_bytes:
                raise MultipartError(
                    "request_too_large",
                    f"the uploaded files add up to more than {self.limits.max_total_bytes} "
                    "bytes, the limit per request",
                    param=self.param,
                    status=413,
                )
        elif len(self.buffer) + size > self.limits.max_field_bytes:
            raise MultipartError(
                "field_too_large",
                f"the form field '{self.name}' is longer than {self.limits.max_field_bytes} "
                "bytes",
                param=self.name,
            )
        self.buffer += memoryview(data)[start:end]

    def on_part_end(self) -> None:
        if self.is_file:
            self.form.files.append(
                UploadedFile(
                    field=self.name,
                    filename=self.filename,
                    content_type=self.content_type,
                    data=bytes(self.buffer),
                    index=len(self.form.files),
                )
            )
        else:
            try:
                text = self.buffer.decode("utf-8")
            except UnicodeDecodeError:
                raise _invalid(f"the form field '{self.name}' is not valid UTF-8",
                               self.name) from None
            self.form.fields.setdefault(self.name, []).append(text)
        self.buffer = bytearray()

    def on_end(self) -> None:
        self.ended = True


async def parse_multipart(
    chunks: AsyncIterator[bytes], content_type: str, limits: MultipartLimits
) -> MultipartForm:
    """Parse a `multipart/form-data` body as it streams in; MultipartError on any violation.

    Files are the parts with a `filename` (even an empty file is kept: the image validator
    reports it); every other part is a UTF-8 text field. A text field named like an image
    field (`image[]=https://…`) stays a text field: the caller decides what it means.
    """
    boundary = boundary_of(content_type)
    collector = _Collector(limits)
    try:
        parser = MultipartParser(
            boundary,
            {
                "on_part_begin": collector.on_part_begin,
                "on_part_data": collector.on_part_data,
                "on_part_end": collector.on_part_end,
                "on_header_field": collector.on_header_field,
                "on_header_value": collector.on_header_value,
                "on_header_end": collector.on_header_end,
                "on_headers_finished": collector.on_headers_finished,
                "on_end": collector.on_end,
            },
            max_header_count=MAX_PART_HEADERS,
            max_header_size=MAX_PART_HEADER_BYTES,
        )
        async for chunk in chunks:
            if chunk:
                parser.write(chunk)
            if collector.ended:
                # Anything after the closing boundary is an epilogue we would only discard;
                # not reading it keeps an endless epilogue from holding the request open.
                break
    except FormParserError as exc:
        raise _invalid(f"the multipart body is malformed: {exc}") from None
    if not collector.ended:
        raise _invalid("the multipart body ended before its closing boundary")
    return collector.form
