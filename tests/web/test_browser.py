"""The status page in a real headless browser (Debian's chromium driven by playwright).

What a visitor sees: the banner, 90 cells a bar, a down monitor, the Chinese page, no
console errors. A screenshot is saved beside the test's files (and to artifacts/).
"""
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
