"""Rollup sums kept in memory between renders, exact because the store's one writer
updates them as it commits.

A status page render sums the same rollup rows again and again: 90 days of bars, four
availability windows, 24 hours of sparkline, for every monitor. Past days barely change,
so the sums are kept here, keyed by what the page asks for:

- a bucket: (res, start) -> {monitor: sums}, one rollup row per monitor;
- a range: (res, lo, hi) -> {monitor: sums}, the total of the buckets starting in [lo, hi).

`sums` is (up_ms, degraded_ms, down_ms, maint_ms, maint_good_ms, lat_n, lat_sum). An entry
holds every monitor of the file (no rows means zeros), so it answers for any subset. Sums are
tuples, replaced when they change: a tuple of numbers leaves the garbage collector's lists, and
the 130,000 of 1,000 monitors' 90 days had made each full collection cost ~45 ms of a render.

Exactness: an entry is loaded with the writer's lock held (no commit can land between the
read and the insertion), and every rollup change the writer commits afterwards is added to
each entry it falls in (`apply`, called under the same lock right after the commit). The
rollup table only ever grows by such additions, except for pruning, which drops the
entries it could touch (`forget_before`). So the cache never makes the page wrong; it only
makes the first render of an hour (new window edges) or of a process (everything) slower.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence

from probe.core.calendar import HOUR_MS, Calendar

HOURLY, DAILY = 0, 1  # rollup resolutions (store.py imports them from here)
WIDTH = 7  # up, degraded, down, maint, maint_good, lat_n, lat_sum
MAX_RANGES = 64  # window edges move every hour: old ranges fall out, least recently used first
MAX_COMPOSED = 400  # a range of at most this many cached buckets is summed in memory, not read

Entry = dict[int, tuple]
Loader = Callable[[list[tuple[int, int, int]]], Awaitable[list[tuple]]]


class RollupCache:
    def __init__(self, calendar: Calendar) -> None:
        self.calendar = calendar
        self.buckets: dict[tuple[int, int], Entry] = {}
        self.ranges: OrderedDict[tuple[int, int, int], Entry] = OrderedDict()
        self.past_version: dict[int, int] = {}  # per monitor: bumped when one of its past days changes
        self.version: dict[int, int] = {}  # per monitor: bumped by every rollup change of that monitor
        self.derived: dict[str, dict] = {}  # memos built from these sums by their readers; cleared with them
        self.loads = 0  # reads from the file (for tests and benchmarks)

    def clear(self) -> None:
        self.buckets.clear()
        self.ranges.clear()
        self.derived.clear()

    def forget_before(self, cutoff_ms: int) -> None:
        """Drop whatever rows older than `cutoff_ms` contributed to (pruning deletes them)."""
        self.buckets = {key: e for key, e in self.buckets.items() if key[1] >= cutoff_ms}
        for key in [key for key in self.ranges if key[1] < cutoff_ms]:
            del self.ranges[key]
        self.derived.clear()

    def forget_since(self, cutoff_ms: int) -> None:
        """Drop whatever rows from `cutoff_ms` on contributed to: another process wrote there
        ([cluster]: the leader), so these sums are read again when next asked for."""
        self.buckets = {key: e for key, e in self.buckets.items() if key[1] < cutoff_ms}
        for key in [key for key in self.ranges if key[2] > cutoff_ms]:
            del self.ranges[key]
        self.derived.clear()

    # ---- the writer's side ------------------------------------------------------------

    def apply(self, rows: Sequence[tuple], today_start: int) -> None:
        """Add committed rollup changes (rows as upserted: monitor, res, start, n_up, n_degraded,
        n_down, up_ms, degraded_ms, down_ms, maint_ms, maint_good_ms, lat_n, lat_sum, ...).
        `version` counts every change, cached or not: readers memoise what they sum from the file too."""
        version = self.version
        for row in rows:
            version[row[0]] = version.get(row[0], 0) + 1
        if not self.buckets and not self.ranges:
            return
        for row in rows:
            mid, res, start = row[0], row[1], row[2]
            values = row[6:13]
            entry = self.buckets.get((res, start))
            if entry is not None:
                _add(entry, mid, values)
            for (r, lo, hi), entry in self.ranges.items():
                if r == res and lo <= start < hi:
                    _add(entry, mid, values)
            if res == DAILY and start < today_start:  # a late result, or time credited across midnight
                self.past_version[mid] = self.past_version.get(mid, 0) + 1

    # ---- the readers' side ------------------------------------------------------------

    async def bucket_entries(self, res: int, starts: list[int], lock, load: Loader) -> list[Entry]:
        """The entries of buckets (res, start), reading the missing ones in one query. Buckets
        older than the oldest asked for are dropped: the page's days and hours move forward."""
        oldest = min(starts, default=0)
        for key in [key for key in self.buckets if key[0] == res and key[1] < oldest]:
            del self.buckets[key]
        while True:
            missing = [s for s in starts if (res, s) not in self.buckets]
            if not missing:
                return [self.buckets[(res, s)] for s in starts]
            async with lock:
                rows = await load([(res, s, s + 1) for s in missing])
                self.loads += 1
                for s in missing:
                    self.buckets[(res, s)] = {}
                for index, mid, *values in rows:
                    self.buckets[(res, missing[index])][mid] = tuple(values)

    async def range_entries(self, segments: list[tuple[int, int, int]], lock, load: Loader) -> list[Entry]:
        """The entry of each (res, lo, hi): from the cache, summed from cached buckets, or read.
        The entries are collected after the last await, so no commit falls between them."""
        while True:
            missing = []
            for key in dict.fromkeys(segments):
                if key in self.ranges:
                    self.ranges.move_to_end(key)
                elif not self._compose(key):
                    missing.append(key)
            if not missing:
                found = [self.ranges[key] for key in segments]
                while len(self.ranges) > MAX_RANGES:
                    self.ranges.popitem(last=False)
                return found
            async with lock:
                rows = await load(missing)
                self.loads += 1
                for key in missing:
                    self.ranges[key] = {}
                for index, mid, *values in rows:
                    self.ranges[missing[index]][mid] = tuple(values)

    def _compose(self, key: tuple[int, int, int]) -> bool:
        """Sum a range from cached buckets when every bucket in it is cached."""
        res, lo, hi = key
        starts = self._starts(res, lo, hi)
        if starts is None or any((res, s) not in self.buckets for s in starts):
            return False
        total: Entry = {}
        for s in starts:
            for mid, values in self.buckets[(res, s)].items():
                _add(total, mid, values)
        self.ranges[key] = total
        return True

    def _starts(self, res: int, lo: int, hi: int) -> list[int] | None:
        if res == HOURLY:
            first = -(-lo // HOUR_MS) * HOUR_MS
            if (hi - first) // HOUR_MS > MAX_COMPOSED:
                return None
            return list(range(first, hi, HOUR_MS))
        starts, t = [], self.calendar.day_start(lo)
        if t < lo:
            t = self.calendar.day_bounds(lo)[1]
        while t < hi:
            if len(starts) >= MAX_COMPOSED:
                return None
            starts.append(t)
            t = self.calendar.day_bounds(t)[1]
        return starts


def _add(entry: Entry, mid: int, values) -> None:
    current = entry.get(mid)
    if current is None:
        entry[mid] = tuple(values)
    else:
        entry[mid] = tuple(current[i] + values[i] for i in range(WIDTH))
