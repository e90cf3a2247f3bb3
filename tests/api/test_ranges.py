"""`Range` headers as `/p/img` reads them: one byte range or the whole body."""

from __future__ import annotations

import pytest

from imagegate.api.ranges import ByteRange, RangeNotSatisfiable, requested_range


@pytest.mark.parametrize(("header", "size", "expected"), [
    ("bytes=0-9", 100, ByteRange(0, 10)),
    ("bytes=90-", 100, ByteRange(90, 100)),
    ("bytes=-10", 100, ByteRange(90, 100)),
    ("bytes=-500", 100, ByteRange(0, 100)),  # a suffix longer than the body: all of it
    ("bytes=50-5000", 100, ByteRange(50, 100)),  # past the end: clipped
    ("bytes=99-99", 100, ByteRange(99, 100)),
    (" bytes = 1 - 2 ", 100, ByteRange(1, 3)),
])
def test_a_single_range(header: str, size: int, expected: ByteRange) -> None:
    assert requested_range(header, size) == expected


@pytest.mark.parametrize("header", [
    None, "", "bytes=", "bytes=-", "bytes=5-1", "bytes=0-1,4-5", "items=0-1", "bytes=a-b",
    "bytes=" + "9" * 20 + "-",
])
def test_no_range_means_the_whole_body(header: str | None) -> None:
    assert requested_range(header, 100) is None


@pytest.mark.parametrize(("header", "size"), [
    ("bytes=100-", 100), ("bytes=100-200", 100), ("bytes=-0", 100), ("bytes=0-", 0),
    ("bytes=-5", 0),
])
def test_past_the_end_is_not_satisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        requested_range(header, size)


def test_if_range_must_name_this_image() -> None:
    assert requested_range("bytes=0-1", 10, if_range='"abc"', etag='"abc"') == ByteRange(0, 2)
    assert requested_range("bytes=0-1", 10, if_range='"old"', etag='"abc"') is None
    assert requested_range("bytes=0-1", 10, if_range="Wed, 21 Oct 2015 07:28:00 GMT",
                           etag='"abc"') is None


def test_content_range() -> None:
    assert ByteRange(10, 20).content_range(100) == "bytes 10-19/100"
    assert ByteRange(10, 20).length == 10
