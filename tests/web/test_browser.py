"""The status page in a real headless browser (Debian's chromium driven by playwright).

What a visitor sees: the banner, 90 cells a bar, a down monitor, the Chinese page, no
console errors. A screenshot is saved beside the test's files (and to artifacts/).
"""
import asyncio
import os
import re
import shutil
from html import unescape
from pathlib import Path

import pytest

from probe.core.units import now_ms
from tests.web.conftest import serve
from tests.web.history import make_history
from tests.web.test_page import monitor_block

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"

if not Path(CHROMIUM).exists():
    if os.environ.get("CI") == "true":
        raise RuntimeError("CI needs chromium for the browser tests: .ci/run installs it with apt-get")
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)
playwright = pytest.importorskip("playwright.async_api")


async def visit(url: str, screenshot: Path):
    async with playwright.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 420, "height": 900})  # a phone, first
            problems, alerts = [], []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("dialog", lambda d: (alerts.append(d.message), asyncio.ensure_future(d.dismiss())))  # before loading
            await page.goto(url)
            seen = {
                "banner": (await page.inner_text(".banner-text")).strip(),
                "cells": await page.eval_on_selector_all("#m-api .bar .cell", "cells => cells.length"),
                "db": (await page.inner_text("#m-db .status")).strip(),
                "alerts": alerts,
            }
            await page.focus("#m-api .bar .cell:last-child")  # the tooltip shows on focus
            seen["tip"] = await page.inner_text(".tip")
            await page.screenshot(path=str(screenshot), full_page=True)
            return seen, problems
        finally:
            await browser.close()


async def test_a_visitor_sees_the_status_at_a_glance(write_config, tmp_path):
    client, probe = await serve(await make_history(write_config))
    try:
        seen, problems = await visit(str(client.make_url("/")), tmp_path / "page.png")
        html = await (await client.get("/")).text()
        midnight = probe.store.calendar.day_start(now_ms())
        checked_today = bool(await probe.store.results("api", since_ms=midnight))
    finally:
        await client.close()
    assert seen["banner"] == "Partial Outage"
    assert seen["cells"] == 90
    assert seen["db"].endswith("Down")
    assert seen["alerts"] == []  # the hostile monitor name ran no script
    # The tip of today's cell is the title the server wrote for it: today the API was checked
    # and always up, or (just after midnight in the page's time zone) not checked yet.
    titles = re.findall(r'class="cell [^"]*"[^>]*title="([^"]+)"', monitor_block(html, "api"))
    assert seen["tip"] == unescape(titles[-1])
    assert ("100.00%" in seen["tip"]) is checked_today and ("No data" in seen["tip"]) is not checked_today
    assert problems == []
    assert (tmp_path / "page.png").stat().st_size > 10_000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(tmp_path / "page.png", ARTIFACTS / "status-page-en.png")


async def test_the_chinese_page_reads_in_chinese(write_config, tmp_path):
    client, _ = await serve(await make_history(write_config, language="zh-CN", days=90))
    try:
        seen, problems = await visit(str(client.make_url("/")), tmp_path / "page-zh.png")
    finally:
        await client.close()
    assert seen["banner"] == "部分服务中断"
    assert seen["db"].endswith("中断")
    assert seen["cells"] == 90 and problems == []
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(tmp_path / "page-zh.png", ARTIFACTS / "status-page-zh-CN.png")


# --- operator text is inert ------------------------------------------------------------------
# Every place an operator writes text, filled with payloads that would each set a flag, log to
# the console and open a dialog if they ever ran. Listeners are attached before the page loads.
PWN = "__pwned=1;console.log('PWNED');alert(1)"
TITLE = f'<script>{PWN}</script>"><img src=x onerror="{PWN}">\'><svg onload="{PWN}">'  # within 200 characters
PAYLOAD = TITLE + f'<a href="javascript:{PWN}">link</a></textarea></title><script>{PWN}</script>'
TOML_PAYLOAD = PAYLOAD.replace("\\", "\\\\").replace('"', '\\"')


def hostile_config(write_config):
    """history.py's site with every operator-written text replaced by the payload."""
    def write(text: str, name: str = "cfg.toml"):
        text = (text.replace('title = "Acme Status"', f'title = "{TOML_PAYLOAD}"\ndescription = "{TOML_PAYLOAD}"')
                .replace('group = "Public"', f'group = "{TOML_PAYLOAD}"')
                .replace('name = "Database"', f'name = "{TOML_PAYLOAD}"\ndescription = "{TOML_PAYLOAD}"'))
        return write_config(text, name)
    return write


def maintenance_extra() -> str:
    from datetime import datetime, timedelta, timezone
    now = datetime.now(timezone.utc)
    return "".join(f'''
[[maintenance]]
id = "{window_id}"
title = "{TOML_PAYLOAD}"
description = "{TOML_PAYLOAD}"
monitors = ["db"]
start = {(now + offset).strftime("%Y-%m-%dT%H:%M:%SZ")}
duration = "2h"
''' for window_id, offset in (("past", -timedelta(days=2)), ("now", -timedelta(minutes=30)),
                              ("soon", timedelta(days=1))))


async def operator_incident(client) -> int:
    """An incident written through the admin API: title, updates and a postmortem carry the payload."""
    auth = {"Authorization": "Bearer t0ken"}
    incident = await (await client.post("/api/v1/admin/incidents", headers=auth, json={
        "title": TITLE, "impact": "minor", "monitors": ["api"], "body": PAYLOAD})).json()
    assert "id" in incident, incident
    path = f"/api/v1/admin/incidents/{incident['id']}"
    for status in ("identified", "resolved"):
        assert (await client.post(path + "/updates", headers=auth, json={"status": status, "body": PAYLOAD})).status == 201
    postmortem = f"# {PAYLOAD}\n\n- {PAYLOAD}\n\n{PAYLOAD}"
    assert (await client.put(path + "/postmortem", headers=auth, json={"body": postmortem})).status == 200
    return incident["id"]


async def visit_hostile(urls: list[str]) -> dict:
    found = {"console": [], "dialogs": [], "errors": [], "flags": {}, "handlers": {}, "scripts": {}}
    async with playwright.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page()
            page.on("console", lambda m: found["console"].append(m.text))
            page.on("pageerror", lambda e: found["errors"].append(str(e)))
            page.on("dialog", lambda d: (found["dialogs"].append(d.message), asyncio.ensure_future(d.dismiss())))
            for url in urls:
                await page.goto(url, wait_until="load")
                for cell in (await page.query_selector_all(".bar .cell"))[-3:]:
                    await cell.focus()  # tooltips are built from operator text too
                found["flags"][url] = await page.evaluate("window.__pwned || 0")
                found["handlers"][url] = await page.evaluate(DOM_SCAN)
                found["scripts"][url] = await page.evaluate(
                    "[...document.scripts].filter(s => !s.src.endsWith('/static/page.js')).length")
        finally:
            await browser.close()
    return found


# Elements with an inline event handler or a javascript: URL: the page itself has none.
DOM_SCAN = """[...document.querySelectorAll('*')].flatMap(el => [...el.attributes]
    .filter(a => a.name.startsWith('on') || /^\\s*javascript:/i.test(a.value))
    .map(a => el.tagName + ' ' + a.name))"""


async def test_operator_text_with_script_and_attribute_breaking_payloads_is_inert_in_a_browser(write_config):
    client, probe = await serve(await make_history(hostile_config(write_config), days=14, extra=maintenance_extra()))
    try:
        incident_id = await operator_incident(client)
        automatic = [i.id for i in await probe.store.incidents("db")]
        pages = ["/", "/history", "/monitors/db", "/monitors/api", f"/incidents/{incident_id}",
                 *[f"/incidents/{i}" for i in automatic[:2]]]
        html = await (await client.get(f"/incidents/{incident_id}")).text()
        found = await visit_hostile([str(client.make_url(p)) for p in pages])
    finally:
        await client.close()
    assert "&lt;script&gt;" in html  # the payload is there, as text
    assert found["dialogs"] == [] and "PWNED" not in " ".join(found["console"]) and found["errors"] == []
    assert set(found["flags"].values()) == {0}
    assert all(v == [] for v in found["handlers"].values()), found["handlers"]
    assert set(found["scripts"].values()) == {0}


# --- the front page's order and positions (issue 14, item 5) -----------------------------------
def busy_extra() -> str:
    """A window under way (covering api), a weekly one, and one ten days out."""
    from datetime import datetime, timedelta, timezone
    now = datetime.now(timezone.utc)
    return f'''
[[maintenance]]
id = "network"
title = "Network switch replacement"
monitors = ["api"]
start = {(now - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")}
duration = "2h"
[[maintenance]]
id = "weekly"
title = "Weekly patching"
monitors = ["web", "db"]
cron = "0 2 * * sun"
duration = "2h"
[[maintenance]]
id = "move"
title = "Data centre move"
monitors = ["db"]
start = {(now + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")}
duration = "4h"
'''


MEASURE = """() => {
  const top = el => el ? Math.round(el.getBoundingClientRect().top + window.scrollY) : null;
  const order = [...document.querySelectorAll('main > section')].map(s => s.className || s.getAttribute('aria-labelledby'));
  const cells = [...document.querySelectorAll('.bar .cell')];
  return {
    banner: top(document.querySelector('.banner')), firstGroup: top(document.querySelector('.group')),
    active: document.querySelectorAll('#active ~ .incident').length,
    running: document.querySelectorAll('[aria-labelledby="maint-now"] .maintenance').length,
    order: order, legend: document.querySelectorAll('.legend li').length,
    greyWithData: cells.filter(c => c.classList.contains('l-nodata') && /%/.test(c.getAttribute('aria-label') || '')).length,
    colouredWithoutData: cells.filter(c => !c.classList.contains('l-nodata') && !/%/.test(c.getAttribute('aria-label') || '')).length,
    width: document.documentElement.scrollWidth,
  };
}"""


async def measure(url: str, width: int, height: int, screenshot: Path, dark: bool = False) -> tuple[dict, list]:
    async with playwright.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": width, "height": height},
                                          color_scheme="dark" if dark else "light")
            problems = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            await page.goto(url)
            seen = await page.evaluate(MEASURE)
            await page.screenshot(path=str(screenshot), full_page=True)
            return seen, problems
        finally:
            await browser.close()


async def test_the_front_page_reads_in_order_and_the_components_start_above_the_fold(write_config, tmp_path):
    client, probe = await serve(await make_history(write_config, days=30, extra=busy_extra()))
    try:
        auth = {"Authorization": "Bearer t0ken"}  # db's outage is one active incident; an operator's is another
        response = await client.post("/api/v1/admin/incidents", headers=auth, json={
            "title": "Slow sign-ups", "impact": "minor", "monitors": ["web"], "body": "We are looking into it."})
        assert response.status == 201
        url = str(client.make_url("/"))
        desktop, problems_d = await measure(url, 1280, 900, tmp_path / "front-1280.png")
        phone, problems_p = await measure(url, 390, 844, tmp_path / "front-390.png")
        dark, _ = await measure(url, 390, 844, tmp_path / "front-390-dark.png", dark=True)
    finally:
        await client.close()
    assert desktop["active"] == 2 and desktop["running"] == 1  # three active items
    assert desktop["firstGroup"] <= 900, desktop
    assert phone["firstGroup"] <= 1400, phone
    assert phone["width"] <= 390  # nothing wider than a phone
    order = desktop["order"]
    assert order.index("banner b-partial_outage") < order.index("active") < order.index("maint-now") \
        < order.index("group") < order.index("maint") < order.index("past"), order
    assert desktop["legend"] == 6
    assert desktop["greyWithData"] == 0 and desktop["colouredWithoutData"] == 0
    assert problems_d == [] and problems_p == []
    ARTIFACTS.mkdir(exist_ok=True)
    for name in ("front-1280.png", "front-390.png", "front-390-dark.png"):
        shutil.copy(tmp_path / name, ARTIFACTS / name)


# --- the monitor page's charts (issue 14, item 4) -----------------------------------------------
CHARTS = """() => [...document.querySelectorAll('h3')].filter(h => h.nextElementSibling &&
  (h.nextElementSibling.matches('svg.chart') || h.nextElementSibling.matches('.chart-empty'))).map(h => {
    const chart = h.nextElementSibling;
    if (!chart.matches('svg')) return {title: h.textContent, empty: chart.textContent.trim()};
    const box = chart.getBoundingClientRect();
    const lines = [...chart.querySelectorAll('polyline')].map(p => [p.getAttribute('class'),
      p.getAttribute('points').trim().split(/\\s+/).length]);
    const axis = [...chart.querySelectorAll('text.axis')];
    return {title: h.textContent, width: Math.round(box.width), height: Math.round(box.height), lines: lines,
            yLabels: axis.filter(t => t.textContent.endsWith(' ms')).map(t => t.textContent),
            xLabels: axis.filter(t => !t.textContent.endsWith(' ms')).map(t => t.textContent),
            fontPx: axis.length ? parseFloat(getComputedStyle(axis[0]).fontSize) : 0,
            legend: [...chart.nextElementSibling.querySelectorAll('li')].map(li => li.textContent),
            label: chart.getAttribute('aria-label')};
  })"""


async def monitor_charts(url: str, width: int, screenshot: Path, dark: bool = False) -> list[dict]:
    async with playwright.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": width, "height": 900},
                                          color_scheme="dark" if dark else "light")
            await page.goto(url)
            found = await page.evaluate(CHARTS)
            await page.screenshot(path=str(screenshot), full_page=True)
            return found
        finally:
            await browser.close()


async def test_a_monitor_page_one_minute_after_start_draws_each_check_with_labelled_axes(write_config, tmp_path):
    from probe.core.models import ResultRecord, Status
    from probe.core.units import now_ms
    path = write_config("""
        [page]
        timezone = "Europe/Berlin"
        [storage]
        path = "probe.db"
        [[monitors]]
        id = "api"
        name = "API"
        type = "tcp"
        host = "127.0.0.1"
        port = 9
        interval = "5s"
        timeout = "1s"
    """)
    client, probe = await serve(path)
    try:
        if now_ms() % 3_600_000 < 15_000:
            await asyncio.sleep(15)  # the minute stays within this hour (the chart's raw part)
        now = now_ms()
        checks = [ts for ts in range(now - 60_000, now, 5000) if ts >= now - now % 3_600_000]
        for k, ts in enumerate(checks):  # the first minute's checks, every five seconds
            probe.record(probe.config.monitor("api"), ResultRecord("api", ts, ts, Status.UP, "ok", 20.0 + k % 4 * 10))
        await probe.store.flush()
        url = str(client.make_url("/monitors/api"))
        phone = await monitor_charts(url, 390, tmp_path / "monitor-1min-390.png")
        desktop = await monitor_charts(url, 1280, tmp_path / "monitor-1min-1280.png")
        front = await (await client.get("/")).text()
    finally:
        await client.close()
    assert '<span class="muted spark-empty">not enough data yet</span>' in front  # the sparkline says so too
    hourly, daily = phone
    assert dict(hourly["lines"]) == {"raw": len(checks)}  # each check of this hour, not an empty box
    assert hourly["yLabels"] == ["0 ms", "25 ms", "50 ms"] and hourly["fontPx"] >= 11
    assert len(hourly["xLabels"]) >= 2 and all(re.match(r"^\d\d:\d\d(:\d\d)?$", x) for x in hourly["xLabels"])
    assert hourly["legend"] == ["each check, this hour"] and hourly["width"] <= 390 - 32
    assert "CET" in hourly["label"] or "CEST" in hourly["label"]
    assert daily["empty"] == "Not enough data yet: the chart appears after a few checks."
    assert desktop[0]["width"] > 800 and desktop[0]["fontPx"] == hourly["fontPx"]  # labels keep their size
    ARTIFACTS.mkdir(exist_ok=True)
    for name in ("monitor-1min-390.png", "monitor-1min-1280.png"):
        shutil.copy(tmp_path / name, ARTIFACTS / name)


async def test_a_monitor_page_with_a_day_of_data_draws_p50_and_p95_per_hour(write_config, tmp_path):
    client, _ = await serve(await make_history(write_config, days=1))
    try:
        url = str(client.make_url("/monitors/api"))
        light = await monitor_charts(url, 390, tmp_path / "monitor-day-390.png")
        dark = await monitor_charts(url, 1280, tmp_path / "monitor-day-1280-dark.png", dark=True)
    finally:
        await client.close()
    hourly = light[0]
    lines = dict(hourly["lines"])
    assert lines["p50"] >= 20 and lines["p95"] == lines["p50"]  # a day of completed hours
    assert hourly["legend"][:2] == ["p50 (median)", "p95"]
    assert len(hourly["xLabels"]) >= 3 and hourly["yLabels"][0] == "0 ms"
    assert dark[0]["lines"] == hourly["lines"]
    ARTIFACTS.mkdir(exist_ok=True)
    for name in ("monitor-day-390.png", "monitor-day-1280-dark.png"):
        shutil.copy(tmp_path / name, ARTIFACTS / name)
