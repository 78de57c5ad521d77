"""Rollup bucket boundaries: UTC hours, and days in the status page's time zone.

Hourly buckets are UTC hours. Daily buckets are the page's local calendar days (so
a day on the 90-day bar means what a visitor there calls a day); a DST day is 23 or
25 hours long. All times are integer milliseconds since the epoch.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

HOUR_MS = 3_600_000
DAY_MS = 86_400_000


def hour_start(ts_ms: int) -> int:
    return ts_ms - ts_ms % HOUR_MS


class Calendar:
    def __init__(self, tz: ZoneInfo | str = "UTC") -> None:
        self.tz = ZoneInfo(tz) if isinstance(tz, str) else tz
        self._day = (0, 0)  # the last (start, end) looked up: most lookups hit it

    @property
    def name(self) -> str:
        return self.tz.key

    def day_bounds(self, ts_ms: int) -> tuple[int, int]:
        start, end = self._day
        if start <= ts_ms < end:
            return self._day
        local = datetime.fromtimestamp(ts_ms / 1000, self.tz).date()
        self._day = (self.local_midnight(local), self.local_midnight(local + timedelta(days=1)))
        return self._day

    def day_start(self, ts_ms: int) -> int:
        return self.day_bounds(ts_ms)[0]

    def local_midnight(self, day: date) -> int:
        return int(datetime(day.year, day.month, day.day, tzinfo=self.tz).timestamp() * 1000)

    def date_of(self, ts_ms: int) -> date:
        return datetime.fromtimestamp(ts_ms / 1000, self.tz).date()

    def days_hour_aligned(self) -> bool:
        """Whether local midnights fall on UTC hour boundaries (false for e.g. Asia/Kolkata)."""
        probe_days = (date(2026, 1, 15), date(2026, 7, 15))
        return all(self.local_midnight(d) % HOUR_MS == 0 for d in probe_days)

    def month_bounds(self, year: int, month: int) -> tuple[int, int]:
        nxt = date(year + month // 12, month % 12 + 1, 1)
        return self.local_midnight(date(year, month, 1)), self.local_midnight(nxt)
