"""A weekly maintenance window over five weeks of simulated time, on a real file: the front page
shows it once at every moment, history holds the occurrences since the config had it and none
before, and a changed schedule keeps the occurrences it already had (issue 14, item 2)."""
from __future__ import annotations

import re
from datetime import datetime

from probe.config.loader import load_config
from probe.core.units import now_ms
from probe.service import Probe
from probe.view import public, statuspage
from probe.web.page import history_months, render_index
from probe.web.render import environment
from probe.web.rows import RowCache

DAY, HOUR = 86_400_000, 3_600_000
ITEMS = re.compile(r'<article class="maintenance compact" data-state="(\w+)">\s*<h3>([^<]+?) <span', re.S)
CONFIG = """
[storage]
path = "probe.db"
[[monitors]]
id = "api"
name = "API"
type = "tcp"
host = "127.0.0.1"
port = 9
[[maintenance]]
id = "weekly"
title = "Weekly patching"
monitors = ["api"]
cron = "{cron}"
duration = "2h"
timezone = "UTC"
"""


async def open_probe(path) -> Probe:
    """What `probe run` does at start for the parts read here: the file, the monitors, maintenance."""
    config = load_config(path)
    probe = Probe(config, flush_interval=0.01)
    await probe.store.open()
    await probe._load_monitors(config.monitors)
    await probe.maintenance.load()
    return probe


async def what_is_shown(probe, now: int) -> dict:
    view = await public.build_view(probe, now=now)
    page = (await render_index(environment(), RowCache(), probe, view)).decode()
    months, _ = await history_months(probe, now, None)
    past = [item for _, items in months for item in items if not hasattr(item, "incident")]
    shape = statuspage.Shape(probe, await public.build_view(probe, now=now, figures=False))
    return {"page": ITEMS.findall(page), "history": [w.start_ms for w in past],
            "v2": [(w["status"], w["scheduled_for"]) for w in shape.windows()]}


async def test_a_weekly_window_shows_once_a_day_for_five_weeks_and_never_before_the_config(write_config):
    path = write_config(CONFIG.format(cron="0 2 * * sun"))
    config_loaded = now_ms()
    probe = await open_probe(path)
    try:
        weekly = probe.config.maintenance[0]
        sundays = [w.start_ms for w in weekly.occurrences(config_loaded - 30 * DAY, config_loaded + 40 * DAY)]
        seen = []
        for hours in range(0, 35 * 24, 7):  # every 7 hours for five weeks: some during a window
            now = config_loaded + hours * HOUR
            seen.append((now, await what_is_shown(probe, now)))
    finally:
        await probe.store.close()

    began = [s for s in sundays if s + 2 * HOUR > config_loaded]
    for now, shown in seen:
        assert [title for _, title in shown["page"]] == ["Weekly patching"], now  # always exactly once
        running = [s for s in sundays if s <= now < s + 2 * HOUR]
        # Just ended: "verifying" for an hour, since api never checks up here (no checks run).
        ended = [s for s in sundays if s + 2 * HOUR <= now < s + 3 * HOUR and s + 2 * HOUR > config_loaded]
        assert shown["page"][0][0] == ("in_progress" if running else "verifying" if ended else "scheduled")
        expected = [s for s in began if s <= now]
        assert sorted(shown["history"]) == expected, now  # the ones since the config, and only those
        assert all(s + 2 * HOUR > config_loaded for s in shown["history"])
        assert all(datetime.fromisoformat(at).timestamp() * 1000 + 2 * HOUR > config_loaded for _, at in shown["v2"])
    assert len(began) >= 5  # five weeks saw five or six Sundays, and history grew with them
    assert len(seen[-1][1]["history"]) == len([s for s in began if s <= seen[-1][0]])
    assert any(s < config_loaded - 7 * DAY for s in sundays)  # the cron line would have given earlier ones


async def test_a_changed_schedule_keeps_what_happened_and_projects_nothing_back(write_config):
    path = write_config(CONFIG.format(cron="0 2 * * sun"))
    loaded = now_ms()
    probe = await open_probe(path)
    old = [w.start_ms for w in probe.config.maintenance[0].occurrences(loaded, loaded + 15 * DAY)]
    changed_at = loaded + 15 * DAY
    path.write_text(path.read_text().replace("0 2 * * sun", "0 3 * * sat"))
    new_config = load_config(path)
    await probe.maintenance.sync(new_config.maintenance, changed_at)  # what a reload does, 15 days on
    probe.config = new_config
    await probe.store.close()
    restarted = await open_probe(path)  # and it is all in the file
    try:
        later = changed_at + 10 * DAY
        shown = await what_is_shown(restarted, later)
    finally:
        await restarted.store.close()
    saturdays = [w.start_ms for w in new_config.maintenance[0].occurrences(changed_at, later)]
    assert sorted(shown["history"]) == sorted([s for s in old if s < changed_at] + saturdays)
    assert all(s >= changed_at for s in saturdays) and len(saturdays) >= 1
