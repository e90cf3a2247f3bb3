"""`dialect="openai"`: any OpenAI-compatible Images API (OpenAI itself, resellers, imagegate's
`/openai/v1`). Synchronous only: a create waits for the images and answers them, so there is
no task to wait for, cancel, list or follow; the client hands back a `succeeded` Task with a
made-up id. Edits are multipart (or, when a reference is a URL, OpenAI's JSON form
`images: [{image_url}]`); variations are multipart. A create is never repeated unless it
surely did not happen: each one is billed.
"""

from __future__ import annotations

import secrets

from imagegate.client.dialects.base import (
    CreateRequest,
    Dialect,
    edit_parts,
    json_object,
    multipart_call,
)
from imagegate.client.errors import UnexpectedResponseError
from imagegate.client.inputs import as_reference
from imagegate.client.models import Task, opt_int
from imagegate.client.steps import Answer, Call

# A synchronous image can take minutes; imagegate's own /openai/v1 answers within
# sync_wait_seconds (default 600), so wait a little longer than that.
SYNC_TIMEOUT = 660.0


class OpenAIImages(Dialect):
    name = "openai"
    tasks = False
    can_cancel = False
    can_list = False
    has_events = False
    can_vary = True
    dedupes_creates = False

    def create_call(self, req: CreateRequest) -> Call:
        headers = {"Idempotency-Key": req.idempotency_key}
        if req.operation == "generate":
            return Call("POST", "/v1/images/generations", json=req.fields, headers=headers,
                        retry="create", timeout=SYNC_TIMEOUT)
        if req.operation == "edit" and req.has_urls:
            body = dict(req.fields)
            body["images"] = [{"image_url": as_reference(i)} for i in req.images]
            if req.mask is not None:
                body["mask"] = {"image_url": as_reference(req.mask)}
            return Call("POST", "/v1/images/edits", json=body, headers=headers,
                        retry="create", timeout=SYNC_TIMEOUT)
        if req.operation == "edit":
            # As the openai SDK sends them: one image as `image`, several as `image[]`.
            name = "image[]" if len(req.images) > 1 else "image"
            return multipart_call("/v1/images/edits", req.fields, edit_parts(req, name),
                                  headers=headers, retry="create", timeout=SYNC_TIMEOUT)
        return multipart_call("/v1/images/variations", req.fields,
                              [("image", i) for i in req.images], headers=headers,
                              retry="create", timeout=SYNC_TIMEOUT)

    def read_created(self, answer: Answer) -> Task:
        body = json_object(answer)
        if not isinstance(body.get("data"), list):
            raise UnexpectedResponseError(f"{answer.url} answered without `data`: "
                                          f"{answer.content[:200]!r}")
        task_id = body.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            task_id = f"sync_{secrets.token_hex(8)}"
        created = opt_int(body.get("created"))
        return Task(id=task_id, status="succeeded", progress=100, created_at=created,
                    completed_at=created, result=body, raw=body)
