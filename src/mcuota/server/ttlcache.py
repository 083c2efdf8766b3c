"""A bounded, short-lived memory of per-device facts read on every request (a verified token's device,
the release a device may download), so a device fetching its update in 4096-byte ranges is not looked
up in the database once per range.

Every entry names the device it belongs to, so a change in this process (a token rotated, a new attempt)
drops that device's entries at once; an entry lives ``ttl`` seconds at most, so a change made by another
server process is honoured within that time. Token entries are keyed by the token's SHA-256: the raw
token is never kept.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

DEFAULT_TTL = 2.0
"""Seconds an entry lives: the longest another server process (``--workers N``) keeps honouring a
token after it was rotated or revoked."""


class TtlCache(Generic[T]):
    def __init__(self, *, size: int = 4096, ttl: float = DEFAULT_TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.ttl = ttl
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, int, T]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> T | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= self.clock():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[2]

    def put(self, key: str, owner: int, value: T) -> None:
        with self._lock:
            self._entries[key] = (self.clock() + self.ttl, owner, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def forget_owner(self, owner: int) -> None:
        """Drop every entry of ``owner`` (a device whose token or jobs changed)."""
        with self._lock:
            for key in [k for k, (_, o, _) in self._entries.items() if o == owner]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
