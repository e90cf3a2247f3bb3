"""big_json.loads gives exactly what orjson.loads gives (or its error), on answers with long
base64 strings where the fast path applies and on the quirky ones where it must not;
big_json.loads_images the same once its decoded strings (`Base64Text`) are read as text."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable
from typing import Any

import orjson
import pybase64
import pytest

from imagegate.errors import ProviderError
from imagegate.providers import big_json, openai_wire

B64 = pybase64.b64encode_as_string(os.urandom(300_000))  # 400,000 characters
B64_B = pybase64.b64encode_as_string(os.urandom(100_002))


LOADERS = pytest.mark.parametrize("loads", [big_json.loads, big_json.loads_images],
                                  ids=["loads", "loads_images"])


def as_text(value: Any) -> Any:
    if isinstance(value, big_json.Base64Text):
        return value.text()
    if isinstance(value, list):
        return [as_text(v) for v in value]
    if isinstance(value, dict):
        return {k: as_text(v) for k, v in value.items()}
    return value


def same(raw: bytes, loads: Callable[[bytes], Any] = big_json.loads) -> object:
    got = loads(raw)
    assert as_text(got) == orjson.loads(raw)
    return got


@pytest.mark.parametrize("raw", [
    orjson.dumps({"created": 1, "data": [{"b64_json": B64, "revised_prompt": "a cat"}],
                  "usage": {"total_tokens": 3}}),
    # n > 1, with spaces and line breaks between the tokens
    b'{ "data" : [ {"b64_json" :\n "' + B64.encode() + b'" } ,\r\n{ "b64_json":"'
    + B64_B.encode() + b'", "revised_prompt": "b"} ] }',
    # reseller quirks: b64_json "" beside a url; a url list; a data: URL as the url
    orjson.dumps({"data": [{"b64_json": "", "url": "https://x/1.png"},
                           {"url": ["", "https://x/2.png"]},
                           {"url": "data:image/png;base64," + B64}]}),
    # the key "b64_json" as a string value and inside a prompt, before the real one
    orjson.dumps({"response_format": "b64_json", "note": 'say "b64_json": "x"',
                  "data": [{"revised_prompt": '"b64_json": "' + "Q" * 70_000,
                            "b64_json": B64}]}),
    # a long string under any key is cut the same way
    orjson.dumps({"data": [{"b64_json": B64, "other": "Z" * 80_000}]}),
])
@LOADERS
def test_same_as_orjson(raw: bytes, loads: Callable[[bytes], Any]) -> None:
    same(raw, loads)


@pytest.fixture
def orjson_inputs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the documents big_json hands to orjson from now on."""
    seen: list[int] = []
    real = orjson.loads

    def spy(data: bytes) -> object:
        seen.append(len(data))
        return real(data)

    monkeypatch.setattr(big_json.orjson, "loads", spy)
    return seen


def test_fast_path_is_taken_for_a_plain_answer(orjson_inputs: list[int],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole document never reaches orjson (the point of the module), and the answer
    still reads the same through parse_answer."""
    raw = orjson.dumps({"note": 'quoted "b64_json" and a backslash \\',
                        "data": [{"b64_json": B64}, {"b64_json": B64_B}]})
    got = big_json.loads(raw)
    assert orjson_inputs and max(orjson_inputs) < 1_000
    monkeypatch.undo()
    assert openai_wire.parse_answer(got, "c") == openai_wire.parse_answer(orjson.loads(raw),
                                                                          "c")


@pytest.mark.parametrize("raw", [
    # an escaped slash (PHP's json_encode): orjson unescapes it
    b'{"data": [{"b64_json": "' + B64.replace("/", "\\/").encode() + b'"}]}',
    # a key-like text inside a long string that is itself a value
    b'{"data": [{"revised_prompt": "x \\"b64_json\\": \\"' + b"A" * 70_000 + b'", '
    b'"b64_json": "' + B64.encode() + b'"}]}',
    # duplicate keys: orjson keeps the last
    b'{"data": [{"b64_json": "' + B64.encode() + b'", "b64_json": "' + B64_B.encode()
    + b'"}]}',
    # non-ASCII inside the long string
    b'{"data": [{"b64_json": "' + B64[:70_000].encode() + "é".encode() + b'"}]}',
])
@LOADERS
def test_quirks_fall_back_to_the_same_answer(raw: bytes, loads: Callable[[bytes], Any]) -> None:
    same(raw, loads)


@pytest.mark.parametrize("raw", [
    b'{"data": [{"b64_json": "' + B64.encode() + b'"}]',       # cut short
    b'{"data": [{"b64_json": "' + B64.encode() + b'" "x"}]}',   # not JSON after the value
    b'{"data": [{"b64_json": "' + B64.encode() + b'\n"}]}',     # a raw line break
    b'{"data": [{"b64_json": "' + B64.encode(),                # no closing quote
])
@LOADERS
def test_invalid_json_is_refused_as_orjson_refuses_it(raw: bytes,
                                                     loads: Callable[[bytes], Any]) -> None:
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(raw)
    with pytest.raises(orjson.JSONDecodeError):
        loads(raw)


def test_parse_answer_errors_are_unchanged() -> None:
    raw = orjson.dumps({"data": [{"b64_json": B64}, "not an object"]})
    with pytest.raises(ProviderError, match="not an object"):
        openai_wire.parse_answer(big_json.loads(raw), "c")


def test_loads_images_decodes_the_long_base64_strings_only() -> None:
    prose = "a lighthouse at dusk, " * 4_000  # long, but spaces are not base64
    raw = orjson.dumps({"data": [{"b64_json": B64, "revised_prompt": prose},
                                 {"url": "data:image/png;base64," + B64_B}]})
    got: Any = same(raw, big_json.loads_images)
    image = got["data"][0]["b64_json"]
    assert isinstance(image, big_json.Base64Text)
    assert image.data == pybase64.b64decode(B64) and image.text() == B64
    assert got["data"][0]["revised_prompt"] == prose
    assert isinstance(got["data"][1]["url"], str)  # a data: URL is not bare base64


def test_loads_images_builds_no_str_of_an_image(orjson_inputs: list[int]) -> None:
    raw = orjson.dumps({"data": [{"b64_json": B64}]})
    got = big_json.loads_images(raw)
    assert orjson_inputs and max(orjson_inputs) < 1_000
    assert isinstance(got["data"][0]["b64_json"], big_json.Base64Text)


def test_parse_answer_takes_decoded_images_and_reads_other_fields_as_text() -> None:
    long_prompt = "Q" * 70_000  # valid base64 by chance: decoded by loads_images
    raw = orjson.dumps({"data": [{"b64_json": B64, "revised_prompt": long_prompt},
                                 {"b64_json": "", "url": "https://x/1.png"}]})
    items, _usage = openai_wire.parse_answer(big_json.loads_images(raw), "c")
    assert isinstance(items[0].value, big_json.Base64Text)
    assert items[0].value.data == pybase64.b64decode(B64)
    assert items[0].revised_prompt == long_prompt
    assert items[1].value == "https://x/1.png"


@LOADERS
def test_nothing_keeps_the_answer_once_its_result_is_gone(
        loads: Callable[[bytes], Any]) -> None:
    """No reference cycle holds the answer until the garbage collector's next pass (a
    recursive closure did: in a burst of 2 MiB answers, gigabytes)."""
    raw = orjson.dumps({"data": [{"b64_json": B64}, {"b64_json": B64_B}]})
    before = sys.getrefcount(raw)
    gc.disable()
    try:
        result = loads(raw)
        assert isinstance(result, dict)
        del result
        assert sys.getrefcount(raw) == before
    finally:
        gc.enable()
