"""A status page with a past: 90 days of results for a few monitors, written through the real path.

Results go through Probe.record (engine + store), so incidents and rollups are the
ones production would have made. One monitor is private; one carries hostile text.
"""
from __future__ import annotations

from datetime import timedelta

from probe.config.loader import load_config
from probe.core.calendar import Calendar
from probe.core.models import ResultRecord, Status
from probe.core.units import now_ms
from probe.service import Probe

INTERVAL_S = 1200  # 20 minutes: 90 days is 6,480 results a monitor
DAY_MS = 86_400_000
XSS = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
PRIVATE_NAME, PRIVATE_HOST = "Billing Secret Ledger", "127.0.0.77"

CONFIG = f"""
[page]
title = "Acme Status"
timezone = "Europe/Berlin"
language = "{{language}}"
[server]
admin_token = "t0ken"
[storage]
path = "probe.db"
[defaults]
interval = "20m"
timeout = "5s"
failure_threshold = 2
[[monitors]]
id = "api"
name = "Public API"
group = "Public"
type = "tcp"
host = "127.0.0.1"
port = 9
[[monitors]]
id = "web"
name = 'Website {XSS}'
group = "Public"
description = '{XSS}'
type = "tcp"
host = "127.0.0.1"
port = 9
[[monitors]]
id = "db"
name = "Database"
group = "Backend"
type = "tcp"
host = "127.0.0.1"
port = 9
[[monitors]]
id = "secret"
name = "{PRIVATE_NAME}"
group = "Internal"
public = false
type = "tcp"
host = "{PRIVATE_HOST}"
port = 5999
"""


def morning(now: int, days_ago: int) -> int:
    """10:00 in the page's time zone, `days_ago` days back: outages never straddle midnight."""
    calendar = Calendar("Europe/Berlin")
    return calendar.local_midnight(calendar.date_of(now) - timedelta(days=days_ago)) + 10 * 3_600_000


def status_at(monitor_id: str, ts: int, now: int) -> tuple[Status, str]:
    age = now - ts
    if monitor_id == "api" and 0 <= ts - morning(now, 10) < 3_600_000:
        return Status.DOWN, "connection refused by 127.0.0.1:9"  # one hour down, ten days ago
    if monitor_id == "web" and 0 <= ts - morning(now, 5) < 7_200_000:
        return Status.DEGRADED, "slow"
    if monitor_id == "db" and age < 3_700_000:
        return Status.DOWN, "connection refused by 127.0.0.1:9"  # down right now
    if monitor_id == "secret" and age < 3 * DAY_MS:
        return Status.DOWN, f"connection refused by {PRIVATE_HOST}:5999"
    return Status.UP, "connected"


async def make_history(write_config, language: str = "en", days: int = 90, extra: str = "", now: int | None = None,
                       url: str = "", name: str = "cfg.toml"):
    """Write the config (plus `extra` TOML), fill its database with `days` of history up to `now`
    (default: now); return its path. `url`: keep it there instead of the file probe.db."""
    text = CONFIG.replace("{language}", language) + extra
    path = write_config(text.replace('path = "probe.db"', f'url = "{url}"') if url else text, name)
    config = load_config(path)
    probe = Probe(config, flush_interval=0.05)
    await probe.store.open()
    await probe._load_monitors(config.monitors)
    await probe.engine.restore(config.monitors)
    now = now if now is not None else now_ms()
    start = now - days * DAY_MS
    start -= start % (INTERVAL_S * 1000)  # on the 20-minute grid, so outages are whole checks
    await probe.maintenance.sync(config.maintenance, start)  # the config has had its windows all along
    for monitor in config.monitors:
        ts = start
        while ts <= now - 1000:
            status, reason = status_at(monitor.id, ts, now)
            probe.record(monitor, ResultRecord(monitor.id, ts, ts, status, reason, 12.5 + (ts // 1000) % 7))
            ts += INTERVAL_S * 1000
        await probe.store.flush()
    await probe.store.close()
    return path
