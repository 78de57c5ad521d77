"""The status page and its APIs over 90 days of generated history, through a real server."""
import asyncio
import re

import pytest
from aiohttp import web

from probe.view.statuspage import ROUTES as STATUSPAGE_ROUTES
from probe.web.keys import CACHE
from tests.web.conftest import serve
from tests.web.history import PRIVATE_HOST, PRIVATE_NAME, make_history


def monitor_block(html: str, monitor_id: str) -> str:
    start = html.index(f'id="m-{monitor_id}"')
    return html[start:html.index("</article>", start)]


async def test_the_page_shows_the_banner_bars_and_a_down_monitor(site):
    client, _ = site
    response = await client.get("/")
    html = await response.text()
    assert response.status == 200
    assert "Partial Outage" in html  # db is down, the others are up
    for monitor_id in ("api", "web", "db"):
        assert monitor_block(html, monitor_id).count('class="cell ') == 90
    db = monitor_block(html, "db")
    assert 'data-status="down"' in db and "Down" in db
    assert "Database is down" in html  # the active incident, with its generated title
    assert "We are currently investigating this issue." in html


async def test_availability_on_the_page_comes_from_the_stored_history(site):
    client, _ = site
    api = monitor_block(await (await client.get("/")).text(), "api")
    figures = dict(re.findall(r"<dt>([^<]+)</dt><dd>([^<]+)</dd>", api))
    # One hour down ten days ago: 1 - 1/720 over 30 days, 1 - 1/2160 over 90 days.
    assert figures == {"24 hours": "100.00%", "30 days": "99.86%", "90 days": "99.95%"}
    assert "<polyline" in api  # the response-time sparkline, drawn on the server
    (down_day,) = re.findall(r'class="cell l-major"[^>]*title="([^"]+)"', api)
    assert "60 min down" in down_day and "Public API is down" in down_day


async def test_text_from_the_config_is_inert(site):
    client, _ = site
    html = await (await client.get("/")).text()
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in html


async def test_repeat_visits_within_the_cache_time_cost_one_render_and_a_known_etag_gets_304(site):
    client, _ = site
    first = await client.get("/")
    for i in range(20):
        assert (await client.get(f"/?bust={i}")).status == 200  # made-up parameters do not bypass it
    again = await client.get("/", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status == 304
    assert "max-age" in first.headers["Cache-Control"]
    assert client.app[CACHE].renders == 1


CROWD = 30


def crowd_gate(size: int):
    """A middleware that holds requests until `size` have arrived and then lets them all in at
    once: a crowd reaching the page in the same instant, however fast or slow the machine."""
    arrived, everyone = [], asyncio.Event()

    @web.middleware
    async def gate(request, handler):
        arrived.append(request.path)
        if len(arrived) >= size:
            everyone.set()
        await everyone.wait()
        return await handler(request)
    return gate


async def test_a_crowd_arriving_at_a_cold_page_at_once_costs_one_render_and_all_get_the_same_page(write_config):
    client, _ = await serve(await make_history(write_config, days=3), middlewares=[crowd_gate(CROWD)])
    try:
        assert client.app[CACHE].renders == 0  # cold
        responses = await asyncio.gather(*(client.get("/", headers={"Accept-Encoding": "identity"})
                                           for _ in range(CROWD)))
        statuses = [r.status for r in responses]
        bodies = [await r.read() for r in responses]
        renders = client.app[CACHE].renders
    finally:
        await client.close()
    assert statuses == [200] * CROWD
    assert len(set(bodies)) == 1 and b'id="m-api"' in bodies[0]
    assert renders == 1


async def test_the_zh_cn_page_speaks_chinese(write_config):
    client, _ = await serve(await make_history(write_config, language="zh-CN", days=3))
    try:
        html = await (await client.get("/")).text()
    finally:
        await client.close()
    assert '<html lang="zh-CN">' in html
    assert "部分服务中断" in html and "中断" in monitor_block(html, "db")
    assert "Partial Outage" not in html


async def public_paths(client):
    incidents = (await (await client.get("/api/v1/incidents?limit=100")).json())["incidents"]
    paths = ["/", "/history", "/monitors/api", "/monitors/db", "/api/v1/status", "/api/v1/monitors/api",
             "/api/v1/monitors/db/results?limit=5000", "/api/v1/incidents", "/api/v1/maintenance",
             "/history.atom", "/history.rss", "/api/openapi.json"]
    paths += [f"/badge/{m}/{kind}.svg" for m in ("api", "web", "db") for kind in ("status", "uptime", "latency")]
    paths += [f"/incidents/{i['id']}" for i in incidents]
    paths += [f"/api/v2/{name}" for name in STATUSPAGE_ROUTES]
    return paths


async def test_no_public_route_names_the_private_monitor_or_its_target(site):
    client, probe = site
    incidents = await probe.store.incidents("secret")
    assert incidents  # the private monitor did have an incident...
    for path in await public_paths(client):
        response = await client.get(path)
        body = await response.text()
        assert response.status == 200, path
        assert PRIVATE_NAME not in body and PRIVATE_HOST not in body and "secret" not in body, path
    for path in ("/monitors/secret", "/api/v1/monitors/secret", "/api/v1/monitors/secret/results",
                 f"/incidents/{incidents[0].id}"):
        assert (await client.get(path)).status == 404, path  # ...that is as unknown as a missing one


@pytest.mark.parametrize("path, error", [
    ("/api/v1/monitors/nope", "monitor not found"),
    ("/api/v1/monitors/secret/results", "monitor not found"),
    ("/api/v1/monitors/api/results?limit=0", "limit must be a whole number from 1 to 5000"),
    ("/api/v1/monitors/api/results?since=yesterday", "since must be an ISO 8601 time or milliseconds since 1970"),
    ("/api/v2/nothing.json", "not found"),
])
async def test_api_errors_share_one_json_shape(site, path, error):
    client, _ = site
    response = await client.get(path)
    assert response.content_type == "application/json"
    assert await response.json() == {"error": error, "status": response.status}
    assert response.status in (400, 404)


async def test_results_can_be_read_back_for_a_window(site):
    client, _ = site
    doc = await (await client.get("/api/v1/monitors/db/results?since=" + "0" + "&limit=3")).json()
    assert [r["status"] for r in doc["results"]] == ["down", "down", "down"]
    assert all(r["reason"] is None for r in doc["results"])  # show_target is off: no host in reasons
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$", doc["results"][0]["time"])


async def test_a_degraded_day_is_marked_on_the_bar_but_counts_as_available(site):
    client, _ = site
    web = monitor_block(await (await client.get("/")).text(), "web")
    (day,) = re.findall(r'class="cell l-degraded"[^>]*title="([^"]+)"', web)
    assert "100.00%" in day and "No downtime" in day and "120 min degraded" in day


async def test_cached_pages_go_out_gzipped_to_clients_that_accept_it(site):
    import gzip
    client, _ = site
    plain = await client.get("/", headers={"Accept-Encoding": "identity"})
    body = await plain.read()
    packed = await client.get("/", headers={"Accept-Encoding": "gzip, deflate"}, auto_decompress=False)
    raw = await packed.read()
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip" and packed.headers["Vary"] == "Accept-Encoding"
    assert gzip.decompress(raw) == body and len(raw) < len(body) / 3
    refused = await client.get("/", headers={"Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in refused.headers


async def test_maintenance_of_private_monitors_stays_private_and_history_lists_the_rest(write_config):
    from datetime import datetime, timezone

    from probe.core.units import now_ms

    def iso(ms):
        return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat()
    now, day = now_ms(), 86_400_000
    extra = f"""
[[maintenance]]
id = "db-move"
title = "Moving the database"
description = "Reads only, for an hour."
monitors = ["db", "secret"]
start = "{iso(now - 3 * day)}"
duration = "1h"
[[maintenance]]
id = "ledger-patch"
title = "Ledger patch night"
monitors = ["secret"]
start = "{iso(now - 2 * day)}"
duration = "1h"
[[maintenance]]
id = "ledger-soon"
title = "Ledger rekeying"
monitors = ["secret"]
start = "{iso(now + 2 * day)}"
duration = "1h"
"""
    client, probe = await serve(await make_history(write_config, extra=extra))
    try:
        history = await (await client.get("/history")).text()
        index = await (await client.get("/")).text()
        upcoming = await (await client.get("/api/v2/scheduled-maintenances.json")).json()
        feed = await (await client.get("/history.atom")).text()
    finally:
        await client.close()
    assert "Moving the database" in history and "Reads only, for an hour." in history
    for text in (history, index, str(upcoming), feed):
        assert "Ledger" not in text and PRIVATE_NAME not in text  # a window over private monitors only
    (window,) = upcoming["scheduled_maintenances"]
    assert window["name"] == "Moving the database"
    assert [c["name"] for c in window["components"]] == ["Database"]  # the private monitor is not named


async def test_incident_pages_are_full_even_when_private_incidents_crowd_the_newest(site):
    client, probe = site
    secret, api = probe.store.monitor_ids["secret"], probe.store.monitor_ids["api"]
    now = probe.store.last_commit_ms or 2_000_000_000_000
    rows = []
    for k in range(7):  # public, older than all the private ones
        rows.append((probe.store.allocate_id("incidents"), api, now + k * 1000))
    for k in range(100):
        rows.append((probe.store.allocate_id("incidents"), secret, now + 10_000 + k * 1000))
    await probe.store.write([("INSERT INTO incidents (id, monitor, impact, status, started_ms, resolved_ms,"
                              " updated_ms) VALUES (?, ?, 'major', 'resolved', ?, ?, ?)",
                              (i, mid, ts, ts + 500, ts + 500)) for i, mid, ts in rows])
    first = await (await client.get("/api/v1/incidents?limit=5")).json()
    assert len(first["incidents"]) == 5
    assert all(i["monitors"] != ["secret"] for i in first["incidents"])
    second = await (await client.get(first["next"])).json()
    seen = [i["id"] for i in first["incidents"] + second["incidents"]]
    assert len(second["incidents"]) == 5 and len(set(seen)) == 10
    assert [i for i, _, _ in rows[:7][::-1]] == seen[:7]
    history = await (await client.get("/history")).text()
    assert history.count('class="incident') >= 7


async def test_a_flapping_day_shows_five_incidents_and_a_link_to_the_rest(write_config):
    from probe.core.models import ResultRecord, Status
    from probe.core.units import now_ms
    from tests.web.history import morning
    client, probe = await serve(await make_history(write_config, days=2))
    try:
        api, start = probe.config.monitor("api"), morning(now_ms(), 1)
        for k in range(8):  # yesterday, eight short outages 6 min apart: eight incidents (reopen_window 5m)
            ts = start + k * 360_000
            for status, at in ((Status.DOWN, ts), (Status.DOWN, ts + 1000), (Status.UP, ts + 2000)):
                probe.record(api, ResultRecord("api", at, at, status, "r"))
        await probe.store.flush()
        html = await (await client.get("/")).text()
    finally:
        await client.close()
    days = html[html.index('id="past-h"'):].split('<div class="past-day">')[1:]
    yesterday = days[1]
    assert yesterday.count('class="incident ') == 5 and "and 3 more that day, in the history" in yesterday
