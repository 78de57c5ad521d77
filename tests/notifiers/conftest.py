from __future__ import annotations

import aiohttp
import pytest

from probe.config.schema import Problems
from probe.notifiers import Message, parse_notifiers
from tests.peers.receiver import Receiver


def make_notifier(**table):
    problems = Problems("test.toml")
    (config,) = parse_notifiers([{"id": "n", **table}], problems)
    assert not problems, problems.lines
    return config.make()


def down_message(**changes) -> Message:
    fields = dict(key="event:41", event="open", status="down", title="Website is down", monitor_id="web",
                  monitor_name="Website", reason="HTTP 503 (expected 200)", impact="major",
                  body="We are currently investigating this issue.", incident_id=7,
                  started_ms=1_795_000_000_000, at_ms=1_795_000_000_000, url="https://status.example.com/incidents/7",
                  language="en", timezone="Europe/Berlin")
    fields.update(changes)
    return Message(**fields)


@pytest.fixture
async def receiver():
    r = await Receiver().start()
    yield r
    await r.close()


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s
