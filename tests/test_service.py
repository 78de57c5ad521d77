"""The whole data path with real parts: a real HTTP target, the real scheduler, a real file."""
import asyncio
import time

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from probe.config.loader import load_config
from probe.core.models import EventKind, Impact, Status
from probe.service import Probe
from probe.web.app import create_app

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


async def test_an_outage_of_known_span_opens_and_resolves_one_incident_and_counts_its_downtime(write_config):
    async with Target() as target:
        probe = Probe(config_for(write_config, target.url), flush_interval=0.05)
        events = probe.bus.subscribe()
        await probe.start()
        try:
            await asyncio.sleep(2.0)
            went_down = time.time() * 1000
            target.healthy = False
            await asyncio.sleep(3.0)
            came_back = time.time() * 1000
            target.healthy = True
            await asyncio.sleep(2.5)
            await probe.store.flush()
            incidents = await probe.store.incidents("web")
            durations = (await probe.stats.durations(["web"], int(went_down - 1500), int(came_back + 1500)))["web"]
        finally:
            await probe.stop()

    interval_ms = INTERVAL * 1000
    (incident,) = incidents
    assert incident.impact is Impact.MAJOR
    # Stored times are whole milliseconds (truncated): a check that starts within the
    # millisecond of the switch is stored up to 1 ms before it.
    assert went_down - 1 <= incident.started_ms <= went_down + interval_ms
    assert came_back - 1 <= incident.resolved_ms <= came_back + interval_ms
    assert "HTTP 503" in incident.reason
    # Downtime measured from stored results matches the real outage within one interval.
    assert abs(durations.down_ms - (came_back - went_down)) <= interval_ms
    kinds = [events.get_nowait().kind for _ in range(events.qsize())]
    assert kinds == [EventKind.OPENED, EventKind.RESOLVED]


async def test_results_record_when_each_check_was_due(write_config):
    async with Target() as target:
        probe = Probe(config_for(write_config, target.url), flush_interval=0.05)
        await probe.start()
        try:
            await asyncio.sleep(1.8)
            await probe.store.flush()
            results = await probe.store.results("web")
        finally:
            await probe.stop()
    assert len(results) >= 2
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


async def test_healthz_says_503_and_why_when_the_database_fails(write_config):
    async with Target() as target:
        probe = Probe(config_for(write_config, target.url), flush_interval=0.05)
        app = create_app(probe)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            probe.store.healthy, probe.store.last_error = False, "database write failed: disk I/O error"
            response = await client.get("/healthz")
            body = await response.json()
            probe.store.healthy = True
    assert response.status == 503
    assert body["problems"] == ["database is not writable"]  # the error text, with its path, is the admin API's


async def test_applying_a_new_config_adds_and_removes_monitors_and_keeps_history(write_config, tmp_path):
    async with Target() as target:
        first = config_for(write_config, target.url)
        probe = Probe(first, flush_interval=0.05)
        await probe.start()
        try:
            await asyncio.sleep(1.2)
            second = load_config(write_config(f"""
                [storage]
                path = "probe.db"
                [[monitors]]
                id = "web"
                type = "http"
                url = "{target.url}"
                interval = "{INTERVAL}s"
                timeout = "400ms"
                [[monitors]]
                id = "port"
                type = "tcp"
                host = "127.0.0.1"
                port = {target.server.port}
                interval = "{INTERVAL}s"
                timeout = "400ms"
            """, name="second.toml"))
            await probe.apply(second)
            await asyncio.sleep(1.2)
            await probe.store.flush()
            assert probe.scheduler.monitor_ids() == {"web", "port"}
            assert len(await probe.store.results("port")) >= 1
            web_results = await probe.store.results("web")
            assert web_results[0].ts_ms < probe.started_ms + 1200  # history kept across the change
        finally:
            await probe.stop()


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
