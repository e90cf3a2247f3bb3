"""`form_to_request`: a parsed multipart form → the JSON-shaped body normalization reads."""

from __future__ import annotations

import pytest

from imagegate.api.edits import form_to_request, image_field
from imagegate.api.multipart import MultipartForm, UploadedFile
from imagegate.errors import InvalidRequestError


def form(**fields: str) -> MultipartForm:
    return MultipartForm(fields={k: [v] for k, v in fields.items()})


@pytest.mark.parametrize(("text", "value"), [("2", 2), ("0", 0), ("-1", -1), ("100", 100)])
def test_integer_fields_in_canonical_form_become_integers(text: str, value: int) -> None:
    body, _, _ = form_to_request(form(n=text, output_compression=text, partial_images=text))
    assert body == {"n": value, "output_compression": value, "partial_images": value}


@pytest.mark.parametrize("text", ["+2", "02", " 2", "2 ", "1_0", "２", "𝟐", "²", "-0", "2.0",
                                  "9" * 19])
def test_other_spellings_stay_text(text: str) -> None:
    # Left as text, normalization refuses them as a wrong type (400 naming the field).
    body, _, _ = form_to_request(form(n=text))
    assert body == {"n": text}


def test_numbered_image_fields_are_ascii() -> None:
    assert image_field("image_1") == image_field("image_12") == "image"
    for name in ("image_１", "image_01", "image_+1", "image_²", "image_"):
        assert image_field(name) is None
    upload = UploadedFile(field="image_１", filename="a.png", content_type=None, data=b"x",
                          index=0)
    with pytest.raises(InvalidRequestError) as err:
        form_to_request(MultipartForm(files=[upload]))
    assert (err.value.code, err.value.param) == ("unknown_file_field", "image_１")
