"""The vocabulary between the client's logic and its two drivers (sync and async).

Every operation (create, wait, list, events, download, …) is written once, in `ops.py`, as a
generator that yields *steps* — send this request, sleep this long, hand this event to the
caller, open / read / close an event stream — and receives what each step produced. The sync
`Client` runs those steps with `httpx.Client` and `time.sleep`, the `AsyncClient` with
`httpx.AsyncClient` and `asyncio.sleep`. So retries, `Retry-After`, polling, event-stream
resumption and every dialect's mapping exist once, and both clients behave the same.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, TypeVar

from imagegate.client.models import TaskEvent

# safe: reading, or an operation the server makes idempotent (cancel) — retried on any
# transient failure. create_keyed: a create the server deduplicates by its Idempotency-Key —
# retried like a read. create: a create the server would repeat — retried only when it
# surely did not happen (the connection was never made, or a 429 refused it).
RetryKind = Literal["safe", "create_keyed", "create"]


@dataclass(frozen=True)
class Call:
    method: str
    url: str  # a path under the base URL ("/v1/…") or an absolute URL
    params: dict[str, str] | None = None
    json: Any = None
    content: bytes | None = None  # a body already encoded (multipart); its type in headers
    headers: dict[str, str] = field(default_factory=dict)
    auth: bool = True  # send the API key (never to another origin)
    retry: RetryKind = "safe"
    timeout: float | None = None  # None: the client's own


@dataclass(frozen=True)
class Answer:
    """An HTTP answer, driver-neutral. For an opened stream `content` is empty on success
    (the lines come through `NextLine`) and the whole body on an error status."""

    status: int
    headers: dict[str, str]  # lower-case names
    content: bytes
    url: str


class TransportFailure(Exception):
    """No answer: thrown into an operation by its driver. `sent` is False when the request
    surely never reached the server (the connection was refused or never made)."""

    def __init__(self, detail: str, *, sent: bool, timeout: bool = False) -> None:
        self.detail, self.sent, self.timeout = detail, sent, timeout
        super().__init__(detail)


@dataclass(frozen=True)
class Send:
    call: Call


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Emit:
    event: TaskEvent


@dataclass(frozen=True)
class OpenStream:
    call: Call


@dataclass(frozen=True)
class NextLine:
    """Read one line of the open stream: a str without its ending, or None at the end."""


@dataclass(frozen=True)
class CloseStream:
    pass


Step: TypeAlias = Send | Sleep | Emit | OpenStream | NextLine | CloseStream
T = TypeVar("T")
Op: TypeAlias = Generator[Step, Any, T]
