"""A key's settings: the checks shared by create and update (the CLI and the admin API both
land here), the "leave it as it is" marker that lets an update tell "unset" from "clear"
(None), and the public JSON view of a key."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from imagegate.accounts.money import format_amount
from imagegate.domain import webhook_events
from imagegate.errors import InvalidRequestError
from imagegate.net.urls import validate_webhook_url

if TYPE_CHECKING:
    from imagegate.accounts.keys import ApiKey

MAX_NAME = 200
# A key's own blocklist: entries are checked per request, so the list is bounded.
MAX_BLOCKLIST_ENTRIES = 10_000
MAX_BLOCKLIST_ENTRY = 1_000


class Unset:
    """Marks an update argument that was not given (None means "clear this limit")."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset()


def normalize_models(models: Sequence[str] | None) -> tuple[str, ...] | None:
    """The allowed-model list without blanks or repeats (order kept); None = every model."""
    if models is None:
        return None
    if isinstance(models, str) or not all(isinstance(m, str) for m in models):
        raise InvalidRequestError("models must be a list of model names", param="models")
    out = tuple(dict.fromkeys(m.strip() for m in models if m.strip()))
    if not out:
        # An empty list would lock the key out of everything: almost surely a mistake.
        raise InvalidRequestError("models must name at least one model (or be null for all)",
                                  param="models")
    return out


def _positive(value: Any, param: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequestError(f"{param} must be a whole number of at least 1 (or null)",
                                  param=param)
    return value


def normalize_blocklist(entries: Any, param: str = "moderation_blocklist"
                        ) -> tuple[str, ...] | None:
    """A blocklist as stored: a list of entry lines, blanks dropped, order kept; None = none.
    Only the shape is checked here: what an entry means (a valid `re:` pattern) is the
    moderation package's to judge, and the admin API and the CLI ask it before storing."""
    if entries is None:
        return None
    if isinstance(entries, str) or not isinstance(entries, list | tuple) or not all(
            isinstance(e, str) for e in entries):
        raise InvalidRequestError(f"{param} must be a list of strings (or null)", param=param)
    out = tuple(e.strip() for e in entries if e.strip())
    if len(out) > MAX_BLOCKLIST_ENTRIES:
        raise InvalidRequestError(f"{param} has {len(out)} entries; at most "
                                  f"{MAX_BLOCKLIST_ENTRIES}", param=param)
    for i, entry in enumerate(out):
        if len(entry) > MAX_BLOCKLIST_ENTRY:
            raise InvalidRequestError(f"{param}[{i}] is longer than {MAX_BLOCKLIST_ENTRY} "
                                      "characters", param=f"{param}[{i}]")
    return out


def clean_fields(**given: Any) -> dict[str, Any]:
    """Column values for the given settings, validated; UNSET arguments are left out.
    Accepts name, models, rpm, concurrency, expires_at, webhook_url, moderation_blocklist,
    allow_low_moderation, webhook_events."""
    out: dict[str, Any] = {}
    for field, value in given.items():
        if isinstance(value, Unset):
            continue
        if field == "name":
            if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME:
                raise InvalidRequestError(f"name must be 1 to {MAX_NAME} characters",
                                          param="name")
            out["name"] = value.strip()
        elif field == "models":
            models = normalize_models(value)
            out["allowed_models"] = None if models is None else json.dumps(list(models))
        elif field in ("rpm", "concurrency"):
            out[field] = _positive(value, field)
        elif field == "expires_at":
            if value is not None and (isinstance(value, bool) or
                                      not isinstance(value, int | float) or
                                      not math.isfinite(value) or value <= 0):
                raise InvalidRequestError("expires_at must be a time (epoch seconds) or null",
                                          param="expires_at")
            out["expires_at"] = None if value is None else float(value)
        elif field == "webhook_url":
            # Shape only (http(s), a host, no credentials); addresses are judged per delivery.
            out["webhook_url"] = None if value is None else validate_webhook_url(value)
        elif field == "moderation_blocklist":
            entries = normalize_blocklist(value)
            out[field] = None if entries is None else json.dumps(list(entries),
                                                                 ensure_ascii=False)
        elif field == "allow_low_moderation":
            if not isinstance(value, bool):
                raise InvalidRequestError("allow_low_moderation must be true or false",
                                          param=field)
            out[field] = value
        elif field == "webhook_events":
            # A tuple from Python callers; anything else but a list or string is refused.
            events = webhook_events.parse(list(value) if isinstance(value, tuple) else value)
            out[field] = None if events is None else json.dumps(list(events))
        else:  # pragma: no cover - a programming error, not input
            raise TypeError(f"unknown key field {field}")
    return out


def key_json(key: ApiKey) -> dict[str, Any]:
    """A key as the admin API and `keys list --json` show it: never its hash or secret."""
    if not key.active:
        status = "revoked"
    elif key.expired:
        status = "expired"
    else:
        status = "active"
    return {
        "object": "api_key",
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "status": status,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
        "expires_at": key.expires_at,
        "models": None if key.allowed_models is None else list(key.allowed_models),
        "rpm": key.rpm,
        "concurrency": key.concurrency,
        "balance": None if key.balance is None else format_amount(key.balance),
        "active_tasks": key.active_tasks,
        "webhook_url": key.webhook_url,
        "moderation_blocklist": None if key.moderation_blocklist is None
        else list(key.moderation_blocklist),
        "allow_low_moderation": key.allow_low_moderation,
        "webhook_events": list(key.webhook_events or webhook_events.DEFAULT),
    }
