"""The platforms' rate limits and the retry backoff: the limiter and the backoff on a clock and
a random source the test controls (nothing sleeps), then a burst to each limited channel through
the real outbox worker, its real file and a real receiver on loopback. The limits are read
from the channels themselves, so a new limited channel is covered without a line here."""
from __future__ import annotations

import asyncio
import random
import time

import pytest

from probe.notifiers import REGISTRY
from probe.notify.limits import Backoff, RateLimiter
from probe.notify.outbox import Outbox, delivery
from tests.notifiers.conftest import down_message, notifier_config, required_keys
from tests.peers.receiver import Receiver

LIMITED = sorted(kind for kind, channel in REGISTRY.items() if channel.limits)
START = 1000.0  # any reading of a monotonic clock


def earliest(sent: list[float], limits, start: float = START) -> float:
    """When the next message may go, by the platform's rule: no sooner than `seconds` after
    the message `count` places before it."""
    at = start
    for count, seconds in limits:
        if len(sent) >= count:
            at = max(at, sent[-count] + seconds)
    return at


def burst_size(limits) -> int:
    """One more than the largest count: every window of the channel is exceeded once."""
    return max(count for count, _ in limits) + 1


def assert_within(limits, sent: list[float]) -> None:
    for count, seconds in limits:
        for first, later in zip(sent, sent[count:]):
            assert later - first >= seconds, f"{count + 1} messages within {later - first:g} s (limit {count}/{seconds:g} s)"


# ---- the limiter and the backoff, on the test's clock --------------------------------------------


def test_the_readme_limits_are_the_channels_limits():
    assert {kind: REGISTRY[kind].limits for kind in LIMITED} == {
        "dingtalk": ((20, 60.0),), "wecom": ((20, 60.0),), "feishu": ((5, 1.0), (100, 60.0)),
        "lark": ((5, 1.0), (100, 60.0)), "slack": ((1, 1.0),), "discord": ((5, 2.0), (30, 60.0)),
        "telegram": ((1, 1.0), (20, 60.0)), "pagerduty": ((120, 60.0),)}


@pytest.mark.parametrize("kind", LIMITED)
def test_the_limiter_lets_each_message_go_at_the_earliest_moment_the_platform_allows(kind):
    """A sender that sends whenever the limiter says 0 and otherwise advances the clock by
    what it says, over two of the channel's longest windows."""
    limits = REGISTRY[kind].limits
    limiter, now, sent = RateLimiter(limits), START, []
    horizon = START + 2 * max(seconds for _, seconds in limits)
    while now < horizon and len(sent) < 10_000:  # bounded: a limiter that never holds must fail, not hang
        wait = limiter.wait_s(now)
        if wait > 0:
            assert now + wait == earliest(sent, limits)  # it names the moment, not a guess
            now += wait
            continue
        assert now == earliest(sent, limits)  # never held past that moment
        limiter.record(now)
        sent.append(now)
    assert_within(limits, sent)
    # Two of the longest windows pass, and each lets its whole count through: no stricter than the platform.
    assert len(sent) == 2 * max(count for count, _ in limits)


def test_feishu_sends_five_a_second_until_its_hundred_a_minute_are_spent():
    limiter, sent, now = RateLimiter(REGISTRY["feishu"].limits), [], 0.0
    while len(sent) < 101:
        now += limiter.wait_s(now)
        limiter.record(now)
        sent.append(now)
    assert sent[:10] == [0.0] * 5 + [1.0] * 5
    assert sent[95:100] == [19.0] * 5 and sent[100] == 60.0  # the 101st waits for the first minute to pass


def never_random(lo: float, hi: float) -> float:
    return (lo + hi) / 2


def test_the_backoff_doubles_from_2_s_to_5_min():
    backoff = Backoff(uniform=never_random)
    assert [backoff.delay(n) for n in range(1, 12)] == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]


@pytest.mark.parametrize("edge, factor", [(min, 0.8), (max, 1.2)])
def test_the_jitter_reaches_20_percent_either_way_and_no_further(edge, factor):
    backoff = Backoff(uniform=lambda lo, hi: edge(lo, hi))
    assert [backoff.delay(n) for n in (1, 2, 3, 9, 20)] == pytest.approx(
        [2 * factor, 4 * factor, 8 * factor, 300 * factor, 300 * factor])


def test_jittered_delays_spread_over_the_band():
    backoff = Backoff(uniform=random.Random(19).uniform)
    delays = [backoff.delay(3) for _ in range(400)]
    assert 6.4 <= min(delays) and max(delays) <= 9.6
    assert min(delays) < 6.8 and max(delays) > 9.2  # spread, not one value


def test_a_longer_retry_after_from_the_platform_wins_a_shorter_one_does_not():
    backoff = Backoff(uniform=never_random)
    assert backoff.delay(1, retry_after=30.0) == 30.0
    assert backoff.delay(4, retry_after=1.0) == 16.0
    assert backoff.delay(2, retry_after=None) == 4.0


# ---- bursts through the real outbox worker ------------------------------------------------------


class SteppedClock:
    """A monotonic clock that moves only when the test moves it."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


async def until(condition, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.002)


async def sent_all(store, kind: str, total: int, timeout: float = 10.0) -> None:
    """Wait until the outbox says every row of the target is sent (the last answer recorded)."""
    deadline = time.monotonic() + timeout
    while [row.state for row in await store.outbox_list(kind, total)] != ["sent"] * total:
        assert time.monotonic() < deadline, "the outbox still has rows that are not sent"
        await asyncio.sleep(0.01)


async def burst(store, receiver: Receiver, kind: str, count: int, clock=None) -> Outbox:
    """Queue `count` messages for one target of `kind` on a started outbox."""
    outbox = Outbox(store, clock=clock or time.monotonic)
    await outbox.start()
    target = notifier_config(id=kind, type=kind, url=receiver.url + "/", **required_keys(kind))
    outbox.start_workers([target])
    await outbox.enqueue([delivery(kind, down_message(key=f"event:{i}", incident_id=i)) for i in range(count)])
    return outbox


@pytest.mark.parametrize("kind", LIMITED)
async def test_a_burst_to_each_limited_channel_arrives_spaced_as_the_platform_allows(store, kind):
    """The clock moves only when the worker says its rate limit holds it, and then exactly to the
    moment the platform's rule allows; arrivals are stamped on the same clock."""
    limits, clock = REGISTRY[kind].limits, SteppedClock()
    receiver = await Receiver(clock=clock).start()
    receiver.json_default({"errcode": 0, "code": 0, "ok": True})
    total = burst_size(limits)
    outbox = await burst(store, receiver, kind, total, clock)
    try:
        while len(receiver.requests) < total:
            seen = len(receiver.requests)
            def held() -> bool:  # by the limit alone: every send it counted has arrived and been answered
                return outbox.held.get(kind) == clock.now and not outbox.sending(kind)
            await until(lambda: len(receiver.requests) > seen or held(),
                        what=f"message {seen + 1} of {total} or the rate limit")
            if held() and len(receiver.requests) == seen:
                sent = [r.at for r in receiver.requests]
                assert earliest(sent, limits) > clock.now, f"held at message {seen + 1} though the limit allows it"
                clock.now = earliest(sent, limits)
                outbox.wake(kind)
        await sent_all(store, kind, total)
    finally:
        await outbox.stop()
        await receiver.close()
    arrived = [r.at for r in receiver.requests]
    assert_within(limits, arrived)
    assert arrived == [earliest(arrived[:k], limits) for k in range(total)]  # and none later than needed


async def test_on_the_real_clock_the_worker_really_waits_out_the_limit(store):
    """Slack allows one message a second: the second of two cannot arrive sooner than a second
    after both were queued (the first was sent no earlier than that)."""
    receiver = await Receiver().start()
    queued = time.monotonic()
    outbox = await burst(store, receiver, "slack", 2)
    try:
        first, second = await receiver.wait_for(2)
    finally:
        await outbox.stop()
        await receiver.close()
    (count, seconds), = REGISTRY["slack"].limits
    assert count == 1 and second.at - queued >= seconds
