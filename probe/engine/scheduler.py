"""APScheduler's asyncio scheduler runs the checks: one interval job per phase slot.

- First runs are spread over each interval by a stable hash of the monitor id, so
  10,000 monitors do not all fire at start-up, and a restart keeps each one's phase.
  The phase is rounded down to TICK_S, and monitors of the same interval and phase
  share one APScheduler job: at 10,000 monitors, one job per monitor made APScheduler's
  per-run bookkeeping (and one event-loop wake-up per run) cost more CPU than the HTTP
  check itself (BENCHMARKS.md). A shared job changes nothing else: each member still
  runs on its own slot, at most TICK_S from where its hash alone would put it.
  The tick is half a second, not less: the checks of one tick connect, answer and close
  in the same few event-loop wake-ups, and in this sandbox a wake-up costs about as much
  CPU as a check's own Python (1,000 monitors: 0.56 ms per check at 0.1 s, 0.40 at 0.5 s).
- Runs of one monitor never overlap: a slot that comes while its previous run is still
  going is skipped (and logged). Nothing caps how many different monitors run at once:
  a global cap is what makes peers check every 8 minutes what should be checked every minute.
- Each run knows when it was due: slots are anchor + k * interval, and APScheduler
  never starts a job before its slot, so the latest slot not after the start is it.
  After a stall a job runs once (coalesce), for its latest slot.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger("probe.scheduler")

# APScheduler logs every run at INFO: hundreds of lines a second at 10,000 monitors.
logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
logging.getLogger("apscheduler.scheduler").setLevel(logging.WARNING)

TICK_S = 0.5  # phases are multiples of this, so monitors due together share a job (and wake-ups)


@dataclass(frozen=True)
class Slot:
    anchor: float  # epoch seconds of the first run
    interval: float

    def scheduled_before(self, now: float) -> float:
        """The latest slot at or before `now`."""
        k = math.floor((now - self.anchor) / self.interval + 1e-6)
        return self.anchor + max(0, k) * self.interval


def phase_of(monitor_id: str, interval: float) -> float:
    """A stable offset in [0, interval), a whole number of ticks."""
    ticks = math.floor((zlib.crc32(monitor_id.encode()) / 2**32) * interval / TICK_S)
    return ticks * TICK_S


def first_run(monitor_id: str, interval: float, now: float) -> float:
    """The next wall-clock time t > now with (t - phase) a multiple of the interval."""
    phase = phase_of(monitor_id, interval)
    k = math.floor((now - phase) / interval) + 1
    return phase + k * interval


RunFn = Callable[[str, int], Awaitable[None]]  # (monitor_id, scheduled_ms)
BucketKey = tuple[float, int]  # (interval, phase in ticks)


@dataclass
class _Bucket:
    slot: Slot
    members: set[str]


class Scheduler:
    def __init__(self, run: RunFn) -> None:
        self._run = run
        self._aps = AsyncIOScheduler(timezone=timezone.utc, job_defaults={
            "coalesce": True,  # after a stall, run once, not once per missed slot
            "max_instances": 1,
            "misfire_grace_time": None,  # late is better than skipped
        })
        self._slots: dict[str, Slot] = {}
        self._buckets: dict[BucketKey, _Bucket] = {}
        self._busy: set[str] = set()
        self._tasks: set[asyncio.Task] = set()

    @property
    def running(self) -> bool:
        return self._aps.running

    def start(self) -> None:
        self._aps.start()

    def shutdown(self) -> None:
        """Stop starting runs and cancel those in flight: a check cut short must record nothing,
        not a failure (its HTTP session is about to close under it)."""
        if self._aps.running:
            self._aps.shutdown(wait=False)
        for task in self._tasks:
            task.cancel()

    async def stop(self) -> None:
        """shutdown(), then wait until the cancelled runs have ended."""
        self.shutdown()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def schedule(self, monitor_id: str, interval: float, now: float | None = None) -> None:
        """Add the monitor, or move it if its interval changed."""
        current = self._slots.get(monitor_id)
        if current is not None:
            if current.interval == interval:
                return
            self.unschedule(monitor_id)
        slot = Slot(first_run(monitor_id, interval, now if now is not None else time.time()), interval)
        self._slots[monitor_id] = slot
        key = (interval, round(phase_of(monitor_id, interval) / TICK_S))
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(slot, set())
            self._aps.add_job(self._fire, IntervalTrigger(seconds=interval, start_date=_utc(slot.anchor)),
                              args=(key,), id=_job_id(key), name=f"checks every {interval:g}s at +{key[1]} ticks")
        bucket.members.add(monitor_id)

    def unschedule(self, monitor_id: str) -> None:
        slot = self._slots.pop(monitor_id, None)
        if slot is None:
            return
        key = (slot.interval, round(phase_of(monitor_id, slot.interval) / TICK_S))
        bucket = self._buckets[key]
        bucket.members.discard(monitor_id)
        if not bucket.members:
            del self._buckets[key]
            self._aps.remove_job(_job_id(key))

    def add_periodic(self, name: str, func: Callable[[], Awaitable[None]], every: float, first_in: float) -> None:
        self._aps.add_job(func, IntervalTrigger(seconds=every, start_date=_utc(time.time() + first_in)),
                          id=name, name=name, replace_existing=True)

    def monitor_ids(self) -> set[str]:
        return set(self._slots)

    async def _fire(self, key: BucketKey) -> None:
        bucket = self._buckets.get(key)
        if bucket is None:
            return
        # Truncated like now_ms(): a run that starts within the millisecond of its slot is 0 ms late, not -1.
        scheduled_ms = int(bucket.slot.scheduled_before(time.time()) * 1000)
        for monitor_id in tuple(bucket.members):
            self._start_run(monitor_id, scheduled_ms)

    def _start_run(self, monitor_id: str, scheduled_ms: int) -> None:
        if monitor_id in self._busy:
            log.warning("previous check still running, slot skipped monitor=%s", monitor_id)
            return
        self._busy.add(monitor_id)
        task = asyncio.create_task(self._run(monitor_id, scheduled_ms))
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._finished(monitor_id, t))

    def _finished(self, monitor_id: str, task: asyncio.Task) -> None:
        self._busy.discard(monitor_id)
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("run failed monitor=%s", monitor_id, exc_info=task.exception())


def _job_id(key: BucketKey) -> str:
    return f"checks:{key[0]:g}:{key[1]}"


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)
