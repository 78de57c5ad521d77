"""The memoised figures (web/figures.py: window sums and sparklines by the writer's per-monitor
version; incident items by incidents, config and time) never change what is served: after each
kind of change, a warm process serves the very bytes of `/` and of the JSON APIs that a process
built from scratch on the same file serves at the same `now`."""
import json

from probe.core.calendar import HOUR_MS
from probe.core.models import ResultRecord, Status
from probe.core.units import now_ms
from probe.view import public, statuspage
from probe.web import api
from probe.web.page import render_index
from probe.web.render import environment
from probe.web.rows import RowCache
from tests.storage.test_rollcache import CONFIG, MIN, open_fresh_probe, open_probe

ENV = environment()
DAY_MS = 24 * HOUR_MS


class _Request:
    scheme, host = "http", "127.0.0.1"


async def served(probe, rows: RowCache, now: int) -> dict[str, bytes]:
    """`/`, /api/v1/status, /api/v1/monitors/{id} and Statuspage's summary and incidents at `now`."""
    view = await public.build_view(probe, now=now)
    out = {"/": await render_index(ENV, rows, probe, view),
           "/api/v1/status": json.dumps([api.monitor_json(m) for m in view.monitors]).encode()}
    for m in view.monitors:
        out[f"/api/v1/monitors/{m.id}"] = json.dumps(api.monitor_detail_json(m)).encode()
    shape = statuspage.Shape(probe, await public.build_view(probe, now=now, figures=False), _Request())
    for route in ("summary.json", "incidents.json"):
        out[f"/api/v2/{route}"] = json.dumps(statuspage.ROUTES[route](shape)).encode()
    return out


async def same_as_from_scratch(probe, path, rows: RowCache, now: int) -> dict[str, bytes]:
    warm = await served(probe, rows, now)
    fresh_probe = await open_fresh_probe(probe, path)
    try:
        fresh = await served(fresh_probe, RowCache(), now)
    finally:
        await fresh_probe.store.close()
    for route, body in fresh.items():
        assert warm[route] == body, route
    return warm


def record(probe, monitor_id: str, ts: int, status: Status = Status.UP, latency_ms: float = 10.0) -> None:
    latency = None if status is Status.DOWN else latency_ms
    probe.record(probe.config.monitor(monitor_id), ResultRecord(monitor_id, ts, ts, status, "r", latency))


def history(probe, base: int) -> None:
    """Two hours a day ago (with an outage in the hour the 24 h window cuts pro rata) and the
    last three hours, every two minutes (a status holds two intervals: no gaps)."""
    for monitor_id in ("web", "api"):
        for ts in range(base - 25 * HOUR_MS, base - 23 * HOUR_MS, 2 * MIN):
            down = monitor_id == "web" and base - 24 * HOUR_MS - 20 * MIN <= ts < base - 24 * HOUR_MS + 10 * MIN
            record(probe, monitor_id, ts, Status.DOWN if down else Status.UP)
        for ts in range(base - 3 * HOUR_MS, base, 2 * MIN):
            record(probe, monitor_id, ts, latency_ms=10.0 + ts % 7)


def uptime(page: dict[str, bytes], monitor_id: str) -> dict:
    return json.loads(page[f"/api/v1/monitors/{monitor_id}"])["uptime"]


async def test_every_change_a_render_can_follow_serves_the_same_bytes_as_a_fresh_process(write_config):
    path = write_config(CONFIG)
    probe = await open_probe(path)
    rows = RowCache()
    base = now_ms() - 2 * HOUR_MS
    base -= base % HOUR_MS - 10 * MIN  # 10 minutes into an hour, so that an hour boundary follows
    history(probe, base)
    await probe.store.flush()
    first = await same_as_from_scratch(probe, path, rows, base + 30_000)

    # `now` moves within the hour: the open interval and the 24 h window's pro-rata first hour move.
    later = await same_as_from_scratch(probe, path, rows, base + 50_000)
    assert uptime(later, "web")["24h"] != uptime(first, "web")["24h"]

    # A new result for one monitor only, rendered at once, then the other one's too.
    record(probe, "web", base, Status.DOWN)
    await probe.store.flush()
    await same_as_from_scratch(probe, path, rows, base + 10_000)
    record(probe, "api", base)
    await probe.store.flush()
    await same_as_from_scratch(probe, path, rows, base + 20_000)

    # Down long enough to open an incident, then up again until it resolves.
    for k in range(1, 6):
        record(probe, "web", base + k * MIN, Status.DOWN)
        record(probe, "api", base + k * MIN)
    await probe.store.flush()
    down = await same_as_from_scratch(probe, path, rows, base + 5 * MIN + 30_000)
    assert json.loads(down["/api/v2/summary.json"])["incidents"]
    for k in range(6, 12):
        record(probe, "web", base + k * MIN)
        record(probe, "api", base + k * MIN)
    await probe.store.flush()
    up_again = await same_as_from_scratch(probe, path, rows, base + 11 * MIN + 30_000)
    assert not json.loads(up_again["/api/v2/summary.json"])["incidents"]
    assert json.loads(up_again["/api/v2/incidents.json"])["incidents"][0]["status"] == "resolved"

    # Past the hour boundary: the windows' whole segments and the sparkline's hours move.
    for ts in range(base + 12 * MIN, base + 55 * MIN, 2 * MIN):
        record(probe, "web", ts)
        record(probe, "api", ts)
    await probe.store.flush()
    await same_as_from_scratch(probe, path, rows, base + 49 * MIN)
    await same_as_from_scratch(probe, path, rows, base + 54 * MIN)

    # A late result in a past hour (out of order) changes that hour's mean and the windows. (Into
    # the store only: Probe.record would also make it the monitor's latest, which a fresh process
    # reading the newest result does not.)
    probe.store.submit_result(ResultRecord("api", base - 2 * HOUR_MS + MIN, base - 2 * HOUR_MS + MIN, Status.UP,
                                           "r", 900.0), 60)
    await probe.store.flush()
    await same_as_from_scratch(probe, path, rows, base + 54 * MIN)
    await probe.store.close()


MAINTENANCE = CONFIG + """
[[maintenance]]
id = "deploy"
title = "Deploying"
monitors = ["web"]
start = "{start}"
duration = "20m"
"""


async def test_maintenance_starting_and_ending_serves_the_same_bytes_as_a_fresh_process(write_config):
    from probe.core.units import iso_utc
    base = now_ms() - HOUR_MS
    base -= base % MIN
    path = write_config(MAINTENANCE.format(start=iso_utc(base + 10 * MIN)))
    probe = await open_probe(path)
    rows = RowCache()
    for ts in range(base - HOUR_MS, base + 40 * MIN, MIN):
        for monitor_id in ("web", "api"):
            record(probe, monitor_id, ts, Status.DOWN if monitor_id == "web" and ts >= base + 15 * MIN else Status.UP)
        if ts in (base + 9 * MIN, base + 12 * MIN, base + 31 * MIN):  # before, during, after the window
            await probe.store.flush()
            page = await same_as_from_scratch(probe, path, rows, ts + 30_000)
            during = json.loads(page["/api/v1/monitors/web"])["status"] == "maintenance"
            assert during == (ts == base + 12 * MIN)
    await probe.store.close()


async def test_an_incident_leaving_the_90_days_leaves_a_warm_page_when_a_fresh_one_drops_it(write_config):
    path = write_config(CONFIG)
    probe = await open_probe(path)
    rows = RowCache()
    now = now_ms()
    old = now - 90 * DAY_MS - 3 * MIN
    for k in range(12):  # down from `old`, resolved 5 minutes later: 90 days before now + 2 min
        record(probe, "web", old + k * MIN, Status.DOWN if k < 5 else Status.UP)
    record(probe, "web", now - MIN)
    await probe.store.flush()
    before = await same_as_from_scratch(probe, path, rows, now)
    assert json.loads(before["/api/v2/incidents.json"])["incidents"]
    after = await same_as_from_scratch(probe, path, rows, now + 10 * MIN)
    assert not json.loads(after["/api/v2/incidents.json"])["incidents"]
    await probe.store.close()
