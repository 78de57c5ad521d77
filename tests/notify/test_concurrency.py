"""A channel sends several incidents' messages at once (`concurrency`), and each incident's in
order, one after another: a receiver on loopback sees when each request starts and ends."""
from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.notify.test_dispatcher import started, until, write

ANSWER_S = 0.3


class TimingHook:
    """Answers each request after ANSWER_S, noting (message, start, end) and the most at once."""

    def __init__(self) -> None:
        self.spans: list[tuple[dict, float, float]] = []
        self.now_open = self.most_open = 0
        app = web.Application()
        app.router.add_post("/in", self.handle)
        self.server = TestServer(app, host="127.0.0.1")

    async def handle(self, request: web.Request) -> web.Response:
        doc, start = await request.json(), time.monotonic()
        self.now_open += 1
        self.most_open = max(self.most_open, self.now_open)
        await asyncio.sleep(ANSWER_S)
        self.now_open -= 1
        self.spans.append((doc, start, time.monotonic()))
        return web.Response(text="ok")


async def story(probe, incidents: int) -> None:
    """Open `incidents` incidents by hand, then give each two updates and resolve it."""
    from probe.engine.operator import NewIncident, Operator
    operator = Operator(probe)
    opened = [await operator.open(NewIncident(title=f"Incident {n}", monitors=("web",))) for n in range(incidents)]
    for status in ("identified", "monitoring", "resolved"):
        for incident in opened:
            await operator.update(incident.id, status)


@pytest.mark.parametrize("concurrency,expected_most", [(None, 4), (1, 1)])
async def test_a_channel_sends_incidents_side_by_side_and_each_incident_in_order(write_config, concurrency,
                                                                                 expected_most):
    hook = TimingHook()
    async with hook.server:
        key = f"concurrency = {concurrency}" if concurrency else ""
        config = write(write_config, "http://127.0.0.1:9/", f"""
            [[notifiers]]
            id = "hook"
            type = "webhook"
            url = "{hook.server.make_url('/in')}"
            {key}
        """, '["hook"]')
        probe = await started(config)
        try:
            probe.scheduler.unschedule("web")
            await story(probe, incidents=8)
            await until(lambda: _all_answered(hook, 8 * 4), timeout=60)
        finally:
            await probe.stop()
    assert hook.most_open == expected_most  # at most `concurrency`, and that many when there is a backlog
    by_incident: dict[int, list] = {}
    for doc, start, end in sorted(hook.spans, key=lambda span: span[1]):
        by_incident.setdefault(doc["incident"]["id"], []).append((doc["event"], start, end))
    assert len(by_incident) == 8
    for spans in by_incident.values():
        assert [event for event, _, _ in spans] == ["open", "update", "update", "resolve"]
        for (_, _, end), (_, next_start, _) in zip(spans, spans[1:]):
            assert next_start >= end  # the next of an incident's messages waits for the channel's answer


async def _all_answered(hook: TimingHook, count: int) -> bool:
    return len(hook.spans) >= count



def test_connectivity_notices_share_one_lane_so_restored_never_overtakes_lost():
    from tests.notifiers.conftest import down_message
    lost = down_message(key="connectivity_lost:1000", event="connectivity_lost", incident_id=None)
    restored = down_message(key="connectivity_restored:1000", event="connectivity_restored", incident_id=None)
    other = down_message(key="connectivity_lost:2000", event="connectivity_lost", incident_id=None)
    assert lost.lane == restored.lane == other.lane  # one at a time, in the order they were queued
    assert down_message(incident_id=7).lane != lost.lane
