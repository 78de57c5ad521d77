"""The in-memory rollup sums never make the page wrong: after late results, across midnight,
after pruning, a warm process shows exactly what a fresh one reading the file shows."""
import itertools
import sqlite3
from datetime import timedelta

from probe.config.loader import load_config
from probe.core.calendar import DAY_MS, HOUR_MS
from probe.core.models import ResultRecord, Status
from probe.core.units import now_ms
from probe.service import Probe
from probe.view import public

MIN = 60_000
CONFIG = """
[storage]
path = "probe.db"
[defaults]
interval = "1m"
timeout = "5s"
[[monitors]]
id = "web"
name = "Website"
type = "tcp"
host = "127.0.0.1"
port = 9
[[monitors]]
id = "api"
name = "API"
type = "tcp"
host = "127.0.0.1"
port = 9
"""


async def open_probe(path) -> Probe:
    config = load_config(path)
    probe = Probe(config, flush_interval=0.01)
    await probe.store.open()
    await probe._load_monitors(config.monitors)
    return probe


async def open_fresh_probe(probe, path) -> Probe:
    """A process built from scratch on the same data: it opens a consistent copy of the file
    (SQLite's backup), since the file itself admits one process at a time."""
    await probe.store.flush()
    fresh_dir = path.parent / f"fresh-{next(_FRESH)}"
    fresh_dir.mkdir()
    (fresh_dir / path.name).write_text(path.read_text())
    source = sqlite3.connect(probe.config.database_path)
    copy = sqlite3.connect(fresh_dir / probe.config.database_path.name)
    try:
        source.backup(copy)
    finally:
        source.close()
        copy.close()
    return await open_probe(fresh_dir / path.name)


_FRESH = itertools.count()


async def record(probe, monitor_id, ts, status=Status.UP, latency_ms=10.0):
    probe.store.submit_result(ResultRecord(monitor_id, ts, ts, status, "r", latency_ms), 60)
    await probe.store.flush()


def midnight(probe, days_ago: int) -> int:
    calendar = probe.store.calendar
    return calendar.local_midnight(calendar.date_of(now_ms()) - timedelta(days=days_ago))


def figures(view) -> dict:
    return {m.id: (m.days, m.uptime, m.uptime_label, m.sparkline) for m in view.monitors}


async def assert_same_as_a_fresh_process(probe, path, now):
    warm = await public.build_view(probe, now=now)
    fresh_probe = await open_fresh_probe(probe, path)
    try:
        fresh = await public.build_view(fresh_probe, now=now)
    finally:
        await fresh_probe.store.close()
    assert figures(warm) == figures(fresh)
    return warm


def cell(view, monitor_id, day_start_ms, probe):
    day = probe.store.calendar.date_of(day_start_ms)
    return next(c for c in view.monitor(monitor_id).days if c.day == day)


async def test_time_credited_late_to_a_past_day_shows_on_a_warm_page(write_config):
    path = write_config(CONFIG)
    probe = await open_probe(path)
    two_days_ago = midnight(probe, 1) - 2 * MIN  # 23:58 the day before yesterday
    await record(probe, "web", two_days_ago - 8 * MIN)
    await record(probe, "web", two_days_ago, Status.DOWN)
    now = now_ms()
    before = await public.build_view(probe, now=now)
    assert cell(before, "web", two_days_ago, probe).down_minutes == 0
    assert probe.store.sums.loads > 0
    # The next result, after midnight, credits the two minutes down to the day before yesterday.
    await record(probe, "web", midnight(probe, 1) + MIN)
    after = await assert_same_as_a_fresh_process(probe, path, now)
    assert cell(after, "web", two_days_ago, probe).down_minutes == 2
    assert after.monitor("web").uptime["7d"] < 1
    await probe.store.close()


async def test_a_result_arriving_out_of_order_in_a_past_hour_is_counted(write_config):
    path = write_config(CONFIG)
    probe = await open_probe(path)
    start = now_ms() - 5 * HOUR_MS
    for k in range(30):
        await record(probe, "api", start + k * MIN, Status.DOWN if 10 <= k < 15 else Status.UP)
    now = now_ms()
    before = (await public.build_view(probe, now=now)).monitor("api").sparkline
    await record(probe, "api", start + 5 * MIN + 30_000, latency_ms=900.0)  # late: between two it has
    after = (await assert_same_as_a_fresh_process(probe, path, now)).monitor("api").sparkline
    assert after != before
    await probe.store.close()


async def test_the_bar_moves_at_midnight_and_yesterday_keeps_its_figures(write_config):
    path = write_config(CONFIG)
    probe = await open_probe(path)
    today = midnight(probe, 0)
    yesterday = midnight(probe, 1)
    for ts in range(yesterday + 20 * HOUR_MS, today + 30 * MIN, 2 * MIN):  # holds 2 intervals: no gaps
        status = Status.DOWN if ts < yesterday + 21 * HOUR_MS else Status.UP
        probe.store.submit_result(ResultRecord("web", ts, ts, status, "r", 10.0), 60)
    await probe.store.flush()
    evening = yesterday + 22 * HOUR_MS
    view = await assert_same_as_a_fresh_process(probe, path, evening)
    assert view.monitor("web").days[-1].day == probe.store.calendar.date_of(yesterday)
    after_midnight = today + 20 * MIN
    view = await assert_same_as_a_fresh_process(probe, path, after_midnight)
    days = view.monitor("web").days
    assert days[-1].day == probe.store.calendar.date_of(today)
    assert days[-2].day == probe.store.calendar.date_of(yesterday)
    assert days[-2].down_minutes == 60
    # A warm render later the same hour, after more results, still agrees.
    await record(probe, "web", today + 35 * MIN, Status.DOWN)
    await assert_same_as_a_fresh_process(probe, path, now_ms())
    await probe.store.close()


async def test_a_new_incident_title_reaches_past_cells_on_a_warm_page(write_config):
    path = write_config(CONFIG)
    probe = await open_probe(path)
    start = midnight(probe, 2) + HOUR_MS
    await public.build_view(probe)
    for k in range(6):  # down long enough to open an incident (failure_threshold defaults apply)
        probe.record(probe.config.monitor("web"), ResultRecord("web", start + k * MIN, start + k * MIN,
                                                               Status.DOWN, "refused", None))
    await probe.store.flush()
    view = await assert_same_as_a_fresh_process(probe, path, now_ms())
    assert cell(view, "web", start, probe).incidents
    await probe.store.close()


async def test_pruning_drops_what_it_deleted_from_memory_too(write_config):
    path = write_config(CONFIG)
    probe = await open_probe(path)
    old = now_ms() - 80 * DAY_MS
    for k in range(5):
        await record(probe, "web", old + k * MIN, Status.DOWN)
    await record(probe, "web", now_ms() - HOUR_MS)  # the newest result stays: both processes know it
    assert (await public.build_view(probe)).monitor("web").uptime["90d"] < 1
    await probe.store.prune(raw_retention_s=2 * 86_400, rollup_retention_s=30 * 86_400)
    view = await assert_same_as_a_fresh_process(probe, path, now_ms())
    assert view.monitor("web").uptime["90d"] == 1
    await probe.store.close()


async def test_one_monitor_among_many_is_read_from_the_file_and_agrees_with_the_page(write_config):
    many = CONFIG + "".join(f'[[monitors]]\nid = "m{k}"\ntype = "tcp"\nhost = "127.0.0.1"\nport = 9\n'
                            for k in range(20))
    probe = await open_probe(write_config(many))
    start = now_ms() - 2 * DAY_MS
    for k in range(40):
        await record(probe, "web", start + k * MIN, Status.DOWN if k % 4 == 0 else Status.UP)
    now = now_ms()
    page = await public.build_view(probe, now=now)
    loads = probe.store.sums.loads
    alone = await probe.stats.durations(["web"], now - 7 * DAY_MS, now, now)
    assert alone["web"].availability() == page.monitor("web").uptime["7d"] < 1
    await probe.stats.durations(["web"], now - 3 * DAY_MS, now, now)  # a window the page has not read
    assert probe.store.sums.loads == loads  # the few are read from the file, not loaded for everyone
    await probe.store.close()
