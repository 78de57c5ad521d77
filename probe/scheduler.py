"""APScheduler's asyncio scheduler, one interval job per monitor.

- First runs are spread over each interval by a stable hash of the monitor id, so
  10,000 monitors do not all fire at start-up, and a restart keeps each one's phase.
- Runs of one monitor never overlap (max_instances=1); nothing caps how many
  different monitors run at once: a global cap is what makes peers check every
  8 minutes what should be checked every minute.
- Each run knows when it was due: slots are anchor + k * interval, and APScheduler
  never starts a job before its slot, so the latest slot not after the start is it.
"""
from __future__ import annotations

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

# APScheduler logs every run at INFO: 300 lines a second at 10,000 monitors.
logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
logging.getLogger("apscheduler.scheduler").setLevel(logging.WARNING)


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
            "coalesce": True,  # after a stall, run once, not once per missed slot
            "max_instances": 1,
            "misfire_grace_time": None,  # late is better than skipped
        })
        self._slots: dict[str, Slot] = {}

    @property
    def running(self) -> bool:
        return self._aps.running

    def start(self) -> None:
        self._aps.start()

    def shutdown(self) -> None:
        if self._aps.running:
            self._aps.shutdown(wait=False)

    def schedule(self, monitor_id: str, interval: float, now: float | None = None) -> None:
        """Add the monitor's job, or move it if its interval changed."""
        current = self._slots.get(monitor_id)
        if current is not None and current.interval == interval:
            return
        anchor = first_run(monitor_id, interval, now if now is not None else time.time())
        self._slots[monitor_id] = Slot(anchor, interval)
        self._aps.add_job(self._tick, IntervalTrigger(seconds=interval, start_date=_utc(anchor)),
                          args=(monitor_id,), id=f"monitor:{monitor_id}", replace_existing=True,
                          name=f"check {monitor_id}")

    def unschedule(self, monitor_id: str) -> None:
        if self._slots.pop(monitor_id, None) is not None:
            self._aps.remove_job(f"monitor:{monitor_id}")

    def add_periodic(self, name: str, func: Callable[[], Awaitable[None]], every: float, first_in: float) -> None:
        self._aps.add_job(func, IntervalTrigger(seconds=every, start_date=_utc(time.time() + first_in)),
                          id=name, name=name, replace_existing=True)

    def monitor_ids(self) -> set[str]:
        return set(self._slots)

    async def _tick(self, monitor_id: str) -> None:
        slot = self._slots.get(monitor_id)
        if slot is None:
            return
        scheduled = slot.scheduled_before(time.time())
        await self._run(monitor_id, round(scheduled * 1000))


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)
