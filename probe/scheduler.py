"""Monitor runs on one timer over a heap of due times; APScheduler for housekeeping jobs.

- First runs are spread over each interval by a stable hash of the monitor id, so
  10,000 monitors do not all fire at start-up, and a restart keeps each one's phase.
- Runs of one monitor never overlap: a slot that comes while the previous run is still
  going is skipped. Nothing caps how many different monitors run at once: a global cap
  is what makes peers check every 8 minutes what should be checked every minute.
- Each run knows when it was due: slots are anchor + k * interval, a run never starts
  before its slot, and after a stall a monitor runs once for its latest slot, not once
  per missed slot.
- Why not one APScheduler job per monitor: at 10,000 monitors its per-run bookkeeping
  and one event-loop wake-up per run cost more CPU than the HTTP check itself (see
  BENCHMARKS.md). The timer here wakes at most once per TICK_S and starts every run
  then due, so checks due close together share a wake-up; a run starts at most about
  TICK_S after its slot.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
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

# APScheduler logs every run at INFO; the housekeeping jobs need no such log.
logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
logging.getLogger("apscheduler.scheduler").setLevel(logging.WARNING)

TICK_S = 0.05


@dataclass(frozen=True)
class Slot:
    anchor: float  # epoch seconds of the first run
    interval: float

    def scheduled_before(self, now: float) -> float:
        """The latest slot at or before `now`."""
        k = math.floor((now - self.anchor) / self.interval + 1e-6)
        return self.anchor + max(0, k) * self.interval


def phase_of(monitor_id: str, interval: float) -> float:
    """A stable offset in [0, interval) for this monitor."""
    return (zlib.crc32(monitor_id.encode()) / 2**32) * interval


def first_run(monitor_id: str, interval: float, now: float) -> float:
    """The next wall-clock time t > now with (t - phase) a multiple of the interval."""
    phase = phase_of(monitor_id, interval)
    k = math.floor((now - phase) / interval) + 1
    return phase + k * interval


RunFn = Callable[[str, int], Awaitable[None]]  # (monitor_id, scheduled_ms)


class Scheduler:
    def __init__(self, run: RunFn) -> None:
        self._run = run
        self._aps = AsyncIOScheduler(timezone=timezone.utc, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": None})
        self._slots: dict[str, Slot] = {}
        self._due: list[tuple[float, int, str, Slot]] = []  # heap; entries of replaced slots are stale
        self._order = itertools.count()  # ties in the heap never compare slots
        self._busy: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._running = False

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        self._aps.start()
        self._running = True
        self._arm()

    def shutdown(self) -> None:
        """Stop starting runs; runs in flight finish on their own (their results are kept)."""
        self._running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, math.inf
        if self._aps.running:
            self._aps.shutdown(wait=False)

    def schedule(self, monitor_id: str, interval: float, now: float | None = None) -> None:
        """Add the monitor, or move it if its interval changed."""
        current = self._slots.get(monitor_id)
        if current is not None and current.interval == interval:
            return
        slot = Slot(first_run(monitor_id, interval, now if now is not None else time.time()), interval)
        self._slots[monitor_id] = slot
        heapq.heappush(self._due, (slot.anchor, next(self._order), monitor_id, slot))
        self._arm()

    def unschedule(self, monitor_id: str) -> None:
        self._slots.pop(monitor_id, None)  # its heap entry is dropped when it comes up

    def add_periodic(self, name: str, func: Callable[[], Awaitable[None]], every: float, first_in: float) -> None:
        self._aps.add_job(func, IntervalTrigger(seconds=every, start_date=_utc(time.time() + first_in)),
                          id=name, name=name, replace_existing=True)

    def monitor_ids(self) -> set[str]:
        return set(self._slots)

    def _arm(self) -> None:
        """Set the timer for the earliest due slot, unless it is already set for sooner."""
        if not self._running or not self._due:
            return
        at = self._due[0][0]
        if self._timer is not None:
            if self._timer_at <= at:
                return
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(loop.time() + max(0.0, at - time.time()), self._fire)
        self._timer_at = at

    def _fire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        now, started = time.time(), False
        while self._due and self._due[0][0] <= now:
            _, _, monitor_id, slot = heapq.heappop(self._due)
            if self._slots.get(monitor_id) is not slot:
                continue  # unscheduled, or moved to another interval
            scheduled = slot.scheduled_before(now)
            heapq.heappush(self._due, (scheduled + slot.interval, next(self._order), monitor_id, slot))
            started = self._start_run(monitor_id, scheduled) or started
        if self._running and self._due:
            # After starting runs, not sooner than one tick: runs due in between start together.
            # (A timer that fired a hair early started nothing and waits just for the slot.)
            at = max(self._due[0][0], now + TICK_S) if started else self._due[0][0]
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(loop.time() + (at - time.time()), self._fire)
            self._timer_at = at

    def _start_run(self, monitor_id: str, scheduled: float) -> bool:
        if monitor_id in self._busy:
            log.warning("previous check still running, slot skipped monitor=%s", monitor_id)
            return False
        self._busy.add(monitor_id)
        # Truncated like now_ms(): a run that starts within the millisecond of its slot is 0 ms late, not -1.
        task = asyncio.create_task(self._run(monitor_id, int(scheduled * 1000)))
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._finished(monitor_id, t))
        return True

    def _finished(self, monitor_id: str, task: asyncio.Task) -> None:
        self._busy.discard(monitor_id)
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("run failed monitor=%s", monitor_id, exc_info=task.exception())


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)
