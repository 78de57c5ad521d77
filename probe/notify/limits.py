"""How often a channel may be tried: the platform's rate limits, and the backoff between retries."""
from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backoff:
    """Seconds before retry n: base * 2^(n-1), capped, times 1 ± jitter (so a channel that comes
    back is not hit by every queue at the same instant)."""

    base: float = 2.0
    cap: float = 300.0
    jitter: float = 0.2
    uniform: Callable[[float, float], float] = field(default=random.uniform, compare=False, repr=False)

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        wait = min(self.cap, self.base * 2 ** max(0, attempts - 1))
        wait *= 1 + self.uniform(-self.jitter, self.jitter)
        return max(wait, retry_after or 0.0)


class RateLimiter:
    """The platform's limits, e.g. ((5, 1.0), (100, 60.0)): at most 5 a second and 100 a minute."""

    def __init__(self, limits: tuple[tuple[int, float], ...]) -> None:
        self.limits = limits
        self.sent: deque[float] = deque(maxlen=max((n for n, _ in limits), default=1))

    def wait_s(self, now: float) -> float:
        wait = 0.0
        for count, seconds in self.limits:
            if len(self.sent) >= count:
                wait = max(wait, self.sent[-count] + seconds - now)
        return wait

    def record(self, now: float) -> None:
        self.sent.append(now)
