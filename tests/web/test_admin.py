"""The admin API against a real probe, a real SQLite file and a real HTTP client."""
import asyncio
import hmac
import logging
import time

import pytest
from aiohttp.test_utils import TestClient, TestServer

from probe.config.loader import load_config
from probe.core.models import ResultRecord, Status
from probe.service import Probe
from probe.web.admin import SLOW_S
from probe.web.app import create_app

TOKEN = "s3cret-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def make_config(write_config, token=TOKEN):
    return load_config(write_config(make_config_text(token)))


def make_config_text(token=TOKEN) -> str:
    return f"""
        [server]
        admin_token = "{token}"
        [storage]
        path = "probe.db"
        [[monitors]]
        id = "web"
        name = "Website"
        type = "tcp"
        host = "127.0.0.1"
        port = 9
        interval = "1h"
        timeout = "1s"
    """


@pytest.fixture
async def admin(write_config):
    probe = Probe(make_config(write_config), flush_interval=0.01)
    async with TestClient(TestServer(create_app(probe), host="127.0.0.1")) as client:
        probe.scheduler.unschedule("web")  # the test feeds results itself
        yield client, probe


async def test_without_a_token_in_the_config_no_admin_route_exists(write_config):
    probe = Probe(make_config(write_config, token=""), flush_interval=0.01)
    async with TestClient(TestServer(create_app(probe), host="127.0.0.1")) as client:
        response = await client.get("/api/v1/admin/incidents", headers=AUTH)
    assert response.status == 404


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                                     {"Authorization": f"Basic {TOKEN}"}])
async def test_it_answers_401_in_the_json_error_shape_without_the_right_token(admin, headers):
    client, _ = admin
    response = await client.post("/api/v1/admin/incidents", json={"title": "x"}, headers=headers)
    assert response.status == 401
    assert await response.json() == {"error": "a valid admin token is required", "status": 401}
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_it_compares_the_token_in_constant_time(admin, monkeypatch):
    client, _ = admin
    seen, real = [], hmac.compare_digest

    def spy(a, b):
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr("probe.web.admin.hmac.compare_digest", spy)
    await client.get("/api/v1/admin/incidents", headers={"Authorization": "Bearer guess"})
    assert seen == [(b"guess", TOKEN.encode())]


WRONG = {"Authorization": "Bearer no"}


async def test_after_many_wrong_tokens_the_right_one_is_still_accepted_and_wrong_ones_get_429(admin):
    """The limit used to refuse the operator too, for a minute anyone could renew."""
    client, _ = admin
    for _ in range(10):
        assert (await client.get("/api/v1/admin/incidents", headers=WRONG)).status == 401
    refused = await client.get("/api/v1/admin/incidents", headers=WRONG)
    assert refused.status == 429 and int(refused.headers["Retry-After"]) > 0
    assert (await refused.json())["status"] == 429
    assert (await client.get("/api/v1/admin/incidents", headers=AUTH)).status == 200


async def test_past_the_limit_guesses_from_one_address_are_answered_one_at_a_time(admin):
    """What slows guessing: attempts from a failing address wait their turn, a second apart,
    however many are sent at once (a bound from below, not a speed)."""
    client, _ = admin
    for _ in range(10):
        await client.get("/api/v1/admin/incidents", headers=WRONG)
    started = time.monotonic()
    answers = await asyncio.gather(*(client.get("/api/v1/admin/incidents", headers=WRONG) for _ in range(4)))
    assert [a.status for a in answers] == [429] * 4
    assert time.monotonic() - started >= 4 * SLOW_S - 0.05


def proxied_config(write_config, proxies: str):
    text = make_config_text().replace("[storage]", f"trusted_proxies = {proxies}\n[storage]")
    return load_config(write_config(text))


@pytest.mark.parametrize("proxies,separate", [('["127.0.0.1"]', True), ('["10.0.0.0/8", "::1"]', False)])
async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(write_config, proxies, separate):
    """The peer is 127.0.0.1: trusted, X-Forwarded-For names the client; untrusted, it is ignored
    (anyone can send that header)."""
    probe = Probe(proxied_config(write_config, proxies), flush_interval=0.01)
    async with TestClient(TestServer(create_app(probe), host="127.0.0.1")) as client:
        attacker = {**WRONG, "X-Forwarded-For": "198.51.100.9, 203.0.113.5"}
        for _ in range(10):
            assert (await client.get("/api/v1/admin/incidents", headers=attacker)).status == 401
        neighbour = {**WRONG, "X-Forwarded-For": "203.0.113.77"}
        expected = 401 if separate else 429
        assert (await client.get("/api/v1/admin/incidents", headers=neighbour)).status == expected
        spoofed = {**WRONG, "X-Forwarded-For": "203.0.113.5, 127.0.0.1"}  # the proxy's own entry is skipped
        assert (await client.get("/api/v1/admin/incidents", headers=spoofed)).status == 429


async def test_an_operator_takes_an_incident_from_open_to_postmortem(admin):
    client, probe = admin
    opened = await client.post("/api/v1/admin/incidents", headers=AUTH, json={
        "title": "Payments are slow", "impact": "minor", "monitors": ["web"]})
    assert opened.status == 201
    incident = await opened.json()
    path = f"/api/v1/admin/incidents/{incident['id']}"
    early = await client.put(path + "/postmortem", headers=AUTH, json={"body": "# Summary"})
    assert early.status == 409
    for status, body in [("identified", "A bad deploy."), ("monitoring", None), ("resolved", "All good.")]:
        response = await client.post(path + "/updates", headers=AUTH, json={"status": status, "body": body}
                                     if body else {"status": status})
        assert response.status == 201, await response.text()
    done = await (await client.put(path + "/postmortem", headers=AUTH,
                                   json={"body": "# Summary\n<script>x</script>"})).json()

    assert done["status"] == "resolved" and done["resolved_at"] is not None
    assert done["monitors"] == ["web"] and done["impact"] == "minor" and done["origin"] == "manual"
    assert done["postmortem"] == "# Summary\n<script>x</script>"  # stored as written; pages escape it
    assert [(u["status"], u["body"]) for u in done["updates"]] == [
        ("investigating", None), ("identified", "A bad deploy."), ("monitoring", None), ("resolved", "All good.")]
    stored = await probe.store.incident(incident["id"])
    assert stored.postmortem_ms is not None and stored.affected == ("web",)
    kinds = [row[2] for row in await probe.store.events_after(0)]
    assert kinds == ["open", "update", "update", "resolve", "postmortem"]
    again = await client.post(path + "/updates", headers=AUTH, json={"status": "monitoring"})
    assert again.status == 409


@pytest.mark.parametrize("body, error", [
    ({"impact": "major"}, "title is required"),
    ({"title": "x", "impact": "huge"}, "impact must be one of none, minor, major, critical (got 'huge')"),
    ({"title": "x", "monitors": ["nope"]}, "unknown monitor 'nope'"),
    ({"title": "x", "status": "resolved"}, "status must be one of investigating, identified, monitoring "
                                           "(got 'resolved')"),
    ({"title": "x", "colour": "red"}, "unknown field 'colour' (expected title, impact, monitors, status, body, "
                                      "component_status)"),
    ({"title": "x", "component_status": {"nope": "major_outage"}}, "component_status: unknown monitor 'nope'"),
    ({"title": "x", "component_status": {"web": "down"}}, "component_status of web must be one of operational, "
     "under_maintenance, degraded_performance, partial_outage, major_outage (got 'down')"),
    ({"title": "x", "component_status": {"web": 3}}, "component_status must map monitor ids to component statuses"),
    ({"title": 5}, "title must be a str"),
    ({"title": "x" * 201}, "title is too long (201 characters; at most 200)"),
])
async def test_it_refuses_a_bad_request_with_a_clear_message(admin, body, error):
    client, _ = admin
    response = await client.post("/api/v1/admin/incidents", headers=AUTH, json=body)
    assert response.status == 400
    assert await response.json() == {"error": error, "status": 400}


async def test_unknown_incidents_and_non_json_bodies_get_the_json_error_shape(admin):
    client, _ = admin
    missing = await client.post("/api/v1/admin/incidents/999/updates", headers=AUTH, json={"status": "monitoring"})
    assert (missing.status, await missing.json()) == (404, {"error": "incident not found", "status": 404})
    bad = await client.post("/api/v1/admin/incidents", headers=AUTH, data=b"{not json")
    assert (bad.status, (await bad.json())["error"]) == (400, "the request body must be a JSON object")


def down(ts_ms):
    return ResultRecord("web", ts_ms, ts_ms, Status.DOWN, "connection refused by 127.0.0.1:9")


async def test_a_human_title_and_status_on_an_automatic_incident_survive_the_engine(admin):
    client, probe = admin
    monitor = probe.config.monitor("web")
    t0 = int(time.time() * 1000) - 120_000
    for i in range(2):
        probe.record(monitor, down(t0 + i * 60_000))
    await probe.store.flush()
    (incident,) = await probe.store.open_incidents()
    path = f"/api/v1/admin/incidents/{incident.id}"
    assert (await client.patch(path, headers=AUTH, json={"title": "Website is unreachable"})).status == 200
    assert (await client.post(path + "/updates", headers=AUTH, json={"status": "identified"})).status == 201
    now = int(time.time() * 1000)
    probe.record(monitor, down(now + 1))  # the engine carries on with its own copy
    probe.record(monitor, ResultRecord("web", now + 2, now + 2, Status.UP, "connected"))
    await probe.store.flush()
    final = await (await client.get(path, headers=AUTH)).json()
    assert final["title"] == "Website is unreachable"
    assert [u["kind"] for u in final["updates"]] == ["open", "update", "resolve"]
    assert [u["status"] for u in final["updates"]] == ["investigating", "identified", "resolved"]
    listed = await (await client.get("/api/v1/admin/incidents?open=true", headers=AUTH)).json()
    assert listed["incidents"] == []


async def test_while_the_database_takes_no_writes_admin_actions_answer_503_with_the_reason_at_once(admin):
    client, probe = admin
    await probe.store.write([("PRAGMA query_only = ON", ())])  # fails writes as a read-only mount does
    now = int(time.time() * 1000)
    probe.store.submit_result(ResultRecord("web", now, now, Status.UP, "ok", 1.0), 3600)
    for _ in range(100):
        if not probe.store.healthy:
            break
        await asyncio.sleep(0.05)
    refused = await client.post("/api/v1/admin/incidents", headers=AUTH, json={"title": "API errors"})
    body = await refused.json()
    await probe.store.write([("PRAGMA query_only = OFF", ())])
    await probe.store.flush()
    accepted = await client.post("/api/v1/admin/incidents", headers=AUTH, json={"title": "API errors"})
    assert refused.status == 503
    assert body == {"error": f"the database takes no writes: read-only: {probe.store.path}:"
                             " attempt to write a readonly database", "status": 503}
    assert accepted.status == 201


async def test_an_automatic_incident_takes_a_component_status_for_its_own_monitor_only(admin):
    client, probe = admin
    monitor = probe.config.monitor("web")
    t0 = int(time.time() * 1000) - 120_000
    for i in range(2):
        probe.record(monitor, ResultRecord("web", t0 + i * 1000, t0 + i * 1000, Status.DEGRADED, "slow"))
    await probe.store.flush()
    (incident,) = await probe.store.open_incidents()
    path = f"/api/v1/admin/incidents/{incident.id}"
    other = await client.patch(path, headers=AUTH, json={"component_status": {"ghost": "major_outage"}})
    set_ = await client.patch(path, headers=AUTH, json={"component_status": {"web": "partial_outage"}})
    v2 = await (await client.get("/api/v2/components.json")).json()
    probe.record(monitor, ResultRecord("web", t0 + 5000, t0 + 5000, Status.DEGRADED, "slow"))  # the engine's copy
    await probe.store.flush()
    stored = await probe.store.incident(incident.id)
    assert other.status == 400 and (await other.json())["error"] == "component_status: unknown monitor 'ghost'"
    assert set_.status == 200 and (await set_.json())["component_status"] == {"web": "partial_outage"}
    assert [c["status"] for c in v2["components"]] == ["partial_outage"]  # degraded checks, partial by hand
    assert stored.component_status == (("web", "partial_outage"),)


async def test_a_component_status_outlives_a_restart_and_ends_with_its_incident(write_config):
    config = make_config(write_config)
    probe = Probe(config, flush_interval=0.01)
    async with TestClient(TestServer(create_app(probe), host="127.0.0.1")) as client:
        probe.scheduler.unschedule("web")
        opened = await (await client.post("/api/v1/admin/incidents", headers=AUTH, json={
            "title": "Slow pages", "impact": "minor", "component_status": {"web": "degraded_performance"}})).json()
    probe = Probe(config, flush_interval=0.01)
    async with TestClient(TestServer(create_app(probe), host="127.0.0.1")) as client:
        probe.scheduler.unschedule("web")
        before = (await (await client.get("/api/v1/status")).json())["monitors"][0]
        path = f"/api/v1/admin/incidents/{opened['id']}/updates"
        assert (await client.post(path, headers=AUTH, json={"status": "resolved"})).status == 201
        after = (await (await client.get("/api/v1/status")).json())["monitors"][0]
    assert opened["monitors"] == ["web"]  # naming a component's status names the monitor
    assert (before["status"], before["component_status"]) == ("degraded", "degraded_performance")
    assert (after["status"], after["component_status"]) == ("unknown", None)  # its checks speak again: none yet


async def test_a_resolve_by_hand_holds_across_a_restart_until_the_monitor_is_up(write_config):
    config = make_config(write_config)
    t0 = int(time.time() * 1000) - 600_000

    async def run(feed, resolve=False):
        probe = Probe(config, flush_interval=0.01)
        async with TestClient(TestServer(create_app(probe), host="127.0.0.1")) as client:
            probe.scheduler.unschedule("web")
            monitor = probe.config.monitor("web")
            for offset, status in feed:
                probe.record(monitor, ResultRecord("web", t0 + offset, t0 + offset, status, "r"))
            await probe.store.flush()
            if resolve:
                (incident,) = await probe.store.open_incidents()
                path = f"/api/v1/admin/incidents/{incident.id}/updates"
                assert (await client.post(path, headers=AUTH, json={"status": "resolved"})).status == 201
            return [(i.id, i.is_open) for i in await probe.store.incidents("web")]

    assert await run([(0, Status.DOWN), (1000, Status.DOWN)], resolve=True) == [(1, False)]
    assert await run([(2000, Status.DOWN), (3000, Status.DOWN), (4000, Status.DOWN)]) == [(1, False)]  # held
    assert await run([(5000, Status.DOWN), (6000, Status.DOWN)]) == [(1, False)]  # still, after a restart
    assert await run([(7000, Status.UP), (8000, Status.DOWN), (9000, Status.DOWN)]) == [(2, True), (1, False)]


@pytest.mark.parametrize("depth", [100_000, 3_000])
async def test_deeply_nested_json_is_a_400_in_the_error_shape(admin, caplog, depth):
    client, _ = admin
    body = '{"title": ' + "[" * depth + "]" * depth + "}"
    response = await client.post("/api/v1/admin/incidents", headers={**AUTH, "Content-Type": "application/json"},
                                 data=body)
    assert response.status == 400
    assert await response.json() == {"error": "the request body must be a JSON object", "status": 400}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
