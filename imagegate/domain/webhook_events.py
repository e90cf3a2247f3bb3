"""Which task events a webhook receiver is sent: `webhook_events` ⊆ started, progress,
completed, per request or per key. `completed` (the end: succeeded, failed or cancelled) is
always included, so a receiver can never be left without the outcome it waits for."""

from __future__ import annotations

from typing import Any

from imagegate.errors import InvalidRequestError

STARTED = "started"
PROGRESS = "progress"
COMPLETED = "completed"
CHOICES = (STARTED, PROGRESS, COMPLETED)
DEFAULT = (COMPLETED,)

# A progress webhook at most this often per task: a receiver is told the task moves, not
# sent every percent.
PROGRESS_INTERVAL_SECONDS = 2.0


def parse(value: Any, param: str = "webhook_events") -> tuple[str, ...] | None:
    """The events named by `value` (a list of names, or one comma-separated string as a
    form field sends it) in canonical order with `completed` added; None for null/absent."""
    if value is None:
        return None
    if isinstance(value, str):
        names: list[Any] = [part.strip() for part in value.split(",")]
    elif isinstance(value, list):
        names = value
    else:
        raise InvalidRequestError(f"'{param}' must be a list of event names ({', '.join(CHOICES)})",
                                  param=param)
    for name in names:
        if name not in CHOICES:
            raise InvalidRequestError(
                f"'{param}' has an unknown event {name!r}; expected any of {', '.join(CHOICES)}",
                param=param)
    wanted = {*names, COMPLETED}
    return tuple(c for c in CHOICES if c in wanted)
