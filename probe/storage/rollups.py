"""Rollup arithmetic, the same for every engine: what a batch of results adds to the hourly
(UTC) and daily (page time zone) buckets.

When a monitor's next result arrives, the time since its previous result (capped at twice
the interval; beyond that it is "no data") is added to the buckets it spans, under the
previous result's status. The newest result's open interval lives in memory (`last`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from probe.core import histogram
from probe.core.calendar import HOUR_MS, Calendar, hour_start
from probe.core.models import ResultRecord, Status
from probe.storage.rollcache import DAILY, HOURLY

FLAG_MAINTENANCE = 1  # results.flags: the result fell in a maintenance window
FLAG_OFFLINE = 2  # results.flags: a failure while probe's own network was down (no data)


@dataclass
class Bucket:
    """The change to one rollup row that a batch makes."""

    n: list[int] = field(default_factory=lambda: [0, 0, 0])
    ms: list[int] = field(default_factory=lambda: [0, 0, 0])
    maint_ms: int = 0
    maint_good_ms: int = 0
    lat_n: int = 0
    lat_sum: float = 0.0
    lat_min: float | None = None
    lat_max: float | None = None
    hist: dict[int, int] = field(default_factory=dict)

    def add_latency(self, latency_ms: float) -> None:
        self.lat_n += 1
        self.lat_sum += latency_ms
        self.lat_min = latency_ms if self.lat_min is None else min(self.lat_min, latency_ms)
        self.lat_max = latency_ms if self.lat_max is None else max(self.lat_max, latency_ms)
        index = histogram.bucket_of(latency_ms)
        self.hist[index] = self.hist.get(index, 0) + 1

    def row(self, monitor: int, res: int, start: int) -> tuple:
        """(monitor, res, start, n_up, n_degraded, n_down, up_ms, degraded_ms, down_ms, maint_ms,
        maint_good_ms, lat_n, lat_sum, lat_min, lat_max, lat_hist): the rollups table's columns."""
        return (monitor, res, start, *self.n, *self.ms, self.maint_ms, self.maint_good_ms,
                self.lat_n, self.lat_sum, self.lat_min, self.lat_max, histogram.encode(self.hist))

    def accumulate(self, row: tuple) -> None:
        """Add a stored rollup row (in `row()`'s column order) to this bucket."""
        (_, _, _, n_up, n_deg, n_down, up, deg, down, maint, maint_good, lat_n, lat_sum, lat_min, lat_max,
         hist) = row
        for i, value in enumerate((n_up, n_deg, n_down)):
            self.n[i] += value
        for i, value in enumerate((up, deg, down)):
            self.ms[i] += value
        self.maint_ms += maint
        self.maint_good_ms += maint_good
        self.lat_n += lat_n
        self.lat_sum += lat_sum
        if lat_min is not None:
            self.lat_min = lat_min if self.lat_min is None else min(self.lat_min, lat_min)
        if lat_max is not None:
            self.lat_max = lat_max if self.lat_max is None else max(self.lat_max, lat_max)
        self.hist = histogram.merge((self.hist, histogram.decode(hist)))


@dataclass(frozen=True, slots=True)
class LastResult:
    ts_ms: int
    status: Status
    in_maintenance: bool
    interval_ms: int
    offline: bool = False  # its time is no data (see FLAG_OFFLINE)

    @property
    def holds_until(self) -> int:
        """A status counts for at most twice the interval; after that it is "no data"."""
        return self.ts_ms + 2 * self.interval_ms


class Rollups:
    """Turns results into bucket changes; `last` is each monitor's newest result as submitted."""

    def __init__(self, calendar: Calendar) -> None:
        self.calendar = calendar
        self.last: dict[int, LastResult] = {}

    def add(self, mid: int, record: ResultRecord, interval_ms: int, buckets: dict) -> None:
        prev = self.last.get(mid)
        if prev is not None and record.ts_ms > prev.ts_ms and not prev.offline:
            self._add_time(mid, prev, prev.ts_ms, min(record.ts_ms, prev.holds_until), buckets)
        for res, start in ((HOURLY, hour_start(record.ts_ms)), (DAILY, self.calendar.day_start(record.ts_ms))):
            bucket = buckets.setdefault((mid, res, start), Bucket())
            if not record.offline:
                bucket.n[record.status] += 1
            if record.latency_ms is not None:
                bucket.add_latency(record.latency_ms)
        if prev is None or record.ts_ms >= prev.ts_ms:
            self.last[mid] = LastResult(record.ts_ms, record.status, record.in_maintenance, interval_ms,
                                        record.offline)

    def _add_time(self, mid: int, prev: LastResult, start: int, end: int, buckets: dict) -> None:
        """Credit [start, end) to prev's status, split at hour and local-day boundaries."""
        for res, bounds in ((HOURLY, hour_bounds), (DAILY, self.calendar.day_bounds)):
            t = start
            while t < end:
                b0, b1 = bounds(t)
                span = min(end, b1) - t
                bucket = buckets.setdefault((mid, res, b0), Bucket())
                bucket.ms[prev.status] += span
                if prev.in_maintenance:
                    bucket.maint_ms += span
                    if prev.status.is_good:
                        bucket.maint_good_ms += span
                t += span


def hour_bounds(ts_ms: int) -> tuple[int, int]:
    start = hour_start(ts_ms)
    return start, start + HOUR_MS
