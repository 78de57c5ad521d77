"""Maintenance notices say which monitors a window covers, and their fields mean what they say:
`scheduled_until` is the plan, `resolved_at` is set only once the window has ended (issue 14, item 3)."""
from __future__ import annotations

import asyncio

from aiosmtpd.controller import Controller

from probe.config.loader import load_config
from probe.core.models import MaintenanceWindow
from probe.core.units import iso_utc, now_ms
from probe.service import Probe
from tests.notifiers.test_email import Inbox, free_port
from tests.peers.receiver import Receiver


async def test_start_and_end_notices_name_the_covered_monitors_and_keep_plan_and_end_apart(write_config):
    hook = await Receiver().start()
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    config = load_config(write_config(f"""
        [storage]
        path = "probe.db"
        [[notifiers]]
        id = "hook"
        type = "webhook"
        url = "{hook.url}/in"
        [[notifiers]]
        id = "mail"
        type = "email"
        host = "127.0.0.1"
        port = {smtp.port}
        mode = "plain"
        from = "probe@acme.test"
        to = ["ops@acme.test"]
        [defaults]
        interval = "1h"
        notify = ["hook", "mail"]
        [[monitors]]
        id = "api"
        name = "Public API"
        type = "tcp"
        host = "127.0.0.1"
        port = 9
        [[monitors]]
        id = "db"
        name = "Database"
        type = "tcp"
        host = "127.0.0.1"
        port = 9
    """))
    probe = Probe(config, flush_interval=0.01)
    await probe.start()
    try:
        now = now_ms()
        window = MaintenanceWindow("op-1", "DB upgrade", ("api", "db"), now - 1000, now + 3_600_000)
        await probe.schedule_maintenance(window, "test")
        assert await probe.notify.queue_maintenance(now) == 2  # the start, to the webhook and the mail
        await hook.wait_for(1)
        ended = await probe.cancel_maintenance(window, now + 60_000)  # ended early, a minute in
        await probe.notify.queue_maintenance(now + 61_000)  # the start again (queued once: its key) and the end
        await hook.wait_for(2)
        for _ in range(100):
            if len(inbox.messages) >= 2:
                break
            await asyncio.sleep(0.05)
    finally:
        await probe.stop()
        await hook.close()
        smtp.stop()
    start, end = (r.json for r in hook.requests)
    assert start["event"] == "maintenance_start" and end["event"] == "maintenance_end"
    for doc in (start, end):
        assert doc["monitors"] == [{"id": "api", "name": "Public API"}, {"id": "db", "name": "Database"}]
    assert start["scheduled_until"] == iso_utc(window.end_ms) and start["resolved_at"] is None
    assert start["duration_s"] is None
    assert end["resolved_at"] == iso_utc(ended.end_ms) and end["duration_s"] == 61.0
    mails = [mail.get_body(("plain",)).get_content() for _, _, mail, _ in inbox.messages]
    assert all("Public API, Database" in text for text in mails)
    assert "Ends:" in mails[0] and "Ends:" not in mails[1]  # the plan before, the duration after
