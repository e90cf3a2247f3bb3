"""Task states and the task record as the core sees it."""

from __future__ import annotations

import enum
import os
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class TaskStatus(enum.StrEnum):
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED)


def new_id(prefix: str) -> str:
    """A ULID-style id: 48-bit ms timestamp + 80 random bits, Crockford base32.

    Time-ordered ids keep the task table's primary key index append-mostly.
    """
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return prefix + "".join(reversed(chars))


def new_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def new_owner_id() -> str:
    """A lease owner's name (a worker, a webhook dispatcher): host and pid say who holds a
    lease when an operator looks at the table; the random part keeps two owners in one
    process apart. Hex, not URL-safe base64: a `-` in it would make the pid unreadable
    (`<host>-<pid>-<hex>` splits from the right)."""
    return f"{socket.gethostname()[:24]}-{os.getpid()}-{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True)
class StoredImage:
    """One result image as the task row records it (bytes live in the BlobStore)."""

    key: str
    content_type: str
    size: int
    etag: str
    width: int
    height: int
    revised_prompt: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "content_type": self.content_type,
            "size": self.size,
            "etag": self.etag,
            "width": self.width,
            "height": self.height,
            "revised_prompt": self.revised_prompt,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> StoredImage:
        return cls(**d)


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    key_id: str
    status: TaskStatus
    progress: int
    operation: str
    model: str
    provider: str | None
    request: dict[str, Any]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    created_at: float
    started_at: float | None
    completed_at: float | None
    expires_at: float
    lease_owner: str | None
    lease_expires_at: float | None
    attempts: int
    upstream_task_id: str | None
    # Billing (micro-units): price per image, the hold placed at submit, the amount charged
    # once settled; charge_state is none | held | settled | refunded.
    unit_price: int = 0
    hold_amount: int = 0
    charged_amount: int = 0
    charge_state: str = "none"
    # When the task is cancelled if not finished (`Cancel-After`, `deadline_seconds`).
    deadline_at: float | None = None

    @property
    def images(self) -> list[StoredImage]:
        if not self.result:
            return []
        return [StoredImage.from_json(i) for i in self.result.get("images", [])]
