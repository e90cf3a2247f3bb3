"""`loads`: `orjson.loads` for upstream answers that carry whole images as base64 strings.

A 2 MiB image answered as `b64_json` is a 2.9 MB JSON document that is 99.9% one string, and
parsing it (escape scan, UTF-8 check, building the str) was ~16% of a relayed request's CPU.
Here the long strings (in practice `b64_json` values and `data:` URLs) are located with
`bytes.find` (memchr), cut out, the few hundred bytes left are parsed by orjson, and each cut
string is put back as a str built straight from its ASCII bytes: ~1 ms instead of ~4.7 ms for
2.9 MB (most of the difference is the parser's pass and its fresh 2.9 MB allocations).

The result is always what `orjson.loads(raw)` gives, or its error. The fast path is taken
only when it provably is: each cut string is replaced by a unique token (a random nonce per
call, so no document can hold one by chance), and after the parse every token must stand as
a whole string value exactly once — which means the cut bytes were the whole contents of a
JSON string in the original too (the prefix up to each string is the same, and the cut bytes
hold no quote or backslash, so the tokenizer reads them the same way). Anything else (an
escape, a line break, a key that was really inside another string, non-ASCII) falls back to
parsing the original whole.

`loads_images` goes one step further for answers whose long strings are images: a cut string
that is valid base64 comes back decoded, as a `Base64Text` (its bytes, and the text itself on
demand). Decoding with validation proves the string holds only base64's alphabet, so it
needs none of the scans for escapes and control characters, and no str of it is ever built:
~0.8 ms and a 2.9 MB copy less per 2 MiB image. A long string that does not decode is
checked and returned as `loads` would (a str, or the whole parsed by orjson).
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson
import pybase64

# Below this a string is parsed as part of the document: cutting it saves nothing.
_BIG = 64 * 1024
# Bytes that change how a JSON string reads (escapes) or that JSON refuses raw inside one
# but base64 decoders would skip as whitespace; their presence sends the answer to orjson.
_SPECIAL = (b"\\", b"\n", b"\r", b"\t", b"\x0b", b"\x0c")


class Base64Text:
    """A long JSON string that is valid base64, decoded (`data`); `text()` is the string."""

    __slots__ = ("_view", "data")

    def __init__(self, data: bytes, view: memoryview) -> None:
        self.data = data
        self._view = view

    def text(self) -> str:
        return str(self._view, "ascii")


def loads(raw: bytes) -> Any:
    """`orjson.loads(raw)`, faster when `raw` holds long strings."""
    return _loads(raw, decode=False)


def loads_images(raw: bytes) -> Any:
    """`orjson.loads(raw)`, except that its long strings that are valid base64 come back as
    `Base64Text`."""
    return _loads(raw, decode=True)


def _loads(raw: bytes, *, decode: bool) -> Any:
    if len(raw) < _BIG:
        return orjson.loads(raw)
    spans = _big_strings(raw, checked=not decode)
    if not spans:
        return orjson.loads(raw)
    nonce = secrets.token_hex(8)
    tokens: dict[str, tuple[int, int]] = {}
    parts: list[bytes] = []
    pos = 0
    for n, (start, end) in enumerate(spans):
        token = f"imagegate-cut-{nonce}-{n}"
        tokens[token] = (start, end)
        parts.append(raw[pos:start])
        parts.append(token.encode("ascii"))
        pos = end
    parts.append(raw[pos:])
    try:
        small = orjson.loads(b"".join(parts))
    except orjson.JSONDecodeError:
        return orjson.loads(raw)  # the same answer or the same error as without the cut
    restore = _Restore(raw, tokens, nonce, decode=decode)
    try:
        result = restore(small)
    except (_NotWhole, UnicodeDecodeError):
        return orjson.loads(raw)
    if len(restore.placed) != len(tokens):
        return orjson.loads(raw)
    return result


class _Restore:
    """Puts the cut strings back into the parsed document. A class, not a recursive closure:
    a closure that calls itself is a reference cycle (function -> its cell -> function), and
    this one held the answer's 2.9 MB until the garbage collector's next full pass — in a
    burst of 2 MiB answers, gigabytes."""

    __slots__ = ("_decode", "_nonce", "_raw", "_tokens", "_view", "placed")

    def __init__(self, raw: bytes, tokens: dict[str, tuple[int, int]], nonce: str, *,
                 decode: bool) -> None:
        self._raw, self._tokens, self._nonce, self._decode = raw, tokens, nonce, decode
        self._view = memoryview(raw)
        self.placed: set[str] = set()

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            if value in self._tokens and value not in self.placed:
                self.placed.add(value)
                return self._cut(*self._tokens[value])
            if self._nonce in value:
                raise _NotWhole
            return value
        if isinstance(value, list):
            return [self(v) for v in value]
        if isinstance(value, dict):
            if any(self._nonce in k for k in value):
                raise _NotWhole
            return {k: self(v) for k, v in value.items()}
        return value

    def _cut(self, start: int, end: int) -> str | Base64Text:
        span = self._view[start:end]
        if self._decode:
            try:
                return Base64Text(pybase64.b64decode(span, validate=True), span)
            except ValueError:  # binascii.Error is one
                if _special(self._raw, start, end):
                    raise _NotWhole from None
        return str(span, "ascii")


class _NotWhole(Exception):
    """A token found anywhere but as a whole string value: the cut was not a string."""


def _big_strings(raw: bytes, *, checked: bool = True) -> list[tuple[int, int]]:
    """(start, end) of the contents of every string of at least `_BIG` bytes (`checked`:
    holding none of `_SPECIAL`), in order. Strings are found quote to quote with
    `bytes.find` (memchr), so a 2.9 MB base64 string costs one scan at memory speed: outside
    strings JSON has no quotes, and inside one a quote is escaped (an odd number of
    backslashes before it)."""
    spans: list[tuple[int, int]] = []
    pos = 0
    while (quote := raw.find(b'"', pos)) >= 0:
        start = quote + 1
        end = raw.find(b'"', start)
        while end > 0 and _escaped(raw, end):
            end = raw.find(b'"', end + 1)
        if end < 0:
            break  # not JSON: orjson will say so
        pos = end + 1
        if end - start >= _BIG and not (checked and _special(raw, start, end)):
            spans.append((start, end))
    return spans


def _special(raw: bytes, start: int, end: int) -> bool:
    return any(raw.find(c, start, end) >= 0 for c in _SPECIAL)


def _escaped(raw: bytes, quote: int) -> bool:
    backslashes = 0
    while quote - 1 - backslashes >= 0 and raw[quote - 1 - backslashes] == 0x5C:
        backslashes += 1
    return backslashes % 2 == 1
