"""The notification outbox, the one owner of stored deliveries: it queues them, and runs one
worker per target (a channel, or a subscriber target) that sends its pending rows oldest
first. Rows are in lanes (Message.lane: one incident, one maintenance window, one
subscriber's incident): a lane's rows go one at a time, in order, so a target hears about an
incident in the order things happened, while up to the target's `concurrency` lanes go at once
(one webhook at a time could not keep up with a receiver that takes 300 ms).

A worker waits out the platform's rate limit, counts the attempt on the database before
making it (a send never starts from a stale view of the outbox: healthchecks claims flips
the same way), retries transient failures with exponential backoff and jitter for the
target's `retry_for`, and stops at once on a permanent one, keeping the channel's own words.
A row whose sender raises anything else is set aside as failed after that one attempt, so a
poisoned row never holds up the rows behind it.
A hung or dead target holds up only its own queue, never a check or another target.

Delivery is at least once: a stop lets the attempts in flight finish and records them, and an
answer the database refuses is journalled by the store (sqlite/journal.py), so only a process
that dies after the channel received a message and before its answer was recorded sends that
one message again. Receivers that care get a stable id to dedupe on (webhook-id, the
PagerDuty dedup_key, the email Message-ID).
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Iterable

import aiohttp

from probe.core.units import now_ms
from probe.notifiers import Message, NotifyError
from probe.notify.limits import Backoff, RateLimiter
from probe.storage import Delivery, NewDelivery

log = logging.getLogger("probe.notify")

DRAIN_MARGIN_S = 2.0  # beyond a channel's timeout, for recording its answer
LOOKAHEAD = 200  # pending rows a worker reads to find the lanes it may start


def delivery(target_id: str, item) -> NewDelivery:
    """A delivery of `item` (a channel Message, or a subscriber Parcel) to one target."""
    return NewDelivery(target_id, item.key, item.to_json())


class Outbox:
    def __init__(self, store, backoff: Backoff = Backoff(), clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.backoff = backoff
        self.clock = clock  # the rate limits' clock (seconds); a test steps its own instead of waiting a minute
        self.held: dict[str, float] = {}  # target -> the clock reading at which its rate limit holds it
        self._workers: dict[str, asyncio.Task] = {}
        self._wakes: dict[str, asyncio.Event] = {}
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[str, float] = {}  # each target's timeout: how long a stop waits for it
        self._in_flight: set[str] = set()  # targets sending right now
        self._stopping = False

    # ---- queueing ---------------------------------------------------------------------

    async def enqueue(self, deliveries: Iterable[NewDelivery], meta: dict[str, str] | None = None) -> int:
        """Queue deliveries (with `meta` in the same transaction) and wake the workers; returns how
        many were new (a key already queued for its target is queued once)."""
        deliveries = list(deliveries)
        if not deliveries and not meta:
            return 0
        added = await self.store.outbox_add(deliveries, meta)
        self.wake_all()
        return added

    def sending(self, target_id: str) -> bool:
        """Whether a delivery to this target is under way right now."""
        return target_id in self._in_flight

    def wake(self, target_id: str) -> None:
        if target_id in self._wakes:
            self._wakes[target_id].set()

    def wake_all(self) -> None:
        for wake in self._wakes.values():
            wake.set()

    async def deliveries(self, notifier_id: str | None = None, limit: int = 100, state: str | None = None
                         ) -> list[dict]:
        """The newest deliveries, as the admin API lists them; `error` is the last failure's words."""
        rows = await self.store.outbox_list(notifier_id, limit, state)
        return [{"id": d.id, "notifier": d.notifier, "key": d.key, "state": d.state, "attempts": d.attempts,
                 "created_ms": d.created_ms, "done_ms": d.done_ms, "answer": d.answer,
                 "error": d.answer if d.state != "sent" and d.answer else None} for d in rows]

    async def counts(self) -> dict[tuple[str, str], int]:
        """Rows by (target, state), for /metrics."""
        return await self.store.outbox_counts()

    # ---- the workers ------------------------------------------------------------------

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        await self.stop_workers()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def start_workers(self, targets) -> None:
        """One worker per target: a NotifierConfig, or anything shaped like one (`id`, `make()`, `settings`)."""
        self._stopping = False
        for target in targets:
            self._wakes[target.id] = asyncio.Event()
            self._timeouts[target.id] = target.settings.timeout
            self._workers[target.id] = asyncio.create_task(self._worker(target), name=f"notify-{target.id}")

    async def stop_workers(self) -> None:
        """Stop taking rows; let the deliveries in flight finish and be recorded (each within its
        channel's timeout), then stop. A delivery cut off mid-send would stay pending and go out
        again at the next start although the channel may have acted on it."""
        self._stopping = True
        self.wake_all()
        if self._in_flight:
            log.info("stopping: waiting for deliveries in flight notifiers=%s", ",".join(sorted(self._in_flight)))
        tasks = list(self._workers.values())
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self.drain_limit_s())
            await cancel(list(late))
        self._workers = {}

    def drain_limit_s(self) -> float:
        """The longest a stop may wait for deliveries in flight."""
        return max(self._timeouts.values(), default=0.0) + DRAIN_MARGIN_S

    async def _worker(self, target) -> None:
        """Start the head row of each lane (one incident's messages, in order, one at a time),
        up to the target's `concurrency` lanes at once, within its rate limits; on a stop, wait
        for the attempts running."""
        notifier, wake = target.make(), self._wakes[target.id]
        lanes = _Lanes(notifier, RateLimiter(notifier.limits), getattr(target.settings, "concurrency", 1))
        try:
            while not self._stopping:
                wake.clear()
                try:
                    lanes.finished.clear()  # before the read: an attempt that ends during it makes it stale
                    heads = lanes.heads(await self.store.outbox_pending(target.id, LOOKAHEAD))
                    wait = await self._start_due(target.id, lanes, heads, wake)
                except Exception:
                    log.exception("reading the outbox failed notifier=%s", target.id)
                    wait = 1.0
                await _pause(wake, wait)
                self.held.pop(target.id, None)
        finally:
            if lanes.running:
                await asyncio.gather(*lanes.running.values(), return_exceptions=True)

    async def _start_due(self, target_id: str, lanes: "_Lanes", heads: list[Delivery], wake: asyncio.Event
                         ) -> float | None:
        """Start every head row that may start now; return how long until another may (None:
        when woken, by a new row or an attempt that ends)."""
        now, waits = now_ms(), []
        for row in heads:
            if lanes.lane(row) in lanes.running or lanes.lane(row) in lanes.finished:
                continue  # finished since the rows were read: the row read is stale (a retry's next_ms...)
            if len(lanes.running) >= lanes.concurrency:
                return None
            if row.next_ms > now:  # a retry's backoff holds up its own lane only
                waits.append((row.next_ms - now) / 1000)
                continue
            clock = self.clock()
            limit_wait = lanes.limiter.wait_s(clock)
            if limit_wait > 0:
                self.held[target_id] = clock  # the platform's limit holds this target (tests wait on it)
                return limit_wait
            try:
                claimed = await self._claim(row)
            except Exception as exc:  # the database takes no writes (disk full): nothing sent, try later
                if not lanes.claim_failing:
                    log.warning("cannot claim a notification notifier=%s delivery=%d error=%s; will retry",
                                target_id, row.id, exc)
                lanes.claim_failing = True
                return 1.0
            lanes.claim_failing = False
            if claimed:
                lanes.limiter.record(self.clock())
                self._run(target_id, lanes, row, wake)
        return min(waits, default=None)

    def _run(self, target_id: str, lanes: "_Lanes", row: Delivery, wake: asyncio.Event) -> None:
        lane = lanes.lane(row)
        task = asyncio.create_task(self._attempt(lanes.notifier, row, row.attempts + 1),
                                   name=f"notify-{target_id}-{row.id}")
        lanes.running[lane] = task
        self._in_flight.add(target_id)

        def done(_task: asyncio.Task) -> None:
            lanes.running.pop(lane, None)
            lanes.finished.add(lane)
            if not lanes.running:
                self._in_flight.discard(target_id)
            wake.set()
        task.add_done_callback(done)

    async def _claim(self, row: Delivery) -> bool:
        claimed = await self.store.outbox_claim(row.id, row.attempts)
        if not claimed:
            log.warning("outbox row changed since it was read delivery=%d attempts=%d", row.id, row.attempts)
        return claimed

    async def _attempt(self, notifier, row: Delivery, attempts: int) -> None:
        try:
            decode = getattr(notifier, "decode", Message.from_json)  # subscriber targets keep their own rows
            answer = await notifier.send(decode(row.payload), self._session)
        except NotifyError as exc:
            now = now_ms()
            gave_up = exc.permanent or now - row.created_ms >= notifier.settings.retry_for * 1000
            state = "failed" if gave_up else "pending"
            next_ms = now + int(self.backoff.delay(attempts, exc.retry_after) * 1000)
            log.warning("notification %s notifier=%s key=%s attempt=%d error=%s", "failed" if gave_up else
                        "will be retried", notifier.id, row.key, attempts, exc.message)
            await self._record(row.id, state, attempts, next_ms, exc.message, now if gave_up else None)
            return
        except Exception as exc:
            # A row that makes its sender raise (a payload it cannot read, an address the
            # SMTP library refuses, a bug) would raise again on every retry, and the rows
            # behind it would wait for it: set it aside, visibly, after this one attempt.
            log.exception("notification set aside: its sender raised notifier=%s key=%s", notifier.id, row.key)
            now = now_ms()
            await self._record(row.id, "failed", attempts, now, f"internal error: {exc.__class__.__name__}: {exc}", now)
            return
        log.info("notification sent notifier=%s key=%s attempt=%d", notifier.id, row.key, attempts)
        await self._record(row.id, "sent", attempts, now_ms(), answer, now_ms())

    async def _record(self, delivery_id: int, state: str, attempts: int, next_ms: int, answer: str,
                      done_ms: int | None) -> None:
        # The row must not stay pending after a send, or the worker would send it again: wait
        # for the database (a full disk) as long as it takes, holding up only this target.
        for failures in itertools.count():
            try:
                await self.store.outbox_record(delivery_id, state, attempts, next_ms, answer, done_ms)
                return
            except Exception as exc:
                if failures == 0:
                    log.warning("recording a delivery failed delivery=%d error=%s; retrying until it is written",
                                delivery_id, exc)
                await asyncio.sleep(min(16.0, 0.5 * 2 ** failures))


class _Lanes:
    """One worker's view of its rows: which lane each is in (from its payload: one incident's
    messages share a lane), and the attempt running in each lane."""

    def __init__(self, notifier, limiter: RateLimiter, concurrency: int) -> None:
        self.notifier, self.limiter = notifier, limiter
        self.concurrency = max(1, concurrency)
        self.running: dict[str, asyncio.Task] = {}  # lane -> its attempt
        self.finished: set[str] = set()  # lanes whose attempt ended since the rows were last read
        self.claim_failing = False
        self._of: dict[int, str] = {}  # row id -> lane (a payload never changes)

    def heads(self, rows: list[Delivery]) -> list[Delivery]:
        """The first pending row of each lane, oldest first."""
        self._of = {row.id: self._of.get(row.id) or self._read_lane(row) for row in rows}
        heads, seen = [], set()
        for row in rows:
            if self._of[row.id] not in seen:
                seen.add(self._of[row.id])
                heads.append(row)
        return heads

    def lane(self, row: Delivery) -> str:
        return self._of.get(row.id) or self._read_lane(row)

    def _read_lane(self, row: Delivery) -> str:
        try:
            item = getattr(self.notifier, "decode", Message.from_json)(row.payload)
            return item.lane or row.key
        except Exception:
            return f"row:{row.id}"  # unreadable: a lane of its own, and its attempt sets it aside


async def _pause(wake: asyncio.Event, seconds: float | None) -> None:
    """Until `wake` is set, or `seconds` pass."""
    if seconds is None:
        await wake.wait()
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):  # wait_for can swallow stop()'s cancel (see cancel)
            await wake.wait()


async def cancel(tasks: list[asyncio.Task]) -> None:
    """Cancel and wait, cancelling again while any task goes on: on Python 3.11 asyncio.wait_for
    (which aiosmtplib uses) swallows a cancel that arrives as its wait ends, and a single
    cancel would then leave stop() waiting forever for a worker back in its loop."""
    pending = [t for t in tasks if not t.done()]
    while pending:
        for task in pending:
            task.cancel()
        _, still = await asyncio.wait(pending, timeout=1.0)
        pending = list(still)
    await asyncio.gather(*tasks, return_exceptions=True)
