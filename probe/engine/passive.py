"""Monitors whose checks are fed, not run (push monitors): reports in, results out.

- A report names its monitor by the check's key (a token). Keys are looked up by an HMAC of
  the key under a per-process secret: the time a lookup takes does not depend on whether the
  key exists or how much of it a guess got right.
- Each key may report RATE times a second on average, BURST at once; beyond that a report
  is refused and recorded nowhere, so a script stuck in a loop cannot flood the database.
  Unknown keys are counted the same way, so the answers tell nothing more than 404 does.
- When a report does not come in time the check says what to record, and when
  (`Check.due`). One timer sleeps until the earliest such moment. A report only ever moves
  its monitor's moment later (a run's start may move it earlier: that one is queued anew),
  so a report costs no schedule arithmetic: a monitor's next moment is worked out again
  only when its timer entry comes up.
"""
from __future__ import annotations

import asyncio
import dataclasses
import enum
import heapq
import hmac
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from probe.checks.base import Check, FedState, History, Ping
from probe.core.models import CheckResult, ResultRecord
from probe.core.units import now_ms
from probe.engine.runner import apply_degraded_latency
from probe.storage import open_storage

log = logging.getLogger("probe.passive")

RATE, BURST = 10.0, 20  # reports per second per key
LIMITED_KEYS = 100_000  # keys whose recent reports are remembered (the oldest are forgotten first)
START_KEY = "passive_start:"  # meta: a run's start, per monitor (a start records no result)
MAX_DUE_PER_WAKE = 1000  # missed slots recorded before the event loop gets a turn

# (monitor config, result, time of the result, offline: None when it depends on probe's own network)
Submit = Callable[[Any, CheckResult, int, "bool | None"], None]


class Fed(enum.Enum):
    ACCEPTED = "accepted"
    UNKNOWN = "unknown"
    LIMITED = "limited"
    ELSEWHERE = "elsewhere"  # [cluster]: only the leader records reports, for now; the sender retries


class Buckets:
    """Token buckets per key, a bounded number of keys."""

    def __init__(self, rate: float, burst: int, keys: int = LIMITED_KEYS) -> None:
        self.rate, self.burst, self.keys = rate, burst, keys
        self._left: OrderedDict[bytes, tuple[float, float]] = OrderedDict()  # key -> (tokens, when)

    def take(self, key: bytes, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        tokens, then = self._left.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        allowed = tokens >= 1.0 - 1e-9  # 1/RATE seconds later is one more, whatever the float sum says
        self._left[key] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._left) > self.keys:
            self._left.popitem(last=False)
        return allowed


@dataclass
class Watched:
    config: Any  # MonitorConfig
    check: Check
    state: FedState


class Passive:
    def __init__(self, store, submit: Submit) -> None:
        self.store = store
        self._submit = submit
        self._secret = os.urandom(32)
        self._by_digest: dict[bytes, str] = {}
        self.watched: dict[str, Watched] = {}
        self.limits = Buckets(RATE, BURST)
        self._heap: list[tuple[int, str]] = []
        self._queued: dict[str, int] = {}  # monitor -> the time of its live heap entry
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    # ---- life cycle -------------------------------------------------------------------

    async def load(self, monitors: Iterable[tuple[Any, Check]], latest: dict[str, ResultRecord],
                   watching_since_ms: int) -> None:
        """(Re)load the passive monitors. Those already watched keep their state; new ones start
        from their newest stored result."""
        watched = {}
        for config, check in monitors:
            if not check.passive:
                continue
            kept = self.watched.get(config.id)
            if kept is not None and kept.check.type == check.type:
                state = kept.state
            else:
                started = await self.store.meta_get(START_KEY + config.id)
                state = check.restore(latest.get(config.id), int(started) if started else None, watching_since_ms)
            watched[config.id] = Watched(config, check, state)
        self.watched = watched
        self._by_digest = {self._digest(w.check.key()): monitor_id for monitor_id, w in watched.items()}
        self._heap, self._queued = [], {}
        for monitor_id in watched:
            self._queue(monitor_id)
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="passive-deadlines")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # ---- reports ----------------------------------------------------------------------

    def _digest(self, key: str) -> bytes:
        return hmac.digest(self._secret, key.encode(), "sha256")  # one C call: this runs for every report

    async def feed(self, key: str, ping: Ping) -> Fed:
        digest = self._digest(key)
        if not self.limits.take(digest):
            return Fed.LIMITED
        monitor_id = self._by_digest.get(digest)
        if monitor_id is None:
            return Fed.UNKNOWN
        watched = self.watched[monitor_id]
        # Results of one monitor are keyed by their millisecond: two reports never share one.
        if ping.at_ms <= watched.state.since_ms:
            ping = dataclasses.replace(ping, at_ms=watched.state.since_ms + 1)
        result, watched.state = watched.check.feed(ping, watched.state)
        if result is None:  # a run's start: nothing to record, but a deadline may have come closer
            self._queue(monitor_id)
            self._wake.set()
            await self.store.meta_set(START_KEY + monitor_id, str(ping.at_ms))
        else:
            # A report that arrived is the job's own word, whatever the state of probe's network.
            self._submit(watched.config, apply_degraded_latency(result, watched.config.degraded_latency), ping.at_ms,
                         False)
        return Fed.ACCEPTED

    # ---- what is due when no report comes ---------------------------------------------

    def _queue(self, monitor_id: str) -> None:
        due = self.watched[monitor_id].check.due(self.watched[monitor_id].state)
        queued = self._queued.get(monitor_id)
        if due is not None and (queued is None or due.fire_ms < queued):
            self._queued[monitor_id] = due.fire_ms
            heapq.heappush(self._heap, (due.fire_ms, monitor_id))

    def fire_due(self, now: int) -> int:
        """Record what has fallen due by `now`; returns how many results that was."""
        recorded = 0
        while self._heap and self._heap[0][0] <= now and recorded < MAX_DUE_PER_WAKE:
            at, monitor_id = heapq.heappop(self._heap)
            if self._queued.get(monitor_id) != at:
                continue  # replaced by an earlier entry, or the monitor was removed
            del self._queued[monitor_id]
            watched = self.watched[monitor_id]
            due = watched.check.due(watched.state)
            if due is not None and due.fire_ms <= now:
                watched.state = due.then
                result = dataclasses.replace(due.result, details=due.result.details | {"detected_ms": now})
                # A report that did not come may be probe's own network's fault: the service decides.
                self._submit(watched.config, result, due.ts_ms, None)
                recorded += 1
            self._queue(monitor_id)
        return recorded

    async def _watch(self) -> None:
        while True:
            self._wake.clear()
            try:
                self.fire_due(now_ms())
            except Exception:  # a bug must cost one wake, never the timer
                log.exception("recording missed reports failed")
            delay = (self._heap[0][0] - now_ms()) / 1000 if self._heap else 3600.0
            if delay > 0:
                try:
                    async with asyncio.timeout(min(delay, 3600.0)):
                        await self._wake.wait()
                except TimeoutError:
                    pass
            else:
                await asyncio.sleep(0)


class StoredHistory(History):
    """The database's history, for `probe check` (one process reading what `probe run` wrote).
    A database that does not exist is not created: there is no history."""

    def __init__(self, target, calendar) -> None:
        self.target, self.calendar = target, calendar  # a StorageTarget (Config.storage_target)
        self._store = None
        self._lock = asyncio.Lock()  # the checks run side by side: one opens the file, the others wait

    async def last(self, monitor_id: str) -> tuple[ResultRecord | None, int | None]:
        async with self._lock:
            if self._store is None:
                if self.target.kind == "sqlite" and not self.target.path.exists():
                    return None, None
                store = open_storage(self.target, self.calendar, read_only=True)
                await store.open()
                self._store = store
        recent = await self._store.recent_results(monitor_id, 1)
        started = await self._store.meta_get(START_KEY + monitor_id)
        return (recent[-1] if recent else None), (int(started) if started else None)

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()
            self._store = None
