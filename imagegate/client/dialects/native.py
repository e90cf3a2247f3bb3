"""`dialect="imagegate"`: imagegate's native API at `/v1` — asynchronous creates
(`?async=true`) deduplicated by `Idempotency-Key`, the task object, cancel, the task list and
the event stream (the last two where the server has them). It is the base `Dialect`."""

from __future__ import annotations

from imagegate.client.dialects.base import Dialect


class Native(Dialect):
    name = "imagegate"
