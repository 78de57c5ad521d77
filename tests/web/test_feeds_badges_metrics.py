"""Feeds, badges and /metrics over the generated history, through a real server."""
import re
from xml.etree import ElementTree as ET

import feedparser
from prometheus_client.parser import text_string_to_metric_families

from probe.web.keys import CACHE
from tests.web.conftest import serve
from tests.web.history import PRIVATE_HOST, PRIVATE_NAME, XSS, make_history


async def test_the_atom_and_rss_feeds_parse_and_list_public_incidents(site):
    client, probe = site
    for path in ("/history.atom", "/history.rss"):
        response = await client.get(path)
        body = await response.text()
        feed = feedparser.parse(body)
        assert response.status == 200 and not feed.bozo, (path, feed.get("bozo_exception"))
        titles = [e.title for e in feed.entries]
        assert "Database is down [investigating]" in titles and "Public API is down [resolved]" in titles
        assert PRIVATE_NAME not in body and PRIVATE_HOST not in body
        assert len({e.id for e in feed.entries}) == len(feed.entries)
        assert all(e.id.startswith("tag:") for e in feed.entries)
        assert all(e.get("published_parsed") for e in feed.entries)
    atom = ET.fromstring((await (await client.get("/history.atom")).text()).encode())
    assert atom.tag == "{http://www.w3.org/2005/Atom}feed"


async def test_feeds_escape_operator_text(site):
    client, probe = site
    (incident,) = [i for i in await probe.store.open_incidents() if i.monitor_id == "db"]
    from probe.engine.operator import Operator
    await Operator(probe).update(incident.id, "identified", XSS)
    client.app[CACHE]._entries.clear()
    body = await (await client.get("/history.rss")).text()
    assert "<script>" not in body and "&lt;script&gt;alert(1)" in body
    entry = next(e for e in feedparser.parse(body).entries if e.title.startswith("Database"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in entry.description  # shown as text, never run


async def test_badges_show_status_uptime_and_latency(site):
    client, _ = site
    status = await client.get("/badge/db/status.svg")
    uptime = await (await client.get("/badge/api/uptime.svg?window=90d")).text()
    latency = await (await client.get("/badge/api/latency.svg")).text()
    assert status.content_type == "image/svg+xml" and "max-age" in status.headers["Cache-Control"]
    assert ">down</text>" in await status.text()
    assert ">99.95%</text>" in uptime and ">uptime 90d</text>" in uptime
    assert re.search(r">\d+(\.\d+)? ms</text>", latency)
    ET.fromstring(uptime)  # well-formed SVG


async def test_a_badge_escapes_the_name_and_refuses_private_monitors_and_bad_windows(site):
    client, _ = site
    svg = await (await client.get("/badge/web/status.svg")).text()
    ET.fromstring(svg)
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    private = await client.get("/badge/secret/status.svg")
    assert (private.status, await private.json()) == (404, {"error": "monitor not found", "status": 404})
    bad = await client.get("/badge/api/uptime.svg?window=1y")
    assert bad.status == 400 and (await bad.json())["error"] == "window must be one of 24h, 7d, 30d, 90d"


def families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


async def test_metrics_report_every_monitor_with_units_in_the_names(site):
    client, probe = site
    response = await client.get("/metrics")
    found = families(await response.text())
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
    up = {s.labels["monitor"]: s.value for s in found["probe_monitor_up"].samples}
    assert up == {"api": 1, "web": 1, "db": 0}  # no token: as public as the page, so not the private monitor
    for family in found.values():  # ... in no family at all, by id, name or host
        labelled = {s.labels["monitor"] for s in family.samples if "monitor" in s.labels}
        assert labelled <= set(up), (family.name, labelled)
    assert "secret" not in await response.text() and PRIVATE_NAME not in await response.text()
    assert PRIVATE_HOST not in await response.text()
    assert {f.name for f in found.values() if any("monitor" in s.labels for s in f.samples)} >= {
        "probe_monitor_up", "probe_monitor_status", "probe_monitor_latency_seconds", "probe_monitor_checks",
        "probe_monitor_availability_ratio", "probe_monitor_last_check_timestamp_seconds"}
    ratio = {(s.labels["monitor"], s.labels["window"]): s.value for s in found["probe_monitor_availability_ratio"].samples}
    assert abs(ratio["api", "90d"] - (1 - 1 / 2160)) < 2e-5
    latency = {s.labels["monitor"]: s.value for s in found["probe_monitor_latency_seconds"].samples}
    assert latency["api"] == probe.latest["api"].latency_ms / 1000
    states = {s.labels["probe_monitor_status"] for s in found["probe_monitor_status"].samples
              if s.labels["monitor"] == "db" and s.value == 1}
    assert states == {"down"}
    assert "process_resident_memory_bytes" in found or "process_start_time_seconds" in found
    assert [s.labels["version"] for s in found["probe_build_info"].samples] == [__import__("probe").__version__]


async def test_metrics_can_require_a_token_or_be_switched_off(write_config):
    path = await make_history(write_config, days=1)
    text = path.read_text().replace('admin_token = "t0ken"', 'admin_token = "t0ken"\nmetrics_token = "m3trics"')
    path.write_text(text)
    client, _ = await serve(path)
    try:
        refused = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        allowed = await client.get("/metrics", headers={"Authorization": "Bearer m3trics"})
        scraped = families(await allowed.text())
    finally:
        await client.close()
    assert refused.status == 401 and wrong.status == 401 and allowed.status == 200
    up = {s.labels["monitor"] for s in scraped["probe_monitor_up"].samples}
    assert up == {"api", "web", "db", "secret"}  # behind the token: every monitor, for the operator
    path.write_text(text.replace('metrics_token = "m3trics"', "metrics = false"))
    client, _ = await serve(path)
    try:
        assert (await client.get("/metrics")).status == 404
    finally:
        await client.close()
