"""Recent events per key over a sliding window, with a bounded number of keys.

Shared by the subscribe form's limits and the admin API's failed-token limit: both count
per client address, and a crowd of addresses must not grow memory without bound."""
from __future__ import annotations

import time
from collections import OrderedDict, deque


class SlidingWindow:
    def __init__(self, window_s: float, keys: int = 100_000) -> None:
        self.window_s, self.keys = window_s, keys
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def recent(self, key: str, now: float | None = None) -> deque[float]:
        """The key's events within the window (append to it to count one more)."""
        now = now if now is not None else time.monotonic()
        recent = self._seen.pop(key, deque())
        while recent and recent[0] <= now - self.window_s:
            recent.popleft()
        self._seen[key] = recent  # most recent keys last; the oldest are forgotten first
        while len(self._seen) > self.keys:
            self._seen.popitem(last=False)
        return recent
