"""The single writer, the same for every engine: results and incident events queue here and
one task commits them in batches, each batch one transaction.

A batch holds results together with the incident transitions they caused, so after a crash
the database always shows a consistent prefix of history: at most the batch in flight is
lost. Events are published to subscribers only after their batch committed. While the
database takes no writes (a full disk, a read-only mount, a lost server), the failed batch
is retried by itself and new results wait in memory, up to `max_pending`.

An engine subclasses `BatchWriter` and provides `_build_rows(batch)` (its rows, built once
and kept if a commit fails), `_commit(rows)` (one transaction) and `WRITE_ERRORS`.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from probe.core.models import IncidentEvent, ResultRecord
from probe.core.units import now_ms
from probe.storage.interface import Fenced
from probe.storage.rollups import LastResult
from probe.storage.writable import WriteState

log = logging.getLogger("probe.store")


@dataclass
class Batch:
    results: list[tuple[ResultRecord, int]] = field(default_factory=list)
    events: list[IncidentEvent] = field(default_factory=list)
    rows: object = None  # the engine's rows, built once (kept if a commit fails)
    last: dict[int, LastResult] = field(default_factory=dict)
    waiters: list[asyncio.Future] = field(default_factory=list)


class BatchWriter:
    WRITE_ERRORS: tuple[type[BaseException], ...] = (OSError,)

    def _init_writer(self, write_state: WriteState, flush_interval: float, max_batch: int, max_pending: int) -> None:
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self.max_pending = max_pending  # results held in memory while the database takes no writes
        self.write_state = write_state
        self.last_committed: dict[int, LastResult] = {}
        self.healthy = True
        self.last_error: str | None = None
        self.last_commit_ms: int | None = None
        self.dropped_results = 0
        self.lost_results = 0  # still pending when a shutdown stopped waiting for the disk
        self._queue = Batch()
        self._queued = 0
        self._failed: Batch | None = None
        self._writing: Batch | None = None  # the batch being committed
        self._wakeup = asyncio.Event()  # commit now (an event, a full batch, a flush)
        self._pending = asyncio.Event()  # something is queued: the batch timer runs
        self._task: asyncio.Task | None = None
        self._subscribers: list[Callable[[list[IncidentEvent]], None]] = []
        self.on_fenced: Callable[[], None] | None = None  # [cluster]: told when another instance leads

    def _start_writer(self) -> None:
        self._task = asyncio.create_task(self._run_writer(), name="store-writer")

    async def _stop_writer(self, flush_timeout: float | None = None) -> None:
        """Flush, waiting at most `flush_timeout` seconds for the disk, then stop whatever state
        the writer is in: a shutdown must not wait forever on a database that takes no writes."""
        if self._task:
            try:
                async with asyncio.timeout(flush_timeout):
                    await self.flush()
            except TimeoutError:
                self.lost_results = self.pending_results
                log.error("could not flush pending results within %.0fs: %d results lost (%s)", flush_timeout,
                          self.lost_results, self.last_error or "the database takes no writes")
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def submit_result(self, record: ResultRecord, interval_s: float) -> None:
        if self._queued >= self.max_pending:
            # The database has taken no writes for a long time: keep what is queued (memory
            # stays bounded), count what is not.
            self.dropped_results += 1
            self.write_state.dropping(self.max_pending)
            return
        self._queue.results.append((record, int(interval_s * 1000)))
        self._queued += 1
        self._pending.set()
        if self._queued >= self.max_batch:
            self._wakeup.set()

    def submit_events(self, events: list[IncidentEvent]) -> None:
        self._queue.events.extend(events)
        self._pending.set()
        self._wakeup.set()

    def subscribe(self, callback: Callable[[list[IncidentEvent]], None]) -> None:
        """`callback(events)` runs after the batch holding them has committed."""
        self._subscribers.append(callback)

    async def flush(self) -> None:
        """Wait until everything submitted so far is in the database."""
        if self._task is None:
            return
        # The newest of: what is queued, the batch being written, the batch being retried (they
        # commit in that order, so its commit means everything before it is in too).
        queued = self._queue.results or self._queue.events
        batch = self._queue if queued else (self._writing or self._failed)
        if batch is None:
            return
        waiter = asyncio.get_running_loop().create_future()
        batch.waiters.append(waiter)
        self._pending.set()
        self._wakeup.set()
        await waiter

    @property
    def pending_results(self) -> int:
        """Results submitted but not yet in the database (the batch being written or retried included)."""
        writing = self._writing or self._failed
        return self._queued + (len(writing.results) if writing else 0)

    async def _run_writer(self) -> None:
        while True:
            if self._failed is None and self._queue_empty():
                # Nothing queued: no timer at all (an idle probe would otherwise wake 5 times a
                # second for nothing). The first result starts the batch's flush_interval.
                self._pending.clear()
                await self._pending.wait()
            try:
                async with asyncio.timeout(self.flush_interval):  # wait_for (3.11) can swallow close()'s cancel
                    await self._wakeup.wait()
            except TimeoutError:
                pass
            self._wakeup.clear()
            batch = self._failed or self._take_batch()
            if batch is None:
                continue
            await self._commit_with_retry(batch)

    def _queue_empty(self) -> bool:
        return not self._queue.results and not self._queue.events and not self._queue.waiters

    def _take_batch(self) -> Batch | None:
        batch = self._queue
        if self._queue_empty():
            return None
        self._queue, self._queued = Batch(), 0
        return batch

    async def _commit_with_retry(self, batch: Batch) -> None:
        self._writing = batch  # taken off the queue, not yet in the file: still pending
        try:
            if batch.rows is None:
                batch.rows = await self._build_rows(batch)
            await self._commit(batch.rows)
        except Fenced as exc:
            # [cluster] Another instance leads now: what this one decided as leader (the confirmed
            # results, their rollups, the engine's events) is not written; its locations' results are.
            log.warning("no longer the leader; dropping what was decided as leader results=%d events=%d (%s)",
                        sum(1 for r, _ in batch.results if not r.location),
                        sum(1 for e in batch.events if e.author == "probe"), exc)
            batch.results = [(r, i) for r, i in batch.results if r.location]
            batch.events = [e for e in batch.events if e.author != "probe"]
            batch.rows, batch.last = None, {}
            if self.on_fenced is not None:
                self.on_fenced()
            return await self._commit_with_retry(batch)
        except self.WRITE_ERRORS as exc:
            # Disk full, read-only, I/O error: keep the batch and try again by itself, so
            # writing resumes without a restart once the operator frees space.
            self._failed, self._writing = batch, None
            pause = self.write_state.failed(exc, self.pending_results, self.max_pending)
            self.healthy, self.last_error = False, self.write_state.message
            await asyncio.sleep(pause)
            return
        self._failed = self._writing = None
        self.write_state.succeeded(len(batch.results) + self._queued, self.dropped_results)
        self.healthy, self.last_error, self.last_commit_ms = True, None, now_ms()
        self.last_committed.update(batch.last)
        self._publish(batch)
        # Results that queued up while this batch was retried go next, at once.
        if self._queue.results or self._queue.events:
            self._wakeup.set()

    def _publish(self, batch: Batch) -> None:
        if batch.events:
            for callback in self._subscribers:
                try:
                    callback(batch.events)
                except Exception:  # a subscriber's bug must not stop the writer
                    log.exception("event subscriber failed")
        for waiter in batch.waiters:
            if not waiter.done():
                waiter.set_result(None)
