from __future__ import annotations

import dataclasses

import aiohttp
import pytest

from probe.config.schema import Problems
from probe.notifiers import REGISTRY, Message, parse_notifiers
from tests.peers.receiver import Receiver


def notifier_config(**table):
    problems = Problems("test.toml")
    (config,) = parse_notifiers([{"id": "n", **table}], problems)
    assert not problems, problems.lines
    return config


def make_notifier(**table):
    return notifier_config(**table).make()


def required_keys(kind: str) -> dict[str, str]:
    """A value for each key the channel requires besides its URL, read from its Options: a new
    channel needs no line here."""
    return {f.name: "1" for f in dataclasses.fields(REGISTRY[kind].Options)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name != "url"}


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
