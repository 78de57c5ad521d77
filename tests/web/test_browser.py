"""The status page in a real headless browser (Debian's chromium driven by playwright).

What a visitor sees: the banner, 90 cells a bar, a down monitor, the Chinese page, no
console errors. A screenshot is saved beside the test's files (and to artifacts/).
"""
import asyncio
import os
import shutil
from pathlib import Path

import pytest

from tests.web.conftest import serve
from tests.web.history import make_history

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
            problems = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            await page.goto(url)
            seen = {
                "banner": (await page.inner_text(".banner-text")).strip(),
                "cells": await page.eval_on_selector_all("#m-api .bar .cell", "cells => cells.length"),
                "db": (await page.inner_text("#m-db .status")).strip(),
                "alerts": [],
            }
            page.on("dialog", lambda d: seen["alerts"].append(d.message))
            await page.focus("#m-api .bar .cell:last-child")  # the tooltip shows on focus
            seen["tip"] = await page.inner_text(".tip")
            await page.screenshot(path=str(screenshot), full_page=True)
            return seen, problems
        finally:
            await browser.close()


async def test_a_visitor_sees_the_status_at_a_glance(write_config, tmp_path):
    client, _ = await serve(await make_history(write_config))
    try:
        seen, problems = await visit(str(client.make_url("/")), tmp_path / "page.png")
    finally:
        await client.close()
    assert seen["banner"] == "Partial Outage"
    assert seen["cells"] == 90
    assert seen["db"].endswith("Down")
    assert seen["alerts"] == []  # the hostile monitor name ran no script
    assert "100.00%" in seen["tip"] or "No data" in seen["tip"]
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
