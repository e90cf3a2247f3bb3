"""Reference images and masks: the one place they turn from client input into task blobs.

`prepare_references` is called by every surface after normalization and before the task is
created. Fetching URLs (through the SSRF guard), decoding data URLs and base64, sniffing and
validating the images and storing them as blobs of the task plug in here.
"""

from __future__ import annotations

from imagegate.domain.request import ImageRequest
from imagegate.errors import InvalidRequestError


async def prepare_references(request: ImageRequest) -> ImageRequest:
    if not request.references and request.mask is None:
        return request
    first = request.references[0] if request.references else request.mask
    assert first is not None
    raise InvalidRequestError(
        "Reference images are not supported by this server version yet; send a text-only "
        "request",
        param=f"{first.field}[{first.index}]",
        code="unsupported_value",
    )
