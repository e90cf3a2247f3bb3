"""A `multipart/form-data` body built in memory, in the order given: the one place a body's
bytes are laid out, so both drivers send the same thing (and a body with only text fields
is still multipart, which a form-encoding HTTP library would not make it)."""

from __future__ import annotations

import secrets

from imagegate.client.inputs import ImageFile


def encode(fields: list[tuple[str, str]], files: list[tuple[str, ImageFile]]
           ) -> tuple[bytes, str]:
    """(body, Content-Type): the files first, in order, then the text fields."""
    boundary = f"imagegate-{secrets.token_hex(16)}"
    parts: list[bytes] = []
    for name, image in files:
        head = (f'Content-Disposition: form-data; name="{_quote(name)}"; '
                f'filename="{_quote(image.name)}"\r\nContent-Type: {image.content_type}')
        parts.append(_part(boundary, head, image.data))
    for name, value in fields:
        head = f'Content-Disposition: form-data; name="{_quote(name)}"'
        parts.append(_part(boundary, head, value.encode()))
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _part(boundary: str, head: str, data: bytes) -> bytes:
    return f"--{boundary}\r\n{head}\r\n\r\n".encode() + data + b"\r\n"


def _quote(value: str) -> str:
    # As browsers do (WHATWG): quotes and line breaks percent-encoded, the rest UTF-8.
    return value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
