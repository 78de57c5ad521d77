"""The passive engine: reports routed by key, per-key limits, and what it records when a report is late.
A real SQLite store; the results it would record are collected instead of sent to the service."""
from probe.checks.base import Ping
from probe.config.loader import load_config
from probe.engine.passive import BURST, RATE, Buckets, Fed, Passive

TOKEN = "nightly-token-0123456789"


def test_a_bucket_allows_a_burst_then_the_sustained_rate_per_key():
    buckets = Buckets(rate=RATE, burst=BURST)
    assert [buckets.take(b"a", now=100.0) for _ in range(BURST + 1)] == [True] * BURST + [False]
    assert buckets.take(b"b", now=100.0)  # another key has its own
    assert buckets.take(b"a", now=100.0 + 1 / RATE)  # one more after 1/RATE seconds
    assert not buckets.take(b"a", now=100.0 + 1 / RATE)


def test_a_bucket_remembers_a_bounded_number_of_keys():
    buckets = Buckets(rate=1.0, burst=1, keys=2)
    assert buckets.take(b"a", now=0.0) and buckets.take(b"b", now=0.0) and buckets.take(b"c", now=0.0)
    assert buckets.take(b"a", now=0.0)  # forgotten (the oldest), so it starts full again
    assert not buckets.take(b"c", now=0.0)


class Recorded(list):
    def __call__(self, config, result, ts_ms, offline):
        # a report that came is never offline; a missed one is for the service to judge
        assert offline is (None if "due_ms" in result.details else False)
        self.append((config.id, result, ts_ms))


async def watch(store, write_config, extra=""):
    config = load_config(write_config(f"""
        [[monitors]]
        id = "job"
        type = "push"
        token = "{TOKEN}"
        period = "10s"
        grace = "5s"
        {extra}
    """))
    recorded = Recorded()
    passive = Passive(store, recorded)
    await passive.load([(m, m.make_check()) for m in config.monitors], {}, watching_since_ms=1_000_000)
    return passive, recorded, config


async def test_a_missed_slot_is_recorded_once_at_its_due_time_when_the_grace_is_over(store, write_config):
    passive, recorded, _ = await watch(store, write_config)
    assert passive.fire_due(1_000_000 + 14_999) == 0  # due at +10 s, grace until +15 s
    assert passive.fire_due(1_000_000 + 15_000) == 1
    (monitor_id, result, ts), = recorded
    assert (monitor_id, ts) == ("job", 1_010_000)
    assert result.reason == "no ping yet (due at 00:16:50, grace 5s)"
    assert result.details == {"due_ms": 1_010_000, "last_ping_ms": None, "detected_ms": 1_015_000}
    assert passive.fire_due(1_015_000) == 0  # the next slot is at +20 s


async def test_a_report_moves_the_deadline_on_without_recording_a_miss(store, write_config):
    passive, recorded, _ = await watch(store, write_config)
    assert await passive.feed(TOKEN, Ping(1_012_000, "success")) is Fed.ACCEPTED
    assert passive.fire_due(1_015_000) == 0
    assert passive.fire_due(1_026_999) == 0
    assert passive.fire_due(1_027_000) == 1
    assert [ts for _, _, ts in recorded] == [1_012_000, 1_022_000]


async def test_every_slot_missed_while_the_loop_was_busy_is_recorded(store, write_config):
    passive, recorded, _ = await watch(store, write_config)
    assert passive.fire_due(1_000_000 + 45_000) == 4
    assert [ts for _, _, ts in recorded] == [1_010_000, 1_020_000, 1_030_000, 1_040_000]


async def test_a_start_brings_a_max_runtime_deadline_forward_and_is_kept_in_the_database(store, write_config):
    passive, recorded, config = await watch(store, write_config, 'max_runtime = "2s"')
    await passive.feed(TOKEN, Ping(1_001_000, "start"))
    assert await store.meta_get("passive_start:job") == "1001000"
    assert passive.fire_due(1_003_000) == 1
    assert recorded[0][1].reason == "run started at 00:16:41 has not finished after 2s"
    assert recorded[0][2] == 1_003_000
    # A new engine (a restart) finds the start again when no result came after it.
    again, _, _ = await watch(store, write_config, 'max_runtime = "2s"')
    assert again.watched["job"].state.started_ms == 1_001_000


async def test_an_unknown_key_is_refused_and_a_reload_keeps_what_is_known(store, write_config):
    passive, recorded, config = await watch(store, write_config)
    assert await passive.feed(TOKEN + "x", Ping(1_001_000, "success")) is Fed.UNKNOWN
    await passive.feed(TOKEN, Ping(1_002_000, "success"))
    await passive.load([(m, m.make_check()) for m in config.monitors], {}, watching_since_ms=9_000_000)
    assert passive.watched["job"].state.since_ms == 1_002_000
    await passive.load([], {}, watching_since_ms=9_000_000)
    assert await passive.feed(TOKEN, Ping(1_003_000, "success")) is Fed.UNKNOWN
    assert len(recorded) == 1
