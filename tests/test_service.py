"""The whole data path with real parts: a real HTTP target, the real scheduler, a real file."""
import asyncio
import time

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from probe.checks.base import Ping
from probe.config.loader import load_config
from probe.core.models import EventKind, Impact, Status
from probe.core.units import now_ms
from probe.engine.passive import Fed
from probe.service import Probe
from probe.web.app import create_app

pytestmark = pytest.mark.usefixtures("engine")  # once per storage engine

INTERVAL = 0.5


class Target:
    """An HTTP server on loopback that answers 200 or 503 as the test says."""

    def __init__(self):
        self.healthy = True
        self.app = web.Application()
        self.app.router.add_get("/", self.handle)
        self.server = TestServer(self.app, host="127.0.0.1")

    async def handle(self, request):
        return web.Response(text="ok" if self.healthy else "down", status=200 if self.healthy else 503)

    async def __aenter__(self):
        await self.server.start_server()
        return self

    async def __aexit__(self, *exc):
        await self.server.close()

    @property
    def url(self):
        return str(self.server.make_url("/"))


def config_for(write_config, url, **extra):
    lines = "\n".join(f"{k} = {v}" for k, v in extra.items())
    return load_config(write_config(f"""
        [storage]
        path = "probe.db"
        [[monitors]]
        id = "web"
        name = "Website"
        type = "http"
        url = "{url}"
        interval = "{INTERVAL}s"
        timeout = "400ms"
        failure_threshold = 2
        success_threshold = 2
        {lines}
    """))


async def stored(probe, monitor_id: str, condition, timeout: float = 15.0):
    """Wait until the monitor's results in the file satisfy `condition`; return them."""
    deadline = time.monotonic() + timeout
    while True:
        await probe.store.flush()
        results = await probe.store.results(monitor_id)
        if condition(results):
            return results
        assert time.monotonic() < deadline, f"timed out; stored: {[(r.ts_ms, r.status.label) for r in results]}"
        await asyncio.sleep(0.05)


def trailing(results, status: Status) -> int:
    """How many of the newest results have `status`."""
    count = 0
    for result in reversed(results):
        if result.status is not status:
            break
        count += 1
    return count


async def test_an_outage_opens_and_resolves_one_incident_at_the_results_that_bound_it(write_config):
    async with Target() as target:
        probe = Probe(config_for(write_config, target.url), flush_interval=0.05)
        events = probe.bus.subscribe()
        await probe.start()
        try:
            await stored(probe, "web", lambda rs: trailing(rs, Status.UP) >= 2)
            target.healthy = False
            await stored(probe, "web", lambda rs: trailing(rs, Status.DOWN) >= 3)
            target.healthy = True
            results = await stored(probe, "web", lambda rs: trailing(rs, Status.UP) >= 2)
            incidents = await probe.store.incidents("web")
            # From a whole hour up to now: whole buckets, no pro-rata edge to blur the sum.
            now, hour = int(time.time() * 1000), 3_600_000
            durations = (await probe.stats.durations(["web"], results[0].ts_ms // hour * hour, now, now))["web"]
        finally:
            await probe.stop()

    down = [r for r in results if r.status is Status.DOWN]
    first_down, first_up_after = down[0], next(r for r in results if r.ts_ms > down[-1].ts_ms)
    assert [r.status for r in results] == [Status.UP] * results.index(first_down) + [Status.DOWN] * len(down) + \
        [Status.UP] * (len(results) - results.index(first_down) - len(down))  # one outage
    (incident,) = incidents
    assert incident.impact is Impact.MAJOR and "HTTP 503" in incident.reason
    # It starts at the first failing check and ends at the first good one, as stored.
    assert (incident.started_ms, incident.resolved_ms) == (first_down.ts_ms, first_up_after.ts_ms)
    # The downtime the page shows is the time from the first failing check to the first good one.
    assert durations.down_ms == first_up_after.ts_ms - first_down.ts_ms
    kinds = [events.get_nowait().kind for _ in range(events.qsize())]
    assert kinds == [EventKind.OPENED, EventKind.RESOLVED]


async def test_results_record_when_each_check_was_due(write_config):
    async with Target() as target:
        probe = Probe(config_for(write_config, target.url), flush_interval=0.05)
        await probe.start()
        try:
            results = await stored(probe, "web", lambda rs: len(rs) >= 3)
        finally:
            await probe.stop()
    assert all(r.status is Status.UP and r.reason == "HTTP 200" for r in results)
    assert all(r.late_ms >= 0 for r in results)
    gaps = [b.scheduled_ms - a.scheduled_ms for a, b in zip(results, results[1:])]
    assert all(abs(g - INTERVAL * 1000) <= 1 for g in gaps)


async def test_healthz_says_ok_while_running(write_config):
    async with Target() as target:
        app = create_app(Probe(config_for(write_config, target.url), flush_interval=0.05))
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            response = await client.get("/healthz")
            body = await response.json()
    assert response.status == 200
    assert body["status"] == "ok" and body["scheduler_running"] and body["database_writable"]
    assert body["monitors"] == 1


async def test_healthz_says_503_and_why_while_the_database_takes_no_writes_and_200_after(write_config):
    from tests.storage.breakage import read_only, writable
    async with Target() as target:
        probe = Probe(config_for(write_config, target.url), flush_interval=0.05)
        async with TestClient(TestServer(create_app(probe), host="127.0.0.1")) as client:
            await read_only(probe.store)  # the next batch of results cannot be written
            broken, broken_status = await healthz_until(client, lambda body: not body["database_writable"])
            private = probe.health(private=True)
            await writable(probe.store)
            mended, mended_status = await healthz_until(client, lambda body: body["database_writable"])
    assert broken_status == 503 and broken["status"] == "failing"
    assert broken["problems"] == ["read-only"]  # the public side names the problem, not where or in which words
    (problem,) = private["problems"]  # the admin API's: the problem, where, and the engine's own words for it
    assert problem == f"read-only: {probe.store.describe()}: " + {
        "SqliteStore": "attempt to write a readonly database",
        "PostgresStore": "cannot execute INSERT in a read-only transaction"}[type(probe.store).__name__]
    assert mended_status == 200 and mended["problems"] == []


async def healthz_until(client, condition, timeout: float = 10.0) -> tuple[dict, int]:
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get("/healthz")
        body = await response.json()
        if condition(body):
            return body, response.status
        assert time.monotonic() < deadline, f"/healthz still says {body}"
        await asyncio.sleep(0.05)


def web_and_tcp(url: str, tcp_id: str, port: int) -> str:
    return f"""
        [storage]
        path = "probe.db"
        [defaults]
        interval = "{INTERVAL}s"
        timeout = "400ms"
        [[monitors]]
        id = "web"
        type = "http"
        url = "{url}"
        [[monitors]]
        id = "{tcp_id}"
        type = "tcp"
        host = "127.0.0.1"
        port = {port}
    """


async def test_applying_a_new_config_adds_and_removes_monitors_and_keeps_history(write_config):
    async with Target() as target:
        probe = Probe(load_config(write_config(web_and_tcp(target.url, "old", target.server.port))),
                      flush_interval=0.05)
        await probe.start()
        try:
            before = await stored(probe, "web", lambda rs: len(rs) >= 2)
            await stored(probe, "old", lambda rs: len(rs) >= 1)
            second = load_config(write_config(web_and_tcp(target.url, "port", target.server.port), name="second.toml"))
            applied_ms = int(time.time() * 1000)
            await probe.apply(second)
            # Two checks of the new monitor: time enough for the removed one to have been checked again.
            await stored(probe, "port", lambda rs: len(rs) >= 2)
            web = await stored(probe, "web", lambda rs: rs[-1].ts_ms > applied_ms)
            old = await probe.store.results("old")
            scheduled, monitors = probe.scheduler.monitor_ids(), set(probe.monitors)
        finally:
            await probe.stop()
    assert scheduled == monitors == {"web", "port"}
    assert old and all(r.ts_ms < applied_ms for r in old)  # removed: checked no more, its history kept
    assert web[:len(before)] == before  # the kept monitor's history is untouched


async def test_a_late_older_result_is_stored_but_does_not_replace_the_monitors_latest(write_config):
    from probe.core.models import ResultRecord
    probe = Probe(config_for(write_config, "http://127.0.0.1:1/"), flush_interval=0.05)
    await probe.store.open()
    try:
        await probe._load_monitors(probe.config.monitors)
        monitor = probe.config.monitor("web")
        now = int(time.time() * 1000)
        probe.record(monitor, ResultRecord("web", now, 0, Status.UP, "HTTP 200", 5.0, {}))
        probe.record(monitor, ResultRecord("web", now - 400, 0, Status.DOWN, "timed out", None, {}))
        await probe.store.flush()
        stored = await probe.store.results("web")
    finally:
        await probe.store.close()
    assert probe.latest["web"].ts_ms == now and probe.latest["web"].status is Status.UP
    assert sorted(r.ts_ms for r in stored) == [now - 400, now]


async def test_a_reload_that_turns_a_checked_monitor_into_a_push_monitor_stops_checking_it(write_config):
    async with Target() as target:
        probe = Probe(config_for(write_config, target.url), flush_interval=0.05)
        await probe.start()
        try:
            assert probe.scheduler.monitor_ids() == {"web"}
            pushed = load_config(write_config("""
                [storage]
                path = "probe.db"
                [[monitors]]
                id = "web"
                type = "push"
                token = "web-push-token-0123456789"
                period = "1h"
                grace = "5m"
            """))
            await probe.apply(pushed)
            assert probe.scheduler.monitor_ids() == set()
            assert set(probe.passive.watched) == {"web"}
            await asyncio.sleep(3 * INTERVAL)
            await probe.store.flush()
            before = len(await probe.store.results("web"))
            await asyncio.sleep(3 * INTERVAL)
            await probe.store.flush()
            assert len(await probe.store.results("web")) == before  # no check ran since
            assert await probe.feed("web-push-token-0123456789", Ping(now_ms(), "success")) is Fed.ACCEPTED
        finally:
            await probe.stop()
