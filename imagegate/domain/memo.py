"""`BoundedMemo`: values worked out once per key, kept up to a limit.

For hot-path results that depend only on their key (a peer address's trust, a signed path,
links bound to an origin). The keys often come from clients (peer addresses, Host headers),
so the memo never grows past its limit: once full it starts over, which costs one
recomputation per key and needs no bookkeeping on every hit, as an LRU would.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedMemo(Generic[K, V]):
    __slots__ = ("_limit", "_values")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._values: dict[K, V] = {}

    def get(self, key: K, make: Callable[[K], V]) -> V:
        """The value for `key`, made by `make(key)` the first time."""
        try:
            return self._values[key]
        except KeyError:
            pass
        value = make(key)
        if len(self._values) >= self._limit:
            self._values.clear()
        self._values[key] = value
        return value

    def __len__(self) -> int:
        return len(self._values)
