"""Caps on the strings of a create request that normalization reads (the `Limits` table of
docs/api.md lists these and every other cap on client input; tests/test_docs.py keeps the
two in step).

Nothing a client sends is kept or echoed unbounded: a 95 MB `user` was once accepted, stored
in the task row and re-read on every poll of that task. The enumerated fields (`size`,
`quality`, …) could never be valid at these lengths; their caps only keep an absurd value out
of regular expressions, error messages and the database. `prompt` is capped per model by the
catalog (`max_prompt_chars`), `webhook_url` by `net/urls.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# Characters per field; longer is a 400 `string_above_max_length` naming the field.
FIELD_CHARS: Mapping[str, int] = MappingProxyType({
    "model": 256,
    "size": 32,
    "resolution": 16,
    "output_format": 16,
    "background": 16,
    "quality": 32,
    "moderation": 16,
    "style": 32,
    "user": 256,
    "response_format": 16,
})

# An http(s) reference URL. Browsers and most servers stop near 8 KiB; a presigned S3 URL
# with a session token stays well below it. (`data:` URLs and base64 are capped by bytes,
# `max_reference_bytes`, before they are decoded.)
REFERENCE_URL_CHARS = 8192

# Unknown fields are ignored, and their names recorded with the task so an operator can see
# what clients send: the first this many names, each cut to this many characters.
IGNORED_FIELDS = 64
IGNORED_FIELD_CHARS = 64
