"""Availability on constructed histories with known answers, through a real SQLite file."""
from datetime import datetime, timezone

import pytest

from probe.core.calendar import DAY_MS, HOUR_MS, Calendar
from probe.core.models import ResultRecord, Status
from probe.storage import DAILY, HOURLY
from probe.storage.sqlite import SqliteStore
from probe.view.stats import Durations, Stats, format_availability

MIN = 60_000
D0 = int(datetime(2026, 3, 2, tzinfo=timezone.utc).timestamp() * 1000)  # a Monday, 00:00 UTC


async def feed(store, start, end, status_at, interval_ms=MIN, monitor="web", latency=None, maintenance_at=None):
    """One result every `interval_ms` in [start, end], statuses from status_at(ts)."""
    if monitor not in store.monitor_ids:
        await store.sync_monitors([_Monitor(monitor, interval_ms / 1000)])
    for ts in range(start, end + 1, interval_ms):
        record = ResultRecord(monitor, ts, ts, status_at(ts), "reason", latency(ts) if latency else 10.0,
                              in_maintenance=bool(maintenance_at and maintenance_at(ts)))
        store.submit_result(record, interval_ms / 1000)
    await store.flush()


class _Monitor:
    def __init__(self, monitor_id, interval):
        self.id, self.interval, self.display_name, self.type, self.group = monitor_id, interval, monitor_id, "http", ""


def down_between(lo, hi):
    return lambda ts: Status.DOWN if lo <= ts < hi else Status.UP


async def test_ten_minutes_down_in_a_day_is_99_31_percent(store):
    await feed(store, D0, D0 + DAY_MS, down_between(D0 + 5 * HOUR_MS, D0 + 5 * HOUR_MS + 10 * MIN))
    d = (await Stats(store).durations(["web"], D0, D0 + DAY_MS, now=D0 + DAY_MS + MIN))["web"]
    assert d.down_ms == 10 * MIN
    assert d.observed_ms == DAY_MS
    assert format_availability(d.availability(), d.downtime_ms()) == "99.31%"


async def test_daily_and_hourly_rollups_agree(store):
    await feed(store, D0, D0 + 2 * DAY_MS, down_between(D0 + 30 * HOUR_MS, D0 + 31 * HOUR_MS))
    hourly = await store.rollup_sums([store.monitor_ids["web"]], HOURLY, D0, D0 + 2 * DAY_MS)
    daily = await store.rollup_sums([store.monitor_ids["web"]], DAILY, D0, D0 + 2 * DAY_MS)
    assert hourly == daily
    rows = await store.rollup_rows("web", DAILY, D0, D0 + 2 * DAY_MS)
    assert [r["down_ms"] for r in rows] == [0, HOUR_MS]
    assert [r["n_down"] for r in rows] == [0, 60]


async def test_a_gap_longer_than_twice_the_interval_counts_as_no_data(store):
    # Checks stop for an hour: the last status holds for 2 minutes, the rest is no data.
    await feed(store, D0, D0 + 2 * HOUR_MS, lambda ts: Status.UP)
    await feed(store, D0 + 3 * HOUR_MS, D0 + 4 * HOUR_MS, lambda ts: Status.UP)
    d = (await Stats(store).durations(["web"], D0, D0 + 4 * HOUR_MS, now=D0 + 4 * HOUR_MS))["web"]
    assert d.observed_ms == 3 * HOUR_MS + 2 * MIN
    assert d.availability() == 1.0


async def test_the_newest_results_open_interval_counts_up_to_now(store):
    await feed(store, D0, D0 + HOUR_MS, down_between(D0 + HOUR_MS, D0 + 2 * HOUR_MS))
    # The last check (down) ran at D0+1h; it is now 90 seconds later.
    d = (await Stats(store).durations(["web"], D0, D0 + 2 * HOUR_MS, now=D0 + HOUR_MS + 90_000))["web"]
    assert d.down_ms == 90_000
    assert d.up_ms == HOUR_MS


async def test_a_window_starting_inside_an_hour_counts_that_hour_pro_rata(store):
    await feed(store, D0, D0 + 3 * HOUR_MS, down_between(D0, D0 + HOUR_MS))
    # [00:30, 03:00): half of the down first hour, then two good hours.
    d = (await Stats(store).durations(["web"], D0 + 30 * MIN, D0 + 3 * HOUR_MS, now=D0 + 3 * HOUR_MS))["web"]
    assert d.down_ms == pytest.approx(30 * MIN)
    assert d.up_ms == pytest.approx(2 * HOUR_MS)


async def test_a_long_window_uses_days_and_matches_the_sum_of_its_parts(store):
    await feed(store, D0, D0 + 10 * DAY_MS, down_between(D0 + 3 * DAY_MS, D0 + 3 * DAY_MS + 45 * MIN),
               interval_ms=5 * MIN)
    stats = Stats(store)
    now = D0 + 10 * DAY_MS
    whole = (await stats.durations(["web"], D0 + 90 * MIN, now, now=now))["web"]
    parts = [(await stats.durations(["web"], lo, lo + DAY_MS, now=now))["web"]
             for lo in range(D0 + 90 * MIN, now, DAY_MS)]
    total = sum(parts, Durations())
    assert whole.down_ms == pytest.approx(45 * MIN)
    assert whole.observed_ms == pytest.approx(total.observed_ms)
    assert whole.down_ms == pytest.approx(total.down_ms)


async def test_maintenance_is_excluded_counted_up_or_measured_as_asked(store):
    in_window = down_between(D0 + HOUR_MS, D0 + 2 * HOUR_MS)
    await feed(store, D0, D0 + 4 * HOUR_MS, in_window, maintenance_at=lambda ts: in_window(ts) is Status.DOWN)
    d = (await Stats(store).durations(["web"], D0, D0 + 4 * HOUR_MS, now=D0 + 4 * HOUR_MS))["web"]
    assert d.maint_ms == HOUR_MS
    assert d.availability("excluded") == 1.0
    assert d.availability("up") == 1.0
    assert d.availability("measured") == pytest.approx(0.75)


async def test_degraded_time_counts_as_available(store):
    await feed(store, D0, D0 + HOUR_MS, lambda ts: Status.DEGRADED)
    d = (await Stats(store).durations(["web"], D0, D0 + HOUR_MS, now=D0 + HOUR_MS))["web"]
    assert d.degraded_ms == HOUR_MS
    assert d.availability() == 1.0


async def test_a_monitor_without_results_has_no_availability(store):
    await store.sync_monitors([_Monitor("new", 60)])
    d = (await Stats(store).durations(["new"], D0, D0 + DAY_MS, now=D0 + DAY_MS))["new"]
    assert d.availability() is None
    assert format_availability(d.availability()) == "no data"


async def test_daily_buckets_follow_the_page_time_zone(tmp_path):
    store = SqliteStore(tmp_path / "tz.db", Calendar("Asia/Shanghai"), flush_interval=0.01)
    await store.open()
    try:
        await feed(store, D0, D0 + 2 * DAY_MS, down_between(D0 + 20 * HOUR_MS, D0 + 21 * HOUR_MS))
        rows = await store.rollup_rows("web", DAILY, 0, 2**62)
        # Shanghai days start at 16:00 UTC: the outage (20:00 UTC) is on the local day starting D0+16h.
        starts = [r["start"] for r in rows]
        assert D0 + 16 * HOUR_MS in starts
        by_start = {r["start"]: r for r in rows}
        assert by_start[D0 + 16 * HOUR_MS]["down_ms"] == HOUR_MS
        assert sum(r["down_ms"] for r in rows) == HOUR_MS
    finally:
        await store.close()


async def test_changing_the_time_zone_rebuilds_daily_rollups_from_hourly(tmp_path):
    path = tmp_path / "tz.db"
    store = SqliteStore(path, Calendar("UTC"), flush_interval=0.01)
    await store.open()
    await feed(store, D0, D0 + 3 * DAY_MS, down_between(D0 + 20 * HOUR_MS, D0 + 21 * HOUR_MS))
    await store.close()
    store = SqliteStore(path, Calendar("Asia/Shanghai"), flush_interval=0.01)
    await store.open()
    try:
        rows = await store.rollup_rows("web", DAILY, 0, 2**62)
        assert all((r["start"] - 16 * HOUR_MS) % DAY_MS == 0 for r in rows)
        assert sum(r["down_ms"] for r in rows) == HOUR_MS
        assert sum(r["n_up"] + r["n_down"] for r in rows) == 3 * 24 * 60 + 1
    finally:
        await store.close()


async def test_latency_percentiles_come_back_within_five_percent(store):
    from probe.core import histogram

    await feed(store, D0, D0 + 999 * MIN, lambda ts: Status.UP, latency=lambda ts: 1 + (ts - D0) // MIN)
    (row,) = await store.rollup_rows("web", DAILY, 0, 2**62)
    hist = histogram.decode(row["lat_hist"])
    assert row["lat_n"] == 1000
    assert row["lat_min"] == 1 and row["lat_max"] == 1000
    assert histogram.percentile(hist, 50) == pytest.approx(500, rel=0.05)
    assert histogram.percentile(hist, 95) == pytest.approx(950, rel=0.05)


async def test_failures_taken_while_probe_was_cut_off_count_as_no_data(store):
    # Up, then 10 minutes of failures recorded while probe's own network was down, then up again:
    # those 10 minutes are neither up nor down, however the checks went (the newest one included).
    await store.sync_monitors([_Monitor("web", 60)])
    for minute in range(60):
        ts = D0 + minute * MIN
        cut_off = 20 <= minute < 30
        store.submit_result(ResultRecord("web", ts, ts, Status.DOWN if cut_off else Status.UP, "r",
                                         offline=cut_off), 60)
    await store.flush()
    d = (await Stats(store).durations(["web"], D0, D0 + HOUR_MS, now=D0 + 59 * MIN + 30_000))["web"]
    assert (d.up_ms, d.down_ms) == (49 * MIN + 30_000, 0)
    rows = await store.rollup_rows("web", HOURLY, D0, D0 + HOUR_MS)
    assert (rows[0]["n_up"], rows[0]["n_down"]) == (50, 0)
    stored = await store.results("web", D0 + 20 * MIN, D0 + 21 * MIN)
    assert [(r.status, r.offline) for r in stored] == [(Status.DOWN, True)]
    store.submit_result(ResultRecord("web", D0 + HOUR_MS, D0 + HOUR_MS, Status.DOWN, "r", offline=True), 60)
    await store.flush()
    newest = (await Stats(store).durations(["web"], D0 + HOUR_MS, D0 + HOUR_MS + MIN,
                                            now=D0 + HOUR_MS + MIN))["web"]
    assert newest.observed_ms == 0  # the open interval of an offline failure is no data too
