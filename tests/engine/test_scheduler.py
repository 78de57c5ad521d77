"""The scheduler with the real APScheduler: spread, no overlap, no global cap, due times, stalls."""
import asyncio
import time
from collections import Counter, defaultdict

from probe.engine.scheduler import TICK_S, Scheduler, Slot, first_run, phase_of


def test_first_runs_are_spread_across_the_interval():
    now = 1_800_000_000.05  # between two ticks, so no offset is exactly 30 s
    offsets = [first_run(f"monitor-{i}", 30.0, now) - now for i in range(3000)]
    assert all(0 < o <= 30 for o in offsets)
    per_second = Counter(int(o) for o in offsets)
    # 3,000 monitors over 30 s: about 100 a second, never a burst.
    assert len(per_second) == 30
    assert max(per_second.values()) < 150


def test_a_monitor_keeps_its_phase_across_restarts():
    a = first_run("api", 60.0, 1_800_000_000.0)
    b = first_run("api", 60.0, 1_800_000_000.0 + 3 * 60 + 17)
    assert (b - a) % 60 == 0
    assert phase_of("api", 60.0) == phase_of("api", 60.0)


def test_the_due_time_is_the_latest_slot_before_the_start():
    slot = Slot(anchor=1000.0, interval=30.0)
    assert slot.scheduled_before(1000.0) == 1000.0
    assert slot.scheduled_before(1030.004) == 1030.0
    assert slot.scheduled_before(1075.0) == 1060.0  # late by 15 s: still the 1060 slot


async def test_runs_start_on_their_slots_and_record_when_they_were_due():
    runs = defaultdict(list)

    async def run(monitor_id, scheduled_ms):
        runs[monitor_id].append((scheduled_ms, time.time() * 1000))

    scheduler = Scheduler(run)
    for i in range(20):
        scheduler.schedule(f"m{i}", 0.5)
    scheduler.start()
    await asyncio.sleep(1.6)
    scheduler.shutdown()
    assert len(runs) == 20
    for monitor_id, items in runs.items():
        assert len(items) >= 2
        slot = scheduler._slots[monitor_id]
        for scheduled_ms, started_ms in items:
            assert started_ms >= scheduled_ms - 1  # never early
            k = round((scheduled_ms / 1000 - slot.anchor) / slot.interval)
            assert abs(scheduled_ms - (slot.anchor + k * slot.interval) * 1000) <= 1  # on the grid
        due = [s for s, _ in items]
        assert due == sorted(set(due))  # each slot once


async def test_runs_of_one_monitor_never_overlap():
    running, peak = Counter(), Counter()

    async def slow(monitor_id, scheduled_ms):
        running[monitor_id] += 1
        peak[monitor_id] = max(peak[monitor_id], running[monitor_id])
        await asyncio.sleep(0.5)  # longer than the interval
        running[monitor_id] -= 1

    scheduler = Scheduler(slow)
    scheduler.schedule("slow", 0.2)
    scheduler.start()
    await asyncio.sleep(1.3)
    scheduler.shutdown()
    assert peak["slow"] == 1


async def test_nothing_caps_how_many_monitors_run_at_once():
    state = {"now": 0, "peak": 0}

    async def busy(monitor_id, scheduled_ms):
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        await asyncio.sleep(0.6)
        state["now"] -= 1

    scheduler = Scheduler(busy)
    for i in range(300):
        scheduler.schedule(f"m{i}", 0.7)
    scheduler.start()
    await asyncio.sleep(1.5)
    scheduler.shutdown()
    # Each run lasts 0.6 of a 0.7 s interval: most of the 300 must be in flight together.
    assert state["peak"] > 200


async def test_changing_the_interval_moves_the_job_and_unscheduling_stops_it():
    calls = Counter()

    async def run(monitor_id, scheduled_ms):
        calls[monitor_id] += 1

    scheduler = Scheduler(run)
    scheduler.schedule("a", 60)
    scheduler.start()
    scheduler.schedule("a", 0.2)
    scheduler.schedule("b", 0.2)
    await asyncio.sleep(0.7)
    scheduler.unschedule("b")
    seen_b = calls["b"]
    await asyncio.sleep(0.5)
    scheduler.shutdown()
    assert calls["a"] >= 2
    assert seen_b >= 2 and calls["b"] == seen_b
    assert scheduler.monitor_ids() == {"a"}


async def test_after_a_stall_a_monitor_runs_once_for_its_latest_slot():
    runs = []

    async def run(monitor_id, scheduled_ms):
        runs.append((scheduled_ms, time.time() * 1000))

    scheduler = Scheduler(run)
    scheduler.schedule("a", 0.2)
    scheduler.start()
    await asyncio.sleep(0.5)
    stall_start = time.time() * 1000
    time.sleep(1.0)  # the event loop is blocked across about five slots
    stall_end = time.time() * 1000

    def missed() -> list[float]:
        return [due for due, started in runs if started >= stall_start and due <= stall_end]
    for _ in range(20):  # the catch-up run comes at the next tick; on a loaded machine that may take a while
        if missed():
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.1)
    scheduler.shutdown()
    missed = missed()
    assert len(missed) == 1  # once, not once per missed slot ...
    assert missed[0] >= stall_end - 200 - 1  # ... and for the latest of them


async def test_monitors_due_in_the_same_tick_share_one_job_and_each_still_runs():
    calls = Counter()

    async def run(monitor_id, scheduled_ms):
        calls[monitor_id] += 1

    scheduler = Scheduler(run)
    for i in range(200):
        scheduler.schedule(f"m{i}", 1.0)
    scheduler.start()
    jobs = len(scheduler._aps.get_jobs())
    await asyncio.sleep(2.3)
    scheduler.shutdown()
    assert jobs <= 1.0 / TICK_S  # at most one job per tick of the interval, not one per monitor
    assert set(calls) == {f"m{i}" for i in range(200)} and min(calls.values()) >= 2


async def test_a_run_that_fails_is_logged_and_the_monitor_keeps_its_schedule(caplog):
    calls = Counter()

    async def flaky(monitor_id, scheduled_ms):
        calls[monitor_id] += 1
        raise RuntimeError("boom")

    scheduler = Scheduler(flaky)
    scheduler.schedule("a", 0.2)
    scheduler.start()
    await asyncio.sleep(0.9)
    scheduler.shutdown()
    assert calls["a"] >= 3
    assert any("run failed monitor=a" in r.getMessage() for r in caplog.records)


async def test_stopping_cancels_runs_in_flight_so_none_finishes_after_it():
    finished = []

    async def slow(monitor_id, scheduled_ms):
        await asyncio.sleep(5)
        finished.append(monitor_id)

    scheduler = Scheduler(slow)
    scheduler.schedule("a", 0.2)
    scheduler.start()
    await asyncio.sleep(0.5)
    async with asyncio.timeout(5):
        await scheduler.stop()
    assert scheduler._tasks == set() and finished == []
