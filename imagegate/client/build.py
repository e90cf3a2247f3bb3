"""The arguments of the public methods, turned into what the operations take (shared by
`Client` and `AsyncClient`, so both accept exactly the same)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from imagegate.client.dialects import CreateRequest, Operation
from imagegate.client.errors import InputError
from imagegate.client.inputs import ImageInput, load, load_all
from imagegate.client.models import STATUSES


def create_request(operation: Operation, *, fields: Mapping[str, Any],
                   extra: Mapping[str, Any] | None, images: ImageInput |
                   Sequence[ImageInput] | None = None, mask: ImageInput | None = None,
                   idempotency_key: str | None = None) -> CreateRequest:
    body = {k: v for k, v in {**fields, **(extra or {})}.items() if v is not None}
    loaded = load_all(images)
    if operation == "edit" and not loaded:
        raise InputError("an edit needs at least one image")
    if operation == "variation" and len(loaded) != 1:
        raise InputError("a variation takes exactly one image")
    return CreateRequest(operation, body, loaded,
                         load(mask, name="mask") if mask is not None else None,
                         idempotency_key or f"igc_{uuid.uuid4().hex}")


def list_query(*, status: str | None, model: str | None, created_after: int | None,
               created_before: int | None, limit: int | None,
               after: str | None) -> dict[str, str]:
    if status is not None and status not in STATUSES:
        raise InputError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    if limit is not None and not 1 <= limit <= 100:
        raise InputError("limit must be between 1 and 100")
    query = {"status": status, "model": model, "created_after": created_after,
             "created_before": created_before, "limit": limit, "after": after}
    return {k: str(v) for k, v in query.items() if v is not None}
