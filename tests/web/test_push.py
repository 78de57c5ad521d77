"""The push routes as scripts call them: healthchecks' and Uptime Kuma's URLs against a running app,
and what each request left in the database."""
import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer

from probe.config.loader import load_config
from probe.core.models import Status
from probe.engine.passive import BURST
from probe.service import Probe
from probe.web.app import create_app
from probe.web.keys import PROBE
from probe.web.push import BODY_LIMIT

TOKEN = "job-token-0123456789abcdef"
OTHER = "other-token-0123456789abcd"


@pytest.fixture
async def client(write_config):
    path = write_config(f"""
        [storage]
        path = "probe.db"
        [[monitors]]
        id = "job"
        type = "push"
        token = "{TOKEN}"
        period = "1h"
        grace = "5m"
        [[monitors]]
        id = "other"
        type = "push"
        token = "{OTHER}"
        period = "1h"
        grace = "5m"
    """)
    probe = Probe(load_config(path), flush_interval=0.01)
    client = TestClient(TestServer(create_app(probe), host="127.0.0.1"))
    await client.start_server()
    yield client
    await client.close()


async def stored(client, monitor_id="job"):
    probe = client.app[PROBE]
    await probe.store.flush()
    return await probe.store.results(monitor_id)


async def test_each_healthchecks_url_records_what_the_job_said(client):
    answers = [await client.get(f"/ping/{TOKEN}"),
               await client.post(f"/ping/{TOKEN}", data="backup done, 3.2 GB\n"),
               await client.head(f"/ping/{TOKEN}"),
               await client.get(f"/ping/{TOKEN}/fail"),
               await client.post(f"/ping/{TOKEN}/2", data="rsync: connection refused"),
               await client.get(f"/ping/{TOKEN}/0")]
    assert [a.status for a in answers] == [200] * 6
    assert await answers[0].text() == "OK"
    assert answers[0].headers["Ping-Body-Limit"] == str(BODY_LIMIT)
    results = await stored(client)
    assert [(r.status, r.reason) for r in results] == [
        (Status.UP, "ping received"), (Status.UP, "backup done, 3.2 GB"), (Status.UP, "ping received"),
        (Status.DOWN, "job reported failure"),
        (Status.DOWN, "job reported failure: exit status 2 — rsync: connection refused"),
        (Status.UP, "ping received")]
    times = [r.ts_ms for r in results]
    assert times == sorted(set(times))  # each report its own millisecond, in order
    assert await stored(client, "other") == []


async def test_a_started_run_has_its_duration_as_latency(client):
    await client.get(f"/ping/{TOKEN}/start")
    await asyncio.sleep(0.2)
    await client.get(f"/ping/{TOKEN}")
    (result,) = await stored(client)
    started = int(await client.app[PROBE].store.meta_get("passive_start:job"))
    assert result.latency_ms == result.ts_ms - started
    assert result.latency_ms >= 200


async def test_uptime_kuma_push_urls_record_status_message_and_latency(client):
    up = await client.get(f"/api/push/{TOKEN}", params={"status": "up", "msg": "OK", "ping": "12.5"})
    down = await client.post(f"/api/push/{TOKEN}", params={"status": "down", "msg": "disk full"})
    bad = await client.get(f"/api/push/{TOKEN}", params={"ping": "soon"})
    assert (up.status, await up.json()) == (200, {"ok": True})
    assert down.status == 200
    assert (bad.status, await bad.json()) == (400, {"error": "ping must be a number of milliseconds from 0 to 1e11",
                                                    "status": 400})
    results = await stored(client)
    assert [(r.status, r.reason, r.latency_ms) for r in results] == [
        (Status.UP, "OK", 12.5), (Status.DOWN, "job reported failure — disk full", None)]


async def test_only_the_first_10_kb_of_a_body_are_kept(client):
    body = ("ä" * 3 + "x" * BODY_LIMIT * 3).encode()
    await client.post(f"/ping/{TOKEN}", data=body)
    (result,) = await stored(client)
    assert result.reason.encode() == body[:BODY_LIMIT]


async def test_an_unknown_token_answers_404_and_records_nothing(client):
    answers = [await client.get(f"/ping/{TOKEN}x"), await client.post(f"/ping/{TOKEN[:-1]}/fail"),
               await client.get("/ping/{token}/1"), await client.get(f"/api/push/{TOKEN.upper()}")]
    assert [a.status for a in answers] == [404, 404, 404, 404]
    assert await answers[0].text() == "not found"
    assert await answers[3].json() == {"error": "monitor not found", "status": 404}
    assert await stored(client) == [] and await stored(client, "other") == []


async def test_an_exit_status_outside_0_to_255_is_refused(client):
    for status in ("256", "-1", "abc", "٣"):
        answer = await client.get(f"/ping/{TOKEN}/{status}")
        assert answer.status == 400, status
    assert await stored(client) == []


async def test_a_token_that_reports_too_often_is_refused_and_only_what_was_accepted_is_stored(client):
    answers = [(await client.get(f"/ping/{TOKEN}")).status for _ in range(BURST + 15)]
    assert set(answers) == {200, 429}
    assert BURST <= answers.count(200) < BURST + 15
    assert len(await stored(client)) == answers.count(200)
    assert (await client.get(f"/ping/{OTHER}")).status == 200  # per token: the other one is not held back
