"""Notifications end to end: a real HTTP target goes down, the real engine opens an incident,
the outbox in the real file delivers to real receivers on loopback."""
from __future__ import annotations

import asyncio
import logging
import time

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from probe.config.loader import load_config
from probe.core.units import iso_utc
from probe.notify.limits import Backoff
from probe.service import Probe
from tests.peers.receiver import Answer, Receiver
from tests.storage.breakage import read_only, writable
from tests.test_service import Target

pytestmark = pytest.mark.usefixtures("engine")  # once per storage engine

INTERVAL = 0.3
FAST = Backoff(base=0.2, cap=0.4, jitter=0.0)


def write(write_config, target_url: str, notifiers: str, notify: str) -> object:
    return load_config(write_config(f"""
        [storage]
        path = "probe.db"
        [page]
        url = "https://status.example.com"
        timezone = "Asia/Shanghai"
        language = "zh-CN"
        [[monitors]]
        id = "web"
        name = "Website"
        type = "http"
        url = "{target_url}"
        interval = "{INTERVAL}s"
        timeout = "250ms"
        failure_threshold = 1
        success_threshold = 1
        reopen_window = "0s"
        notify = {notify}
        {notifiers}
    """))


async def started(config) -> Probe:
    probe = Probe(config, flush_interval=0.05)
    probe.notify.outbox.backoff = FAST
    await probe.start()
    return probe


async def until(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def deliveries(probe, notifier_id):
    return await probe.notify.deliveries(notifier_id)


@pytest.fixture
async def receivers():
    made = []

    async def make(**kw) -> Receiver:
        receiver = await Receiver(**kw).start()
        made.append(receiver)
        return receiver
    yield make
    for receiver in made:
        await receiver.close()


async def test_every_channel_hears_of_an_outage_and_of_its_end_with_the_duration(write_config, receivers):
    hook, ding, feishu, hung, late = [await receivers() for _ in range(5)]
    ding.json_default({"errcode": 0, "errmsg": "ok"})
    feishu.json_default({"code": 0, "msg": "success"})
    hung.default = Answer(hang=True)
    notifiers = f"""
        [[notifiers]]
        id = "hook"
        type = "webhook"
        url = "{hook.url}/in"
        [[notifiers]]
        id = "ding"
        type = "dingtalk"
        url = "{ding.url}/robot/send?access_token=t"
        secret = "SECx"
        [[notifiers]]
        id = "feishu"
        type = "feishu"
        url = "{feishu.url}/hook"
        language = "en"
        [[notifiers]]
        id = "hung"
        type = "webhook"
        url = "{hung.url}/"
        timeout = "5s"
        [[notifiers]]
        id = "only-resolve"
        type = "webhook"
        url = "{late.url}/"
        events = ["resolve"]
    """
    async with Target() as target:
        probe = await started(write(write_config, target.url, notifiers, '["hook", "ding", "feishu", "hung", "only-resolve"]'))
        try:
            await until(lambda: _has_results(probe, 2))
            target.healthy = False
            for receiver in (hook, ding, feishu):
                await receiver.wait_for(1, timeout=5)
            (incident,) = await probe.store.open_incidents()
            opened = hook.requests[0].json
            assert opened["event"] == "open" and opened["incident"]["id"] == incident.id
            assert opened["started_at"] == iso_utc(incident.started_ms)  # the stored start, to the millisecond
            assert "故障" in ding.requests[0].json["markdown"]["title"]  # the page's language ...
            assert feishu.requests[0].json["card"]["header"]["title"]["content"].startswith("[DOWN] Website")  # ... or its own
            target.healthy = True
            for receiver in (hook, ding, feishu):
                await receiver.wait_for(2, timeout=5)
            resolve = hook.requests[1].json
            assert resolve["event"] == "resolve" and resolve["duration_s"] > 0 and resolve["summary"].startswith("[已恢复]")
            assert "持续时间" in ding.requests[1].json["markdown"]["text"]
            for notifier_id, count in (("hook", 2), ("ding", 2), ("feishu", 2), ("only-resolve", 1)):
                await until(lambda: _sent(probe, notifier_id, count))  # its outbox is empty
            assert [r.json["event"] for r in late.requests] == ["resolve"]  # events = ["resolve"]
            assert len(hook.requests) == len(ding.requests) == len(feishu.requests) == 2  # once each
            # The hung channel held up nobody: not the others (above), not the checks, which go on
            # while its one request hangs (inside its 5 s timeout).
            await hung.wait_for(1)
            hung_since = hung.requests[0].wall_ms
            await until(lambda: _has_results(probe, 3, since_ms=hung_since))
            assert len(hung.requests) == 1
        finally:
            await probe.stop()


async def test_two_failures_then_success_deliver_exactly_once_and_a_400_stops_at_once(write_config, receivers):
    flaky, broken = await receivers(), await receivers()
    flaky.script = [Answer(503, "busy"), Answer(502, "bad gateway")]
    broken.default = Answer(400, "invalid payload: unknown field")
    notifiers = f"""
        [[notifiers]]
        id = "flaky"
        type = "webhook"
        url = "{flaky.url}/"
        events = ["open"]
        [[notifiers]]
        id = "broken"
        type = "slack"
        url = "{broken.url}/"
        events = ["open"]
    """
    async with Target() as target:
        target.healthy = False
        probe = await started(write(write_config, target.url, notifiers, '["flaky", "broken"]'))
        try:
            await flaky.wait_for(3)
            await until(lambda: _state(probe, "flaky", "sent"))
            await until(lambda: _state(probe, "broken", "failed"))  # both outboxes are done: nothing more goes
            assert len(flaky.requests) == 3 and len(broken.requests) == 1, [(r.json["id"], r.json["event"]) for r in flaky.requests]
            (row,) = await deliveries(probe, "flaky")
            assert row["attempts"] == 3
            (row,) = await deliveries(probe, "broken")
            assert row["attempts"] == 1 and row["answer"] == "HTTP 400: invalid payload: unknown field"
        finally:
            await probe.stop()


async def _state(probe, notifier_id, state) -> bool:
    rows = await deliveries(probe, notifier_id)
    return bool(rows) and all(r["state"] == state for r in rows)


async def test_a_restart_in_the_middle_of_retries_still_delivers_exactly_once(write_config, receivers):
    receiver = await receivers(default=Answer(503, "down for maintenance"))
    notifiers = f"""
        [[notifiers]]
        id = "hook"
        type = "webhook"
        url = "{receiver.url}/"
        events = ["open"]
    """
    async with Target() as target:
        target.healthy = False
        config = write(write_config, target.url, notifiers, '["hook"]')
        probe = await started(config)
        await receiver.wait_for(2)
        await probe.stop()
        failed_attempts = len(receiver.requests)
        receiver.default = Answer(200, "ok")
        probe = await started(config)
        try:
            await until(lambda: _state(probe, "hook", "sent"))  # the outbox is done: nothing more goes
            delivered = [r for r in receiver.requests[failed_attempts:]]
            assert len(delivered) == 1 and delivered[0].json["event"] == "open"
            assert len({r.headers.get("webhook-id") or r.json["id"] for r in receiver.requests}) == 1  # one message
            (row,) = await deliveries(probe, "hook")
            # (an attempt cut off by the shutdown is not counted)
            assert row["attempts"] in (failed_attempts, failed_attempts + 1) and row["state"] == "sent"
        finally:
            await probe.stop()


async def test_a_dead_channel_gets_its_backlog_once_each_incident_in_order_and_delays_no_other(write_config, receivers):
    dead, alive = await receivers(default=Answer(503, "gone")), await receivers()
    notifiers = f"""
        [[notifiers]]
        id = "dead"
        type = "webhook"
        url = "{dead.url}/"
        [[notifiers]]
        id = "alive"
        type = "webhook"
        url = "{alive.url}/"
    """
    async with Target() as target:
        probe = await started(write(write_config, target.url, notifiers, '["dead", "alive"]'))
        try:
            for _ in range(3):  # three outages while the channel is dead (an hour, compressed)
                target.healthy = False
                await until(lambda: _count(alive, "open", len(alive.requests)))
                target.healthy = True
                await until(lambda: _last_is(alive, "resolve"))
            assert [r.json["event"] for r in alive.requests] == ["open", "resolve"] * 3  # not delayed
            back = len(dead.requests)
            dead.default = Answer(200, "back")
            await until(lambda: _state(probe, "dead", "sent"), timeout=15)
            delivered = [r.json for r in dead.requests[back:]]  # the requests answered 200
            assert sorted(d["id"] for d in delivered) == sorted(r.json["id"] for r in alive.requests)  # each once
            for incident in {d["incident"]["id"] for d in delivered}:  # each incident's story in order
                assert [d["event"] for d in delivered if d["incident"]["id"] == incident] == ["open", "resolve"]
        finally:
            await probe.stop()


async def _count(receiver, event, _n) -> bool:
    return bool(receiver.requests) and receiver.requests[-1].json["event"] == event


async def _last_is(receiver, event) -> bool:
    return bool(receiver.requests) and receiver.requests[-1].json["event"] == event


async def test_reminders_once_per_period_while_open(write_config, receivers):
    receiver = await receivers()
    notifiers = f"""
        [[notifiers]]
        id = "hook"
        type = "webhook"
        url = "{receiver.url}/"
        events = ["remind"]
        remind_every = "1h"
    """
    async with Target() as target:
        target.healthy = False
        probe = await started(write(write_config, target.url, notifiers, '["hook"]'))
        try:
            await until(lambda: _has_open(probe))
            (incident,) = await probe.store.open_incidents()
            assert await probe.notify.queue_reminders(incident.started_ms + 30 * 60_000) == 0
            later = incident.started_ms + 2 * 3_600_000 + 1
            assert await probe.notify.queue_reminders(later) == 1
            await probe.notify.queue_reminders(later + 1000)  # the same period: no second reminder
            await until(lambda: _state(probe, "hook", "sent"))  # the outbox is done: nothing more goes
            assert len(receiver.requests) == 1
            doc = receiver.requests[0].json
            assert doc["event"] == "remind" and doc["id"] == f"remind:{incident.id}:2"
            assert doc["summary"].startswith("[仍未恢复] Website")  # [page] language = "zh-CN"
        finally:
            await probe.stop()


async def _has_open(probe) -> bool:
    return bool(await probe.store.open_incidents())


async def test_a_message_whose_outbox_row_cannot_be_updated_is_journalled_and_not_sent_again(
        write_config, caplog):
    """The channel answers, then the database turns read-only before the row says "sent": the
    worker must keep the answer in the journal, not send the message a second time, and the file
    takes the answer once the disk is back."""
    caplog.set_level(logging.INFO, logger="probe.store")
    received, probes = [], []

    async with Target() as target, disk_breaking_hook(received, probes, mend_after_s=1.5) as hook:
        target.healthy = False
        config = write(write_config, target.url, hook_notifier(hook), '["hook"]')
        probes.append(await started(config))
        try:
            await until(lambda: _sent(probes[0], "hook", 1), timeout=15)  # the journal's answer counts
            # Then the disk comes back and takes the answer; a second send would have come before.
            await until(lambda: _said(caplog, "the journalled outbox answers are in the database"), timeout=15)
            in_file = await probes[0].store.fetchall("SELECT state FROM deliveries WHERE notifier='hook'")
        finally:
            await probes[0].stop()
    assert [doc["event"] for doc in received] == ["open"]
    kept = [r for r in caplog.records if r.getMessage().startswith("the database took no outbox update")]
    assert len(kept) == 1  # the answer went to the journal, once, and into the file when the disk was back
    assert in_file == [("sent",)]


def disk_breaking_hook(received: list, probes: list, mend_after_s: float | None = None) -> TestServer:
    """A webhook receiver that answers, but after the first message makes the newest probe's
    database refuse every write (and mends it `mend_after_s` later, if given)."""
    async def answer_then_break_the_disk(request):
        received.append(await request.json())
        if len(received) == 1:
            store = probes[-1].store
            await read_only(store)  # on the writer: every write fails
            if mend_after_s is not None:
                asyncio.get_running_loop().call_later(mend_after_s, lambda: asyncio.ensure_future(writable(store)))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/in", answer_then_break_the_disk)
    return TestServer(app, host="127.0.0.1")


def hook_notifier(hook: TestServer, extra: str = "") -> str:
    return f"""
        [[notifiers]]
        id = "hook"
        type = "webhook"
        url = "{hook.make_url('/in')}"
        {extra}
    """


async def _said(caplog, start: str) -> bool:
    return any(r.getMessage().startswith(start) for r in caplog.records)


async def _sent(probe, notifier_id: str, count: int) -> bool:
    rows = await deliveries(probe, notifier_id)
    return len(rows) == count and all(row["state"] == "sent" for row in rows)


async def _has_results(probe, count: int, since_ms: int = 0) -> bool:
    await probe.store.flush()
    return len(await probe.store.results("web", since_ms=since_ms)) >= count


@pytest.mark.parametrize("one_millisecond", [False, True], ids=["moments apart", "in one millisecond"])
async def test_an_event_rebuilt_from_the_file_says_what_the_incident_was_then(write_config, monkeypatch,
                                                                             one_millisecond):
    """The intake may read an event from the file before the bus delivers it (or after a
    restart): the message must carry the status of that moment, not today's, even when an
    operator's open, update and resolve fall in one millisecond."""
    from probe.engine import operator as operator_module
    from probe.engine.operator import NewIncident, Operator
    if one_millisecond:
        frozen = operator_module.now_ms()
        monkeypatch.setattr(operator_module, "now_ms", lambda: frozen)
    probe = await started(write(write_config, "http://127.0.0.1:9/", "", "[]"))
    try:
        probe.scheduler.unschedule("web")
        operator = Operator(probe)
        incident = await operator.open(NewIncident(title="Checkout errors", monitors=("web",)))
        await operator.update(incident.id, "monitoring")
        await operator.update(incident.id, "resolved")
        rows = await probe.store.events_after(0)
        rebuilt = [await probe.notify._event_from_row(row) for row in rows]
        assert [(e.incident.status, e.incident.resolved_ms is None) for e in rebuilt] == [
            ("investigating", True), ("monitoring", True), ("resolved", False)]
    finally:
        await probe.stop()


async def test_stopping_cancels_again_a_worker_that_swallowed_the_first_cancel():
    """aiosmtplib waits with asyncio.wait_for, which on 3.11 can eat a cancel: stop() must not hang."""
    from probe.notify.outbox import cancel as _cancel

    async def stubborn():
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            pass  # as wait_for does when its wait ends at the same moment
        await asyncio.sleep(30)

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    async with asyncio.timeout(10):
        await _cancel([task])
    assert task.cancelled()


async def test_a_row_its_worker_cannot_even_read_is_set_aside_and_the_rows_behind_it_go_out(write_config, receivers):
    """A poisoned row (here a payload that is not a message: an older version's, a hand edit)
    fails once, with its error, and never holds up its channel."""
    from probe.storage import NewDelivery
    hook = await receivers()
    config = write(write_config, "http://127.0.0.1:9/", f"""
        [[notifiers]]
        id = "hook"
        type = "webhook"
        url = "{hook.url}/"
    """, '["hook"]')
    probe = await started(config)
    try:
        probe.scheduler.unschedule("web")
        good = probe.notify.messages.test(probe.config.notifiers[0])
        await probe.notify.outbox.enqueue([NewDelivery("hook", "poison", '{"not": "a message"}'),
                                           NewDelivery("hook", good.key, good.to_json())])
        (received,) = await hook.wait_for(1)
        assert received.json["id"] == good.key
        await until(lambda: _key_state(probe, "hook", good.key, "sent"))
        rows = {row["key"]: row for row in await deliveries(probe, "hook")}
        assert rows["poison"]["state"] == "failed" and rows["poison"]["attempts"] == 1
        assert "internal error" in rows["poison"]["error"] and "TypeError" in rows["poison"]["error"]
        assert rows["poison"]["done_ms"] is not None
    finally:
        await probe.stop()


async def _key_state(probe, notifier_id, key, state) -> bool:
    return any(r["key"] == key and r["state"] == state for r in await deliveries(probe, notifier_id))
