"""`probe storage copy` moves a whole history between engines: SQLite -> PostgreSQL -> SQLite,
and the page, the v1 and v2 APIs and the stored rows are the same at every step."""
from __future__ import annotations

import asyncpg

from probe.config.loader import load_config
from probe.core.models import MaintenanceWindow
from probe.core.units import now_ms
from probe.service import Probe
from probe.storage import NewDelivery
from probe.storage.copy import TABLES, row_counts
from probe.web.rows import RowCache
from tests.cli.test_main import probe_cli
from tests.web.history import make_history
from tests.web.test_figures import served

MAINTENANCE = """
[[maintenance]]
id = "weekly"
title = "Weekly patching"
monitors = ["api"]
cron = "0 2 * * sun"
duration = "2h"
"""


async def with_subscribers_and_deliveries(path) -> None:
    """What the history lacks: a confirmed subscriber, a queued and a sent delivery, a window
    scheduled through the admin API."""
    probe = Probe(load_config(path), flush_interval=0.01)
    await probe.store.open()
    try:
        now = now_ms()
        sub = await probe.store.subscriber_request("ann@example.com", ("Public",), now)
        await probe.store.subscriber_confirm(sub.id, now)
        await probe.store.outbox_add([NewDelivery("hook", "event:1", '{"a": 1}'), NewDelivery("hook", "event:2", "{}")])
        (first, *_) = await probe.store.outbox_list("hook")
        await probe.store.outbox_record(first.id, "sent", 1, now, "ok", now)
        await probe.store.maintenance_add(MaintenanceWindow("db-upgrade", "DB upgrade", ("db",), now - 3_600_000,
                                                           now - 1_800_000, "done"), "operator", now)
    finally:
        await probe.store.close()


async def pages_and_rows(path, now: int) -> tuple[dict, dict]:
    probe = Probe(load_config(path), flush_interval=0.01, read_only=True)
    await probe.store.open()
    try:
        await probe._load_monitors(probe.config.monitors)
        await probe.maintenance.load()
        return await served(probe, RowCache(), now), await row_counts(probe.store)
    finally:
        await probe.store.close()


async def analyzed_tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL")
    finally:
        await conn.close()
    return {row["relname"] for row in rows}


async def test_a_history_copied_to_postgresql_and_back_serves_the_same_pages(write_config, postgres, tmp_path):
    path = await make_history(write_config, extra=MAINTENANCE)
    await with_subscribers_and_deliveries(path)
    now = now_ms()
    pages, counts = await pages_and_rows(path, now)
    # a single process writes no location's own results ([cluster] does)
    assert all(counts[t.name] for t in TABLES if t.name not in ("cert_notices", "maintenance_past", "location_results"))

    url = postgres.create_database()
    code, out, err = await probe_cli("storage", "copy", "-c", str(path), "--to", url)
    assert code == 0, err
    assert "row counts verified" in out
    assert await analyzed_tables(url) >= {"results", "rollups", "incidents"}  # the planner knows the copy
    on_postgres = path.with_name("pg.toml")
    on_postgres.write_text(path.read_text().replace('path = "probe.db"', f'url = "{url}"'))
    assert await pages_and_rows(on_postgres, now) == (pages, counts)

    code, _, err = await probe_cli("storage", "copy", "-c", str(on_postgres), "--to", "sqlite:///back.db")
    assert code == 0, err
    back = path.with_name("back.toml")
    back.write_text(path.read_text().replace('path = "probe.db"', 'path = "back.db"'))
    assert await pages_and_rows(back, now) == (pages, counts)

    code, _, err = await probe_cli("storage", "copy", "-c", str(path), "--to", url)  # not into one with data
    assert code == 1 and "is not empty" in err and "copy only into a new database" in err


async def test_the_same_history_written_through_sqlite_and_through_postgresql_serves_the_same_bytes(
        write_config, postgres):
    """Not a copy: each engine's own writer, rollups and reads, from the same results."""
    now = now_ms()
    in_sqlite = await make_history(write_config, extra=MAINTENANCE, now=now)
    in_postgres = await make_history(write_config, extra=MAINTENANCE, now=now, url=postgres.create_database(),
                                     name="pg.toml")
    sqlite_pages, sqlite_rows = await pages_and_rows(in_sqlite, now)
    postgres_pages, postgres_rows = await pages_and_rows(in_postgres, now)
    assert sqlite_rows == postgres_rows
    for route, body in sqlite_pages.items():
        assert postgres_pages[route] == body, route
