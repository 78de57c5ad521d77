"""The notification outbox, the one owner of stored deliveries: it queues them, and runs one
worker per target (a channel, or a subscriber target) that sends its pending rows oldest
first, so a target hears about an incident in the order things happened.

A worker waits out the platform's rate limit, counts the attempt on the database before
making it (a send never starts from a stale view of the outbox: healthchecks claims flips
the same way), retries transient failures with exponential backoff and jitter for the
target's `retry_for`, and stops at once on a permanent one, keeping the channel's own words.
A row whose sender raises anything else is set aside as failed after that one attempt, so a
poisoned row never holds up the rows behind it.
A hung or dead target holds up only its own queue, never a check or another target.

Delivery is at least once: a crash between the channel's answer and the row's update would
send that one message again. Receivers that care get a stable id to dedupe on (webhook-id,
the PagerDuty dedup_key, the email Message-ID).
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Iterable

import aiohttp

from probe.core.units import now_ms
from probe.notifiers import Message, NotifyError
from probe.notify.limits import Backoff, RateLimiter
from probe.storage import Delivery, NewDelivery

log = logging.getLogger("probe.notify")

DRAIN_MARGIN_S = 2.0  # beyond a channel's timeout, for recording its answer


def delivery(target_id: str, item) -> NewDelivery:
    """A delivery of `item` (a channel Message, or a subscriber Parcel) to one target."""
    return NewDelivery(target_id, item.key, item.to_json())


class Outbox:
    def __init__(self, store, backoff: Backoff = Backoff()) -> None:
        self.store = store
        self.backoff = backoff
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
        busy = {target_id for target_id in self._in_flight if target_id in self._workers}
        await cancel([task for target_id, task in self._workers.items() if target_id not in busy])
        if busy:
            log.info("stopping: waiting for deliveries in flight notifiers=%s", ",".join(sorted(busy)))
            tasks = [self._workers[target_id] for target_id in busy]
            _, late = await asyncio.wait(tasks, timeout=max(self._timeouts[t] for t in busy) + DRAIN_MARGIN_S)
            await cancel(list(late))
        self._workers = {}

    def drain_limit_s(self) -> float:
        """The longest a stop may wait for deliveries in flight."""
        return max(self._timeouts.values(), default=0.0) + DRAIN_MARGIN_S

    async def _worker(self, target) -> None:
        notifier, wake = target.make(), self._wakes[target.id]
        limiter = RateLimiter(notifier.limits)
        claim_failing = False
        while not self._stopping:
            wake.clear()
            try:
                row = await self.store.outbox_next(target.id)
            except Exception:
                log.exception("reading the outbox failed notifier=%s", target.id)
                await asyncio.sleep(1.0)
                continue
            if row is None:
                await wake.wait()
                continue
            wait = max((row.next_ms - now_ms()) / 1000, limiter.wait_s(time.monotonic()))
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):  # wait_for can swallow stop()'s cancel (see cancel)
                        await wake.wait()
                continue
            try:
                claimed = await self._claim(row)
            except Exception as exc:  # the database takes no writes (disk full): nothing sent, try later
                if not claim_failing:
                    log.warning("cannot claim a notification notifier=%s delivery=%d error=%s; will retry",
                                target.id, row.id, exc)
                claim_failing = True
                await asyncio.sleep(1.0)
                continue
            claim_failing = False
            if not claimed:
                continue
            limiter.record(time.monotonic())
            self._in_flight.add(target.id)
            try:
                await self._attempt(notifier, row, row.attempts + 1)
            finally:
                self._in_flight.discard(target.id)

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
