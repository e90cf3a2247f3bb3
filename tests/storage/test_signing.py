from __future__ import annotations

import time

import pytest

from imagegate.storage.signing import UrlSigner

SECRET = b"0123456789abcdef0123456789abcdef"


def _parts(path: str) -> tuple[str, int, int, str]:
    route, query = path.split("?")
    _, _, _, task, index = route.split("/")
    params = dict(p.split("=") for p in query.split("&"))
    return task, int(index), int(params["exp"]), params["sig"]


def test_roundtrip_and_tampering() -> None:
    s = UrlSigner(SECRET, 3600)
    exp = s.expiry()
    task, index, exp2, sig = _parts(s.path("img_1", 2, exp))
    assert (task, index, exp2) == ("img_1", 2, exp)
    assert s.verify(task, index, exp, sig)
    assert not s.verify("img_2", index, exp, sig)
    assert not s.verify(task, 3, exp, sig)
    assert not s.verify(task, index, exp + 1, sig)
    assert not s.verify(task, index, exp, sig[:-1] + ("A" if sig[-1] != "A" else "B"))
    assert not s.verify(task, index, exp, "")
    assert not UrlSigner(b"another-secret-of-32-bytes-long!", 3600).verify(task, index, exp, sig)


def test_expiry() -> None:
    s = UrlSigner(SECRET, 3600)
    past = int(time.time() * 1000) - 1
    sig = _parts(s.path("img_1", 0, past))[3]
    assert not s.verify("img_1", 0, past, sig)
    now = time.time()
    exp = s.expiry(now=now)
    assert exp >= (now + 3600) * 1000 and exp % 3_600_000 == 0  # on the grid: stable URLs
    assert s.expiry(now=now, not_after=now + 60) == int((now + 60) * 1000)


def test_short_secret_refused() -> None:
    with pytest.raises(ValueError):
        UrlSigner(b"short", 60)


def test_a_remembered_path_is_the_one_signed_afresh_and_the_memo_is_bounded() -> None:
    s = UrlSigner(SECRET, 3600)
    exp = s.expiry()
    first = s.path("img_1", 0, exp)
    assert s.path("img_1", 0, exp) == first
    assert s.path("img_1", 0, exp + 1) != first and s.path("img_1", 1, exp) != first
    for i in range(5000):  # more than the memo keeps
        task, index, exp_i, sig = _parts(s.path(f"img_{i}", i % 3, exp))
        assert s.verify(task, index, exp_i, sig)
    assert len(s._paths) <= 4096
    assert s.path("img_1", 0, exp) == first == UrlSigner(SECRET, 3600).path("img_1", 0, exp)
