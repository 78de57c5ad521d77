"""Maintenance windows: parsing, recurring runs across DST, and a live window that keeps a
failing monitor from opening an incident or alerting, with its time left out of availability."""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import pytest

from probe.config.loader import ConfigError, load_config
from probe.config.maintenance import parse_maintenance
from probe.config.schema import Problems
from probe.core.units import now_ms
from probe.service import Probe
from tests.notify.settled import notifications_settled
from tests.peers.receiver import Receiver
from tests.test_service import Target


def utc(*args) -> int:
    return int(datetime(*args, tzinfo=timezone.utc).timestamp() * 1000)


def windows(*tables, tz="Europe/Berlin"):
    problems = Problems("cfg.toml")
    found = parse_maintenance(list(tables), {"web", "db"}, problems, tz)
    return found, problems.lines


def test_a_weekly_window_keeps_its_local_time_across_both_dst_changes():
    (weekly,), problems = windows({"id": "patch", "title": "Weekly patch", "monitors": ["web"],
                                   "cron": "0 2 * * sun", "duration": "2h"})
    assert problems == []
    autumn = weekly.occurrences(utc(2026, 10, 17), utc(2026, 11, 2))
    assert [(w.id, w.start_ms, w.end_ms) for w in autumn] == [
        ("patch@2026-10-18T02:00", utc(2026, 10, 18, 0), utc(2026, 10, 18, 2)),  # CEST, UTC+2
        ("patch@2026-10-25T02:00", utc(2026, 10, 25, 0), utc(2026, 10, 25, 2)),  # the night clocks go back
        ("patch@2026-11-01T02:00", utc(2026, 11, 1, 1), utc(2026, 11, 1, 3)),  # CET, UTC+1
    ]
    spring = weekly.occurrences(utc(2027, 3, 20), utc(2027, 4, 5))
    assert [w.start_ms for w in spring][0] == utc(2027, 3, 21, 1)  # CET
    assert [w.start_ms for w in spring][-1] == utc(2027, 4, 4, 0)  # CEST
    assert len(spring) == 3  # 02:00 does not exist on 28 March: that run moves, it is not lost or doubled


def test_a_run_that_began_before_the_range_still_counts():
    (weekly,), _ = windows({"id": "patch", "title": "P", "monitors": ["web"], "cron": "0 2 * * sun",
                            "duration": "2h"})
    (run,) = weekly.occurrences(utc(2026, 10, 18, 1), utc(2026, 10, 18, 1, 30))
    assert run.covers("web", utc(2026, 10, 18, 1)) and not run.covers("db", utc(2026, 10, 18, 1))


def test_a_single_window_from_a_local_date_time_or_iso_text():
    (a, b), problems = windows(
        {"id": "a", "title": "DB upgrade", "monitors": ["db"], "start": datetime(2026, 12, 1, 2, 0), "duration": "1h"},
        {"id": "b", "title": "Move", "monitors": ["web", "db"], "start": "2026-12-05T22:00:00+00:00",
         "end": "2026-12-06T02:00:00+00:00", "timezone": "UTC"})
    assert problems == []
    assert [(w.start_ms, w.end_ms) for w in a.occurrences(0, 2**62)] == [(utc(2026, 12, 1, 1), utc(2026, 12, 1, 2))]
    assert [(w.start_ms, w.end_ms) for w in b.occurrences(0, 2**62)] == [(utc(2026, 12, 5, 22), utc(2026, 12, 6, 2))]
    assert a.occurrences(utc(2026, 12, 2), utc(2026, 12, 3)) == []


def test_mistakes_name_the_window_and_the_key():
    _, problems = windows(
        {"id": "a", "title": "x", "monitors": ["web"], "cron": "61 * * * *", "duration": "1h"},
        {"id": "b", "title": "x", "monitors": ["nope"], "start": "2026-12-01T02:00:00", "duration": "1h"},
        {"id": "c", "title": "x", "monitors": ["web"], "start": "tomorrow", "duration": "1h"},
        {"id": "d", "title": "x", "monitors": ["web"], "start": "2026-12-01T02:00:00"},
        {"id": "e", "title": "x", "monitors": ["web"], "cron": "0 2 * * *", "duration": "1h", "timezone": "Mars/Base"},
        {"id": "f", "title": "x", "monitors": ["web"], "start": "2026-12-01T02:00:00",
         "end": "2026-12-01T01:00:00"})
    text = "\n".join(problems)
    assert 'maintenance[0] "a": cron is not a cron schedule' in text
    assert 'maintenance[1] "b": monitors names no [[monitors]] entry (got "nope")' in text
    assert 'maintenance[2] "c": start must be a date-time' in text
    assert 'maintenance[3] "d": duration give either duration or end' in text
    assert 'maintenance[4] "e": timezone is not a known IANA time zone (got "Mars/Base")' in text
    assert 'maintenance[5] "f": end must be after start' in text


def test_the_config_file_reports_them_too(write_config):
    with pytest.raises(ConfigError) as caught:
        load_config(write_config("""
            [[maintenance]]
            id = "x"
            title = "X"
            monitors = ["ghost"]
            start = 2026-12-01T02:00:00Z
            duration = "1h"
        """))
    assert caught.value.problems == ['cfg.toml: maintenance[0] "x": monitors names no [[monitors]] entry (got "ghost")']


async def until_results(probe, monitor_id: str, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        await probe.store.flush()
        if len(await probe.store.results(monitor_id)) >= count:
            return
        assert time.monotonic() < deadline, f"fewer than {count} results stored"
        await asyncio.sleep(0.05)


async def test_during_a_window_a_failing_monitor_opens_no_incident_alerts_nobody_and_shows_maintenance(write_config):
    from probe.view import public

    receiver = await Receiver().start()
    start = datetime.fromtimestamp(now_ms() / 1000 - 60, timezone.utc).isoformat()
    async with Target() as target:
        target.healthy = False
        config = load_config(write_config(f"""
            [storage]
            path = "probe.db"
            [[notifiers]]
            id = "hook"
            type = "webhook"
            url = "{receiver.url}/"
            events = ["open", "maintenance"]
            [[monitors]]
            id = "web"
            name = "Website"
            type = "http"
            url = "{target.url}"
            interval = "0.2s"
            timeout = "150ms"
            failure_threshold = 1
            notify = ["hook"]
            [[maintenance]]
            id = "deploy"
            title = "Deploying v2"
            monitors = ["web"]
            start = "{start}"
            duration = "1h"
        """))
        probe = Probe(config, flush_interval=0.05)
        await probe.start()
        try:
            await until_results(probe, "web", 4)
            assert await probe.notify.queue_maintenance() == 1
            await probe.notify.queue_maintenance()  # the same edge again: no second notice
            await receiver.wait_for(1)
            await notifications_settled(probe)  # nothing more to send: no "open" to come
            results = await probe.store.results("web")
            assert len(results) >= 4 and all(r.in_maintenance and r.status.label == "down" for r in results)
            assert await probe.store.open_incidents() == []
            assert [r.json["event"] for r in receiver.requests] == ["maintenance_start"]  # and no "open"
            assert receiver.requests[0].json["summary"] == "[MAINTENANCE] Deploying v2"
            view = await public.build_view(probe)
            assert view.monitor("web").status == "maintenance" and view.overall == "maintenance"
            d = await probe.stats.durations(["web"], results[0].ts_ms, now_ms())
            assert d["web"].availability("excluded") is None  # all of it was maintenance: nothing to count
            assert d["web"].availability("measured") == 0.0
        finally:
            await probe.stop()
            await receiver.close()
