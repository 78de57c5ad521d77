"""The overall state, told the same by the page, /api/v1 and /api/v2, against a real `probe run`.

Issue 14 items 1 and 6: any open incident makes the state at least its impact; maintenance is the
state only when nothing else is wrong; an operator's component status holds until resolved and
combines with the checks as the worse of the two; a monitor with no result is never operational.
"""
from __future__ import annotations

import asyncio
import itertools
import re
import signal
import time

import aiohttp
import pytest

from probe.engine.scheduler import first_run
from tests.cli.test_main import free_port, probe_cli
from tests.test_crash import start_probe

TOKEN = "overall-story-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BANNER = re.compile(r'<section class="banner b-(\w+)"[^>]*>.*?<span class="banner-text">([^<]*)</span>', re.S)
ROW_STATUS = re.compile(r'<article class="monitor" id="m-([\w-]+)" data-status="(\w+)"')

# What Statuspage calls each state, written out here rather than read from probe/view/overall.py.
WORDS = {
    "operational": ("none", "All Systems Operational", "All Systems Operational"),
    "maintenance": ("none", "Service Under Maintenance", "Under Maintenance"),
    "degraded": ("minor", "Degraded System Service", "Degraded Performance"),
    "minor_outage": ("minor", "Minor Service Outage", "Minor Service Outage"),
    "partial_outage": ("major", "Partial System Outage", "Partial Outage"),
    "unknown": ("none", "Some Systems Not Yet Checked", "Some systems have no data yet"),
}


def story_config(port: int, monitors: dict[str, str]) -> str:
    """Monitors that check this probe's own listening port: up from their first check."""
    entries = "".join(f"""
        [[monitors]]
        id = "{monitor_id}"
        name = "{monitor_id.upper()}"
        type = "tcp"
        host = "127.0.0.1"
        port = {port}
        interval = "{interval}"
        timeout = "900ms"
    """ for monitor_id, interval in monitors.items())
    return f"""
        [server]
        listen = "127.0.0.1:{port}"
        admin_token = "{TOKEN}"
        [storage]
        path = "probe.db"
        [page]
        title = "Story"
    """ + entries


class Readers:
    """What a visitor, a v1 client and a Statuspage client each read at one moment."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base = http, base

    async def get(self, path: str, json: bool = True):
        async with self.http.get(self.base + path) as response:
            assert response.status == 200, path
            return await (response.json() if json else response.text())

    async def read(self) -> dict:
        html = await self.get("/", json=False)
        banner_state, banner_text = BANNER.search(html).groups()
        v1 = await self.get("/api/v1/status")
        v2 = (await self.get("/api/v2/status.json"))["status"]
        components = (await self.get("/api/v2/components.json"))["components"]
        return {"page": (banner_state, banner_text.strip()), "v1": (v1["status"], v1["indicator"], v1["description"]),
                "v2": (v2["indicator"], v2["description"]),
                "page_rows": dict(ROW_STATUS.findall(html)),
                "v1_monitors": {m["id"]: (m["status"], m["component_status"]) for m in v1["monitors"]},
                "v2_components": {c["name"]: c["status"] for c in components if not c["group"]}}

    async def admin(self, method: str, path: str, body: dict | None = None) -> dict:
        async with self.http.request(method, self.base + "/api/v1/admin" + path, json=body, headers=AUTH) as response:
            doc = await response.json()
            assert response.status in (200, 201), doc
            return doc


def expected_state(impact: str | None, maintenance: bool, component: bool) -> str:
    """The rule as the README states it, case by case."""
    if impact == "major":
        return "partial_outage"  # a major incident: at least "major", whatever else holds
    if component:
        return "degraded"  # api set to degraded_performance: minor, told by its component
    if impact == "minor":
        return "minor_outage"
    return "maintenance" if maintenance else "operational"


async def until_checked(readers: Readers, ids: set[str], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        monitors = {m["id"]: m["status"] for m in (await readers.get("/api/v1/status"))["monitors"]}
        if all(monitors[i] != "unknown" for i in ids):
            return
        assert time.monotonic() < deadline, monitors
        await asyncio.sleep(0.2)


async def test_the_page_v1_and_v2_tell_the_same_overall_state_in_every_case(write_config):
    port = free_port()
    config = write_config(story_config(port, {"api": "1s", "web": "1s", "db": "1s"}))
    proc = await start_probe(config, port)
    seen = {}
    try:
        async with aiohttp.ClientSession() as http:
            readers = Readers(http, f"http://127.0.0.1:{port}")
            await until_checked(readers, {"api", "web", "db"})
            for impact, maintenance, component in itertools.product((None, "minor", "major"), (False, True),
                                                                    (False, True)):
                window = incident = None
                if maintenance:
                    window = await readers.admin("POST", "/maintenance", {
                        "title": "DB upgrade", "monitors": ["db"], "duration": "1h"})
                if impact or component:
                    # Without an incident the operator sets a status through one of impact "none".
                    incident = await readers.admin("POST", "/incidents", {
                        "title": "API errors", "impact": impact or "none", "monitors": ["api"],
                        "component_status": {"api": "degraded_performance"} if component else {}})
                seen[impact, maintenance, component] = await readers.read()
                if incident:
                    await readers.admin("POST", f"/incidents/{incident['id']}/updates", {"status": "resolved"})
                if window:
                    await readers.admin("DELETE", f"/maintenance/{window['id']}")
            after = await readers.read()
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)

    assert len(seen) == 12
    for (impact, maintenance, component), got in seen.items():
        state = expected_state(impact, maintenance, component)
        indicator, description, banner = WORDS[state]
        case = (impact, maintenance, component)
        assert got["page"] == (state, banner), case
        assert got["v1"] == (state, indicator, description), case
        assert got["v2"] == (indicator, description), case
        api = "degraded" if component else "up"
        db = "maintenance" if maintenance else "up"
        assert got["page_rows"] == {"api": api, "web": "up", "db": db}, case
        assert got["v1_monitors"]["api"] == (api, "degraded_performance" if component else "operational"), case
        assert got["v2_components"] == {"API": "degraded_performance" if component else "operational",
                                        "WEB": "operational", "DB": "under_maintenance" if maintenance else "operational"}
    # Resolved: the operator's status no longer holds, and the page is operational again.
    assert after["page"][0] == "operational" and after["v2_components"]["API"] == "operational"


async def test_two_major_incidents_during_maintenance_are_not_called_maintenance(write_config):
    """The case the issue saw: the banner said "Under Maintenance" over two major incidents, and an
    operator's "API errors — major" left the API "Operational". The CLI sets the component's status."""
    port = free_port()
    config = write_config(story_config(port, {"api": "1s", "web": "1s", "db": "1s"}))
    proc = await start_probe(config, port)
    try:
        async with aiohttp.ClientSession() as http:
            readers = Readers(http, f"http://127.0.0.1:{port}")
            await until_checked(readers, {"api", "web", "db"})
            await readers.admin("POST", "/maintenance", {"title": "Patching", "monitors": ["db", "web"],
                                                         "duration": "2h"})
            cli = ("incident", "-c", str(config))
            code, out, err = await probe_cli(*cli, "open", "--title", "API errors", "--impact", "major",
                                             "--monitor", "api", "--component-status", "api=partial_outage")
            assert code == 0, err
            api_incident = out.split()[0].lstrip("#")
            await readers.admin("POST", "/incidents", {"title": "Web errors", "impact": "major", "monitors": ["web"]})
            during = await readers.read()
            badge = await readers.get("/badge/api/status.svg", json=False)
            code, _, err = await probe_cli(*cli, "update", api_incident, "--status", "identified",
                                           "--component-status", "api=major_outage")
            assert code == 0, err
            worse = await readers.read()
            bad_status = await probe_cli(*cli, "update", api_incident, "--status", "identified",
                                         "--component-status", "api=broken")
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
    assert during["page"] == ("partial_outage", "Partial Outage")
    assert during["v2"] == ("major", "Partial System Outage")
    assert during["page_rows"]["api"] == "partial" and during["v2_components"]["API"] == "partial_outage"
    assert during["v1_monitors"]["api"] == ("partial", "partial_outage")
    assert during["page_rows"]["db"] == "maintenance"
    assert "partial" in badge
    assert worse["v2_components"]["API"] == "major_outage" and worse["page_rows"]["api"] == "down"
    assert bad_status[0] == 2 and "MONITOR=STATUS" in bad_status[2]


def never_due_soon(prefix: str, now: float, count: int) -> list[str]:
    """Ids of daily monitors whose first check is more than an hour away (the phase is a hash of the id)."""
    found = (f"{prefix}{n}" for n in itertools.count())
    return list(itertools.islice((i for i in found if first_run(i, 86_400, now) - now > 3600), count))


async def test_a_monitor_with_no_result_yet_is_never_called_operational(write_config):
    port = free_port()
    later = never_due_soon("later", time.time(), 2)
    config = write_config(story_config(port, {"api": "1s", "web": "1s", later[0]: "1d", later[1]: "1d"}))
    proc = await start_probe(config, port)
    try:
        async with aiohttp.ClientSession() as http:
            readers = Readers(http, f"http://127.0.0.1:{port}")
            await until_checked(readers, {"api", "web"})
            got = await readers.read()
            summary = await readers.get("/api/v2/summary.json")
            html = await readers.get("/", json=False)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
    state, banner_text = got["page"]
    assert state == "unknown" and banner_text == WORDS["unknown"][2]
    assert got["v1"] == ("unknown", "none", "Some Systems Not Yet Checked")
    assert got["v2"] == ("none", "Some Systems Not Yet Checked")
    for monitor_id in later:
        assert got["page_rows"][monitor_id] == "unknown"
        assert got["v1_monitors"][monitor_id] == ("unknown", None)
    # v2 has no word for "not yet checked": the component is left out rather than called operational.
    assert set(got["v2_components"]) == {"API", "WEB"}
    assert {c["name"] for c in summary["components"]} == {"API", "WEB"}
    assert "All Systems Operational" not in html and html.count("No data yet") >= 2


@pytest.mark.parametrize("checked, operator, shown", [
    ("up", None, "up"), ("up", "degraded_performance", "degraded"), ("down", "degraded_performance", "down"),
    ("maintenance", "partial_outage", "partial"), ("unknown", "operational", "unknown"),
    ("unknown", "major_outage", "down"), ("degraded", "under_maintenance", "degraded")])
def test_a_component_shows_the_worse_of_its_checks_and_the_operator(checked, operator, shown):
    from probe.view.overall import component_status
    assert component_status(checked, operator) == shown
