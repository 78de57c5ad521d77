"""Waiting for the notification path to have nothing more to send, as the process itself reports
it: every committed event taken in by the dispatcher (its cursor) and no delivery pending in the
outbox. After that no message can go out that has not gone out already, so a test that checks
"once, not twice" waits for this instead of sleeping for "time enough for a duplicate"."""
from __future__ import annotations

import asyncio
import sqlite3
import time


async def notifications_settled(probe, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        await probe.store.flush()  # events still in the writer's queue are news to come
        last_event = await probe.store.events_last_id()
        pending = [d for d in await probe.store.outbox_list(None, 10_000) if d.state == "pending"]
        if probe.notify.cursor >= last_event and not pending:
            return
        assert time.monotonic() < deadline, f"still to send: events after {probe.notify.cursor}, {pending}"
        await asyncio.sleep(0.02)


def settled_in_file(db_path) -> bool:
    """The same, read from the file of a `probe run` in another process."""
    conn = sqlite3.connect(db_path)
    try:
        (pending, behind), = conn.execute("""SELECT
            (SELECT count(*) FROM deliveries WHERE state = 'pending'),
            (SELECT count(*) FROM events WHERE id > (SELECT coalesce(max(CAST(value AS INTEGER)), 0) FROM meta
              WHERE key = 'notify_cursor'))""").fetchall()
    finally:
        conn.close()
    return pending == behind == 0
