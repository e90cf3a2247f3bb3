"""`dialect="dimilinks"`: the 000/001 seeds' service. Creates are asynchronous with
`?async=true` (answering `{created, task_id, data: []}`), tasks are read at
`GET /v1/tasks/{id}` in imagegate's shape (imagegate grew from it), results are relative
`/p/img/…` paths. No cancel, no task list, no event stream, no variations, and nothing says
it deduplicates creates, so a create is only repeated when it surely did not happen.

Edits: files alone go up as the 001 seed's multipart `POST /v1/images/edits`; a reference
given as a URL makes it the 000 seed's image-to-image generation instead (`image_urls`, with
any files as `data:` URLs, and `mask_url`), which is the form that takes URLs.
"""

from __future__ import annotations

from imagegate.client.dialects.base import (
    ASYNC,
    CreateRequest,
    Dialect,
    edit_parts,
    multipart_call,
)
from imagegate.client.inputs import as_reference
from imagegate.client.steps import Call


class Dimilinks(Dialect):
    name = "dimilinks"
    can_cancel = False
    can_list = False
    has_events = False
    can_vary = False
    dedupes_creates = False

    def create_call(self, req: CreateRequest) -> Call:
        headers = {"Idempotency-Key": req.idempotency_key}
        if req.operation == "edit" and not req.has_urls:
            return multipart_call("/v1/images/edits", req.fields, edit_parts(req, "image[]"),
                                  params=ASYNC, headers=headers, retry="create")
        body = dict(req.fields)
        if req.images:
            body["image_urls"] = [as_reference(image) for image in req.images]
        if req.mask is not None:
            body["mask_url"] = as_reference(req.mask)
        return Call("POST", "/v1/images/generations", params=ASYNC, json=body, headers=headers,
                    retry="create")
