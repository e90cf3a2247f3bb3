"""The services the client speaks to, by name (see base.py for what a dialect is)."""

from __future__ import annotations

from imagegate.client.dialects.apimart import Apimart
from imagegate.client.dialects.base import CreateRequest, Dialect, Operation
from imagegate.client.dialects.dimilinks import Dimilinks
from imagegate.client.dialects.native import Native
from imagegate.client.dialects.openai_images import OpenAIImages
from imagegate.client.errors import InputError

DIALECTS: dict[str, type[Dialect]] = {"imagegate": Native, "dimilinks": Dimilinks,
                                      "apimart": Apimart, "openai": OpenAIImages}


def dialect_named(name: str) -> Dialect:
    cls = DIALECTS.get(name)
    if cls is None:
        raise InputError(f"unknown dialect {name!r}: one of {', '.join(DIALECTS)}")
    return cls()


__all__ = ["DIALECTS", "CreateRequest", "Dialect", "Operation", "dialect_named"]
