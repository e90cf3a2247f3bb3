"""Input images as callers give them — paths, bytes, open files, URLs — and the ones the
client cannot read, refused before anything is sent."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from imagegate.client import InputError
from imagegate.client.build import create_request, list_query
from imagegate.client.inputs import ImageFile, ImageURL, as_reference, load, load_all
from imagegate.client.multipart import encode
from tests.support.images import flat_png


def test_paths_bytes_files_and_urls(tmp_path: Path) -> None:
    data = flat_png(8, 8)
    path = tmp_path / "ref.png"
    path.write_bytes(data)
    assert load(path) == ImageFile("ref.png", data, "image/png")
    assert load(str(path)) == ImageFile("ref.png", data, "image/png")
    assert load(data) == ImageFile("image.png", data, "image/png")
    with path.open("rb") as handle:
        assert load(handle) == ImageFile("ref.png", data, "image/png")
    assert load(io.BytesIO(data)).name == "image.png"
    for url in ("https://example.com/a.png", "http://x/y", "data:image/png;base64,AAAA"):
        assert load(url) == ImageURL(url)
    assert as_reference(load(data)).startswith("data:image/png;base64,iVBORw0KGgo")
    assert load_all(None) == [] and len(load_all([data, path])) == 2
    assert len(load_all(path)) == 1


def test_unreadable_inputs_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"cannot read .*missing\.png: No such file"):
        load(tmp_path / "missing.png")
    with pytest.raises(InputError, match="binary mode"):
        load(io.StringIO("text"))  # type: ignore[arg-type]
    with pytest.raises(InputError, match="not int"):
        load(3)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="at least one image"):
        create_request("edit", fields={"prompt": "x"}, extra=None, images=[])
    with pytest.raises(InputError, match="exactly one image"):
        create_request("variation", fields={}, extra=None, images=[b"a", b"b"])


def test_requests_drop_unset_fields_and_carry_a_key() -> None:
    req = create_request("generate", fields={"prompt": "x", "size": None, "n": 2},
                         extra={"webhook_url": "https://h/"}, idempotency_key=None)
    assert req.fields == {"prompt": "x", "n": 2, "webhook_url": "https://h/"}
    assert req.idempotency_key.startswith("igc_")
    assert create_request("generate", fields={}, extra=None,
                          idempotency_key="mine").idempotency_key == "mine"


def test_list_query_is_checked() -> None:
    assert list_query(status="queued", model=None, created_after=5, created_before=None,
                      limit=10, after="img_1") == {"status": "queued", "created_after": "5",
                                                   "limit": "10", "after": "img_1"}
    with pytest.raises(InputError, match="status must be one of"):
        list_query(status="done", model=None, created_after=None, created_before=None,
                   limit=None, after=None)
    with pytest.raises(InputError, match="between 1 and 100"):
        list_query(status=None, model=None, created_after=None, created_before=None,
                   limit=101, after=None)


def test_multipart_lays_out_files_then_fields() -> None:
    body, content_type = encode([("prompt", "a \"quoted\" line"), ("n", "2")],
                                [("image[]", ImageFile("a.png", b"PNG", "image/png"))])
    boundary = content_type.split("boundary=")[1]
    assert content_type.startswith("multipart/form-data; boundary=imagegate-")
    assert body.startswith(f"--{boundary}\r\n".encode())
    assert body.index(b'name="image[]"; filename="a.png"') < body.index(b'name="prompt"')
    assert b"a \"quoted\" line" in body and body.endswith(f"--{boundary}--\r\n".encode())
