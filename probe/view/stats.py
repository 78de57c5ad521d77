"""Availability over any window, from rollups plus the newest result's open interval.

Method (also in the README):
- Each result's status holds from its check until the next result, but for at most
  twice the monitor's interval; time beyond that is "no data" and counts neither way, as
  does the time after a failure taken while probe's own network was down (offline).
- availability = (up + degraded time) / (observed time - maintenance time), where
  observed = up + degraded + down. Maintenance is excluded by default; `maintenance =
  "up"` counts it as available time, `"measured"` counts whatever was measured.
- A window is summed from daily buckets (page time zone) where whole days fit, hourly
  buckets (UTC) elsewhere, and the newest result's interval so far. A window that starts
  inside an hour counts that first hour pro rata.
- Shown with two decimals, rounded half up, except that a window with any downtime never
  shows 100.00 % (it shows 99.99 %).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from probe.core.calendar import HOUR_MS
from probe.core.models import Status
from probe.core.units import now_ms
from probe.storage import DAILY, HOURLY, Storage

MaintenanceMode = Literal["excluded", "up", "measured"]
FEW_MONITORS = 10  # asking for under a tenth of the monitors reads them from the file (see Stats._entries)


@dataclass(frozen=True)
class Durations:
    """Milliseconds spent in each status within a window."""

    up_ms: float = 0.0
    degraded_ms: float = 0.0
    down_ms: float = 0.0
    maint_ms: float = 0.0  # part of the three above that fell in maintenance
    maint_good_ms: float = 0.0  # part of maint_ms that was up or degraded

    def __add__(self, other: "Durations") -> "Durations":
        return Durations(*(a + b for a, b in zip(self._values(), other._values())))

    def scaled(self, factor: float) -> "Durations":
        return Durations(*(v * factor for v in self._values()))

    def _values(self) -> tuple[float, ...]:
        return (self.up_ms, self.degraded_ms, self.down_ms, self.maint_ms, self.maint_good_ms)

    @property
    def observed_ms(self) -> float:
        return self.up_ms + self.degraded_ms + self.down_ms

    def counted(self, mode: MaintenanceMode = "excluded") -> tuple[float, float]:
        """(good, total) milliseconds that availability is the ratio of."""
        return counted(self.up_ms, self.degraded_ms, self.down_ms, self.maint_ms, self.maint_good_ms, mode)

    def availability(self, mode: MaintenanceMode = "excluded") -> float | None:
        """A fraction in [0, 1], or None when nothing was observed."""
        good, total = self.counted(mode)
        return good / total if total > 0 else None

    def downtime_ms(self, mode: MaintenanceMode = "excluded") -> float:
        good, total = self.counted(mode)
        return max(0.0, total - good)


def counted(up: float, degraded: float, down: float, maint: float, maint_good: float,
            mode: MaintenanceMode = "excluded") -> tuple[float, float]:
    """(good, total) milliseconds that availability is the ratio of (see the module's method)."""
    good = up + degraded
    total = up + degraded + down
    if mode == "excluded":
        return good - maint_good, total - maint
    if mode == "up":
        return good - maint_good + maint, total
    return good, total


def figure(sums: tuple, mode: MaintenanceMode = "excluded") -> tuple[float | None, str]:
    """(availability, label as shown: "" without data) of a window's five durations."""
    good, total = counted(*sums, mode)
    if total <= 0:
        return None, ""
    value = good / total
    return value, format_availability(value, max(0.0, total - good))


def format_availability(value: float | None, downtime_ms: float = 0.0) -> str:
    """`99.95%`: two decimals, half up; never `100.00%` while there was downtime."""
    if value is None:
        return "no data"
    percent = round(value * 100 + 1e-9, 2)
    if percent >= 100 and downtime_ms > 0:
        percent = 99.99
    return f"{percent:.2f}%"


@dataclass(frozen=True)
class Segment:
    """Sum buckets of resolution `res` whose start is in [lo, hi), times `fraction`."""

    res: int
    lo: int
    hi: int
    fraction: float = 1.0


def plan(store: Storage, start: int, end: int, now: int) -> list[Segment]:
    """Cut [start, end) into whole daily buckets, whole hourly buckets and pro-rata edges.

    A window that reaches `now` takes the current hour's and day's buckets whole: they
    hold only time before the newest result, which is before now.
    """
    cal = store.calendar
    open_end = end >= now
    h_lo = -(-start // HOUR_MS) * HOUR_MS  # first whole hour
    h_hi = end - end % HOUR_MS
    segments = []
    if h_lo > start:  # first, partial hour
        segments.append(Segment(HOURLY, h_lo - HOUR_MS, h_lo, (h_lo - start) / HOUR_MS))
    d_lo = cal.day_bounds(start)[1] if cal.day_start(start) < start else start
    d_hi = cal.day_start(end)
    if open_end:
        d_hi = cal.day_bounds(now)[1]
    if cal.days_hour_aligned() and d_lo < d_hi and d_lo % HOUR_MS == 0:
        segments.append(Segment(HOURLY, h_lo, d_lo))
        segments.append(Segment(DAILY, d_lo, d_hi))
        after = d_hi
    else:
        after = h_lo
    if open_end:
        segments.append(Segment(HOURLY, after, 2**62))
        return segments
    segments.append(Segment(HOURLY, after, h_hi))
    if end > h_hi:  # last, partial hour
        segments.append(Segment(HOURLY, h_hi, h_hi + HOUR_MS, (end - h_hi) / HOUR_MS))
    return segments


@dataclass(frozen=True)
class Window:
    start: int
    end: int  # capped at now
    segments: tuple[Segment, ...]
    parts: list[tuple[dict, float]]  # (each segment's sums by monitor, its fraction)

    @property
    def whole(self) -> tuple[Segment, ...]:
        """The segments `whole_sums` adds: with the monitor's rollups, all its result depends on."""
        return tuple(seg for seg in self.segments if seg.fraction == 1.0)


def whole_sums(mid: int, parts: list[tuple[dict, float]]) -> tuple[float, float, float, float, float]:
    """The sums of a window's whole segments (fraction 1) for one monitor: what changes only
    when the monitor's rollups do or the window's segments move (see `Stats.completed`)."""
    return _added(mid, [part for part in parts if part[1] == 1.0], (0.0, 0.0, 0.0, 0.0, 0.0))


def _added(mid: int, parts: list[tuple[dict, float]], sums: tuple) -> tuple[float, float, float, float, float]:
    """`sums` plus each part's five durations for one monitor, times the part's fraction."""
    up, degraded, down, maint, maint_good = sums
    for entry, fraction in parts:
        values = entry.get(mid)
        if values is not None:
            up += values[0] * fraction
            degraded += values[1] * fraction
            down += values[2] * fraction
            maint += values[3] * fraction
            maint_good += values[4] * fraction
    return up, degraded, down, maint, maint_good


class Stats:
    def __init__(self, store: Storage) -> None:
        self.store = store

    async def durations(self, monitor_ids: list[str], start_ms: int, end_ms: int,
                        now: int | None = None) -> dict[str, Durations]:
        """Time in each status per monitor over [start, end)."""
        return (await self.durations_many(monitor_ids, {"w": (start_ms, end_ms)}, now))["w"]

    async def durations_many(self, monitor_ids: list[str], windows: dict[str, tuple[int, int]],
                             now: int | None = None) -> dict[str, dict[str, Durations]]:
        """`durations` for several windows at once. The segments' sums come from the store's
        in-memory rollup cache (kept exact by its writer), so a render reads no rollup rows
        once the cache holds this hour's segments."""
        now = now if now is not None else now_ms()
        mids = [(m, self.store.monitor_ids[m]) for m in monitor_ids if m in self.store.monitor_ids]
        out: dict[str, dict[str, Durations]] = {}
        for name, w in (await self.window_parts([mid for _, mid in mids], windows, now)).items():
            out[name] = {key: Durations(*self.completed(mid, whole_sums(mid, w.parts), w.parts, w.start, w.end, now))
                         for key, mid in mids}
        return out

    async def window_parts(self, mids: list[int], windows: dict[str, tuple[int, int]], now: int) -> dict[str, "Window"]:
        """Each window's segments with their sums, read in one go."""
        plans = {}
        for name, (start_ms, end_ms) in windows.items():
            end_ms = min(end_ms, now)
            segments = plan(self.store, start_ms, end_ms, now) if start_ms < end_ms else []
            plans[name] = (start_ms, end_ms, tuple(seg for seg in segments if seg.lo < seg.hi))
        keys = [(seg.res, seg.lo, seg.hi) for _, _, segs in plans.values() for seg in segs]
        entries = iter(await self._entries(mids, keys))
        return {name: Window(start_ms, end_ms, segs, [(next(entries), seg.fraction) for seg in segs])
                for name, (start_ms, end_ms, segs) in plans.items()}

    async def _entries(self, mids: list[int], keys: list[tuple[int, int, int]]) -> list[dict]:
        """The sums of each segment: from the in-memory cache, which holds every monitor, unless
        only a few monitors are asked for (a badge, one monitor's page): reading those few from
        the file is cheaper than loading everyone's sums into memory for a new window."""
        if len(mids) * FEW_MONITORS >= len(self.store.monitor_ids):
            return await self.store.cached_ranges(keys)
        entries: list[dict] = [{} for _ in keys]
        for index, mid, values in await self.store.rollup_sums_many(mids, keys):
            entries[index][mid] = values
        return entries

    def completed(self, mid: int, whole: tuple, parts: list[tuple[dict, float]], start: int, end: int,
                  now: int) -> tuple[float, float, float, float, float]:
        """A window's durations: its whole segments' sums (`whole_sums`), then its pro-rata edges,
        then the newest result's open interval, always in this order, so a reader that memoises
        the whole sums gets the very same floats as one that does not."""
        up, degraded, down, maint, maint_good = _added(mid, [part for part in parts if part[1] != 1.0], whole)
        last = self.store.last_committed.get(mid)
        if last is not None and start < end and not last.offline:
            lo, hi = max(start, last.ts_ms), min(end, now, last.holds_until)
            if hi > lo:  # the newest result's status holds from its check until now (at most 2 intervals)
                span = hi - lo
                if last.status is Status.UP:
                    up += span
                elif last.status is Status.DEGRADED:
                    degraded += span
                else:
                    down += span
                if last.in_maintenance:
                    maint += span
                    if last.status.is_good:
                        maint_good += span
        return up, degraded, down, maint, maint_good

    async def availability(self, monitor_id: str, start_ms: int, end_ms: int,
                           mode: MaintenanceMode = "excluded", now: int | None = None) -> float | None:
        d = (await self.durations([monitor_id], start_ms, end_ms, now)).get(monitor_id, Durations())
        return d.availability(mode)
