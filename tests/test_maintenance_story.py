"""Recurring maintenance against a real `probe run` (issue 14, items 2 and 3): a weekly window is one
item on the page with its rule in words, one line in `probe maintenance list`, and nowhere in
history before the config had it; a window far ahead stays off the front page but not the APIs;
an occurrence's state is the same in the CLI, v1, v2 and on the page."""
from __future__ import annotations

import asyncio
import re
import signal
from datetime import datetime, timedelta, timezone

import aiohttp

from tests.cli.test_main import free_port, probe_cli
from tests.test_crash import start_probe

TOKEN = "maintenance-story-token"
ITEM = re.compile(r'<article class="maintenance compact" data-state="(\w+)">\s*<h3>([^<]+?) <span', re.S)


def story_config(port: int, far: datetime) -> str:
    return f"""
        [server]
        listen = "127.0.0.1:{port}"
        admin_token = "{TOKEN}"
        [storage]
        path = "probe.db"
        [page]
        title = "Story"
        timezone = "Europe/Berlin"
        [[monitors]]
        id = "api"
        name = "API"
        type = "tcp"
        host = "127.0.0.1"
        port = {port}
        interval = "1s"
        timeout = "900ms"
        [[maintenance]]
        id = "weekly"
        title = "Weekly patching"
        monitors = ["api"]
        cron = "0 2 * * sun"
        duration = "2h"
        [[maintenance]]
        id = "far"
        title = "Data centre move"
        monitors = ["api"]
        start = {far.strftime("%Y-%m-%dT%H:%M:%SZ")}
        duration = "4h"
    """


async def get(http: aiohttp.ClientSession, url: str, json: bool = True):
    async with http.get(url) as response:
        assert response.status == 200, url
        return await (response.json() if json else response.text())


async def test_a_weekly_window_is_one_item_and_has_no_history_from_before_the_config(write_config):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    far = datetime.now(timezone.utc) + timedelta(days=10)
    config = write_config(story_config(port, far))
    proc = await start_probe(config, port)
    cli = ("maintenance", "-c", str(config))
    try:
        async with aiohttp.ClientSession() as http:
            page = await get(http, base + "/", json=False)
            history = await get(http, base + "/history", json=False)
            v1 = (await get(http, base + "/api/v1/maintenance"))["maintenance"]
            v2 = (await get(http, base + "/api/v2/scheduled-maintenances.json"))["scheduled_maintenances"]
        listed = await probe_cli(*cli, "list")
        every = await probe_cli(*cli, "list", "--all")
        until = (datetime.now(timezone.utc) + timedelta(days=21)).isoformat()
        three_weeks = await probe_cli(*cli, "list", "--until", until)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)

    items = ITEM.findall(page)
    assert [title for _, title in items] == ["Weekly patching"]  # once, and the far window not at all
    assert "every Sunday 02:00–04:00 Europe/Berlin" in page
    weekly_lines = [line for line in listed[1].splitlines() if line.startswith("weekly@")]
    assert len(weekly_lines) == 1 and "(every Sunday 02:00–04:00 Europe/Berlin)" in weekly_lines[0]
    assert any(line.startswith("far ") for line in listed[1].splitlines())
    assert len([line for line in every[1].splitlines() if line.startswith("weekly@")]) >= 12
    assert 3 <= len([line for line in three_weeks[1].splitlines() if line.startswith("weekly@")]) <= 4
    # Nothing from before the config existed: no past occurrence in history, v1 or v2.
    now = datetime.now(timezone.utc)
    assert all(datetime.fromisoformat(w["end"]) > now - timedelta(minutes=1) for w in v1)
    assert all(w["status"] in ("scheduled", "in_progress") for w in v2)
    assert "Weekly patching" not in history or items[0][0] == "in_progress"
    # The window ten days ahead is in the APIs, just not on the front page (upcoming = 7d).
    assert "Data centre move" in [w["title"] for w in v1] and "Data centre move" in [w["name"] for w in v2]
    assert "Data centre move" not in page


async def test_a_window_that_ended_with_its_monitor_down_is_verifying_in_the_cli_v1_v2_and_on_the_page(write_config):
    port, closed = free_port(), free_port()  # nothing listens on `closed`: api checks down
    base = f"http://127.0.0.1:{port}"
    config = write_config(f"""
        [server]
        listen = "127.0.0.1:{port}"
        admin_token = "{TOKEN}"
        [storage]
        path = "probe.db"
        [[monitors]]
        id = "api"
        name = "API"
        type = "tcp"
        host = "127.0.0.1"
        port = {closed}
        interval = "1s"
        timeout = "900ms"
    """)
    proc = await start_probe(config, port)
    cli = ("maintenance", "-c", str(config))
    try:
        code, out, err = await probe_cli(*cli, "add", "--title", "Kernel update", "--monitor", "api",
                                         "--duration", "2s")
        assert code == 0, err
        window_id = out.split()[0]
        await asyncio.sleep(3.5)  # the window is over; api has checked down since
        listed = (await probe_cli(*cli, "list"))[1]
        async with aiohttp.ClientSession() as http:
            v1 = (await get(http, base + "/api/v1/maintenance"))["maintenance"]
            v2 = (await get(http, base + "/api/v2/scheduled-maintenances/active.json"))["scheduled_maintenances"]
            page = await get(http, base + "/", json=False)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
    cli_state = next(line.split()[1] for line in listed.splitlines() if line.startswith(window_id))
    assert cli_state == "verifying"
    assert [(w["title"], w["status"]) for w in v1] == [("Kernel update", "verifying")]
    assert [(w["name"], w["status"], w["resolved_at"]) for w in v2] == [("Kernel update", "verifying", None)]
    assert ("verifying", "Kernel update") in ITEM.findall(page)  # the page says it too, above the monitors
