"""Notifications, off the check path: incident events -> outbox rows -> one worker per channel.

1. The intake follows the `events` table with a cursor kept in `meta`. For each event it
   writes one `deliveries` row per subscribed notifier, and moves the cursor, in one
   transaction: an event is queued exactly once, even across a crash or `kill -9`.
2. Each notifier has its own worker that sends its pending rows oldest first (so a
   channel hears about an incident in the order things happened), waits out the
   platform's rate limit, retries transient failures with exponential backoff and jitter
   for `retry_for`, and stops at once on a permanent one, keeping the channel's own words.
   A hung or dead channel holds up only its own queue, never a check or another channel.

Delivery is at least once: a crash between the channel's answer and the row's update
would send that one message again. Receivers that care get a stable id to dedupe on
(webhook-id, the PagerDuty dedup_key, the email Message-ID).
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import random
import time
from collections import deque
from dataclasses import dataclass

import aiohttp

from notifiers import REGISTRY, Message, NotifierConfig, NotifyError
from probe.models import EventKind, Impact, Incident, IncidentEvent
from probe.operator import default_body, display_title
from probe.subscriptions import Subscriptions
from probe.units import now_ms

log = logging.getLogger("probe.notify")

CURSOR_KEY = "notify_cursor"
EVENT_NAMES = {EventKind.OPENED: "open", EventKind.REOPENED: "open", EventKind.ESCALATED: "escalate",
               EventKind.UPDATED: "update", EventKind.RESOLVED: "resolve"}  # the others notify nobody
RECENT_EVENTS = 10_000
REMIND_EVERY_S = 30.0
MAINTENANCE_LOOKBACK_MS = 3_600_000


@dataclass(frozen=True)
class Backoff:
    """Seconds before retry n: base * 2^(n-1), capped, times 1 ± jitter (so a channel that comes
    back is not hit by every queue at the same instant)."""

    base: float = 2.0
    cap: float = 300.0
    jitter: float = 0.2

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        wait = min(self.cap, self.base * 2 ** max(0, attempts - 1))
        wait *= 1 + random.uniform(-self.jitter, self.jitter)
        return max(wait, retry_after or 0.0)


class RateLimiter:
    """The platform's limits, e.g. ((5, 1.0), (100, 60.0)): at most 5 a second and 100 a minute."""

    def __init__(self, limits: tuple[tuple[int, float], ...]) -> None:
        self.limits = limits
        self.sent: deque[float] = deque(maxlen=max((n for n, _ in limits), default=1))

    def wait_s(self, now: float) -> float:
        wait = 0.0
        for count, seconds in self.limits:
            if len(self.sent) >= count:
                wait = max(wait, self.sent[-count] + seconds - now)
        return wait

    def record(self, now: float) -> None:
        self.sent.append(now)


class Dispatcher:
    def __init__(self, probe, backoff: Backoff = Backoff(), poll_s: float = 5.0) -> None:
        self.probe = probe
        self.backoff = backoff
        self.poll_s = poll_s
        self.cursor = 0
        self._recent: dict[int, IncidentEvent] = {}  # full snapshots of events seen live
        self._queue: asyncio.Queue | None = None
        self._tasks: list[asyncio.Task] = []
        self._workers: dict[str, asyncio.Task] = {}
        self._wakes: dict[str, asyncio.Event] = {}
        self._session: aiohttp.ClientSession | None = None
        self.subscribers = Subscriptions(probe)  # page subscribers: more targets of the same outbox
        self.subscribers.wake = lambda target_id: self._wakes[target_id].set() if target_id in self._wakes else None

    # ---- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        store = self.probe.store
        rows = await store.fetchall("SELECT value FROM meta WHERE key=?", (CURSOR_KEY,))
        if rows:
            self.cursor = int(rows[0][0])
        else:  # first start with notifiers: history before now is not news
            self.cursor = (await store.fetchall("SELECT coalesce(max(id), 0) FROM events"))[0][0]
            await store.write([("INSERT OR REPLACE INTO meta VALUES (?, ?)", (CURSOR_KEY, str(self.cursor)))])
        await self.subscribers.start()
        self._session = aiohttp.ClientSession()
        self._queue = self.probe.bus.subscribe()
        self._tasks = [asyncio.create_task(self._intake(), name="notify-intake"),
                       asyncio.create_task(self._reminders(), name="notify-reminders")]
        self._start_workers(self.probe.config.notifiers + tuple(self.subscribers.targets(self.probe.config)))

    async def stop(self) -> None:
        await _cancel(self._tasks + list(self._workers.values()))
        self._tasks, self._workers = [], {}
        if self._queue is not None:
            self.probe.bus.unsubscribe(self._queue)
        if self._session is not None:
            await self._session.close()

    async def apply(self, config) -> None:
        """A reloaded config: workers restart with the new channel settings; queued rows stay."""
        await _cancel(list(self._workers.values()))
        self._workers = {}
        self._start_workers(config.notifiers + tuple(self.subscribers.targets(config)))

    def _start_workers(self, configs: tuple[NotifierConfig, ...]) -> None:
        for config in configs:
            self._wakes[config.id] = asyncio.Event()
            self._workers[config.id] = asyncio.create_task(self._worker(config), name=f"notify-{config.id}")

    # ---- intake: events -> outbox -----------------------------------------------------

    async def _intake(self) -> None:
        failing = False  # log a failure once, not every retry (the store names a full disk itself)
        while True:
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that arrives
                # as the wait ends, and stop() then waits forever for this task.
                async with asyncio.timeout(self.poll_s):
                    event = await self._queue.get()
                self._remember(event)
                while not self._queue.empty():
                    self._remember(self._queue.get_nowait())
            except TimeoutError:
                pass  # poll anyway: the bus may have dropped events when its queue was full
            try:
                await self.catch_up()
                failing = False
            except Exception:  # a database hiccup: the cursor has not moved, try again
                if not failing:
                    log.exception("notification intake failed; will retry")
                failing = True
                await asyncio.sleep(1.0)

    def _remember(self, event: IncidentEvent) -> None:
        self._recent[event.id] = event
        if len(self._recent) > RECENT_EVENTS:
            self._recent.pop(next(iter(self._recent)))

    async def catch_up(self) -> int:
        """Queue every event after the cursor; returns how many deliveries were queued."""
        queued = 0
        while True:
            rows = await self.probe.store.events_after(self.cursor, 500)
            if not rows:
                return queued
            statements = []
            for row in rows:
                event = self._recent.pop(row[0], None) or await self._event_from_row(row)
                for config, message in self._messages(event):
                    statements.append(outbox_row(config.id, message))
                statements += await self.subscribers.event_rows(event, self)
            statements.append(("INSERT OR REPLACE INTO meta VALUES (?, ?)", (CURSOR_KEY, str(rows[-1][0]))))
            await self.probe.store.write(statements)
            self.cursor = rows[-1][0]
            queued += len(statements) - 1
            self._wake_all()

    async def _event_from_row(self, row: tuple) -> IncidentEvent | None:
        """An event from before this process (a restart), or committed but not yet published:
        rebuilt from the file, with the incident's status as of the event, not as of now."""
        event_id, at_ms, kind, incident_id, _, reason = row
        incident = await self.probe.store.incident(incident_id)
        if incident is None:
            return None
        found = await self.probe.store.fetchall(
            "SELECT body, author, status FROM incident_updates WHERE incident=? AND created_ms=? AND kind=? LIMIT 1",
            (incident_id, at_ms, kind))
        body, author, status = found[0] if found else (None, "probe", incident.status)
        later = incident.resolved_ms is not None and at_ms < incident.resolved_ms
        incident = dataclasses.replace(incident, status=status, resolved_ms=None if later else incident.resolved_ms)
        return IncidentEvent(event_id, EventKind(kind), at_ms, incident, reason, body, author)

    def _messages(self, event: IncidentEvent | None):
        if event is None or event.kind not in EVENT_NAMES:
            return
        for config in self._subscribers(event.incident):
            if self._wants(config, EVENT_NAMES[event.kind], event.incident):
                yield config, self.message(config, event)

    def _subscribers(self, incident: Incident) -> list[NotifierConfig]:
        return self._subscribers_of(incident.monitor_ids)

    def _subscribers_of(self, monitor_ids) -> list[NotifierConfig]:
        config = self.probe.config
        ids: list[str] = []
        for monitor_id in monitor_ids:
            monitor = config.monitor(monitor_id)
            ids += [n for n in (monitor.notify if monitor else ()) if n not in ids]
        return [n for n in config.notifiers if n.id in ids]

    @staticmethod
    def _wants(config: NotifierConfig, name: str, incident: Incident) -> bool:
        return (name in config.settings.events and name in REGISTRY[config.type].handles
                and incident.impact.rank >= Impact(config.settings.min_impact).rank)

    def message(self, config: NotifierConfig, event: IncidentEvent, key: str | None = None,
                name: str | None = None) -> Message:
        page = self.probe.config.page
        language = config.settings.language or page.language
        incident = event.incident
        monitor = self.probe.config.monitor(incident.monitor_id) if incident.monitor_id else None
        monitor_name = monitor.display_name if monitor else ""
        name = name or EVENT_NAMES[event.kind]
        status = "up" if name == "resolve" else ("down" if incident.impact.rank >= Impact.MAJOR.rank else "degraded")
        return Message(
            key=key or f"event:{event.id}", event="reopen" if event.kind is EventKind.REOPENED else name,
            status=status, title=display_title(incident, monitor_name, language), monitor_id=incident.monitor_id,
            monitor_name=monitor_name, reason=event.reason or incident.reason, impact=incident.impact.value,
            body=event.body or default_body(incident.status, language), incident_id=incident.id,
            started_ms=incident.started_ms, at_ms=event.at_ms, resolved_ms=incident.resolved_ms,
            url=f"{page.url.rstrip('/')}/incidents/{incident.id}" if page.url else "",
            language=language, timezone=page.timezone)

    # ---- reminders --------------------------------------------------------------------

    async def _reminders(self) -> None:
        while True:
            await asyncio.sleep(REMIND_EVERY_S)
            try:
                await self.queue_reminders()
                await self.queue_maintenance()
            except Exception:
                log.exception("queueing reminders or maintenance notices failed")

    async def queue_reminders(self, now: int | None = None) -> int:
        """One reminder per `remind_every` an incident stays open; the key makes it idempotent."""
        now = now if now is not None else now_ms()
        statements = []
        for incident in await self.probe.store.open_incidents():
            for config in self._subscribers(incident):
                every = config.settings.remind_every
                n = int((now - incident.started_ms) / 1000 // every) if every else 0
                if n >= 1 and self._wants(config, "remind", incident):
                    event = IncidentEvent(0, EventKind.UPDATED, now, incident, incident.reason)
                    message = self.message(config, event, f"remind:{incident.id}:{n}", "remind")
                    statements.append(outbox_row(config.id, message))
        await self.enqueue(statements)
        return len(statements)

    async def queue_maintenance(self, now: int | None = None) -> int:
        """A notice when a maintenance window starts and when it ends, to the notifiers of the
        monitors it covers. Only edges of the last hour: a restart does not replay old ones,
        and the key (the occurrence's id) makes a repeated scan harmless."""
        now = now if now is not None else now_ms()
        statements = []
        for window in self.probe.maintenance_between(now - MAINTENANCE_LOOKBACK_MS, now + 1):
            for edge, at in (("start", window.start_ms), ("end", window.end_ms)):
                if not now - MAINTENANCE_LOOKBACK_MS <= at <= now:
                    continue
                for config in self.wanting(window.monitors, "maintenance"):
                    statements.append(outbox_row(config.id, self._maintenance_message(config, window, edge, at)))
        statements += await self.subscribers.maintenance_rows(self, now)
        await self.enqueue(statements)
        return len(statements)

    def wanting(self, monitor_ids, name: str) -> list[NotifierConfig]:
        """The notifiers of these monitors that take `name` notices (no incident, so no min_impact)."""
        return [c for c in self._subscribers_of(monitor_ids)
                if name in c.settings.events and name in REGISTRY[c.type].handles]

    async def enqueue(self, statements: list[tuple[str, tuple]]) -> None:
        """Write outbox rows (with whatever else must commit with them) and wake the workers."""
        if statements:
            await self.probe.store.write(statements)
            self._wake_all()

    def _maintenance_message(self, config: NotifierConfig, window, edge: str, at: int) -> Message:
        page = self.probe.config.page
        return Message(
            key=f"maintenance-{edge}:{window.id}", event=f"maintenance_{edge}",
            status="maintenance" if edge == "start" else "up", title=window.title, monitor_id=None,
            monitor_name="", reason="", impact="none", body=window.description, incident_id=None,
            started_ms=window.start_ms, at_ms=at, resolved_ms=window.end_ms, url=page.url,
            language=config.settings.language or page.language, timezone=page.timezone)

    # ---- delivery ---------------------------------------------------------------------

    def _wake_all(self) -> None:
        for wake in self._wakes.values():
            wake.set()

    async def _worker(self, config: NotifierConfig) -> None:
        notifier, wake = config.make(), self._wakes[config.id]
        limiter = RateLimiter(notifier.limits)
        claim_failing = False
        while True:
            wake.clear()
            try:
                rows = await self.probe.store.fetchall(
                    "SELECT id, payload, attempts, next_ms, created_ms FROM deliveries"
                    " WHERE notifier=? AND state='pending' ORDER BY id LIMIT 1", (config.id,))
            except Exception:
                log.exception("reading the outbox failed notifier=%s", config.id)
                await asyncio.sleep(1.0)
                continue
            if not rows:
                await wake.wait()
                continue
            delivery_id, payload, attempts, next_ms, created_ms = rows[0]
            wait = max((next_ms - now_ms()) / 1000, limiter.wait_s(time.monotonic()))
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):  # see _intake: wait_for can swallow stop()'s cancel
                        await wake.wait()
                continue
            try:
                claimed = await self._claim(delivery_id, attempts)
            except Exception as exc:  # the database takes no writes (disk full): nothing sent, try later
                if not claim_failing:
                    log.warning("cannot claim a notification notifier=%s delivery=%d error=%s; will retry",
                                config.id, delivery_id, exc)
                claim_failing = True
                await asyncio.sleep(1.0)
                continue
            claim_failing = False
            if not claimed:
                continue
            limiter.record(time.monotonic())
            decode = getattr(notifier, "decode", Message.from_json)  # subscriber targets keep their own rows
            await self._attempt(notifier, delivery_id, decode(payload), attempts + 1, created_ms)

    async def _claim(self, delivery_id: int, attempts: int) -> bool:
        """Count the attempt before making it, on the writer, only if the row is still as read:
        a send never starts from a stale view of the outbox (healthchecks claims flips the same way)."""
        (changed,) = await self.probe.store.write([(
            "UPDATE deliveries SET attempts=attempts+1 WHERE id=? AND state='pending' AND attempts=?",
            (delivery_id, attempts))])
        if not changed:
            log.warning("outbox row changed since it was read delivery=%d attempts=%d", delivery_id, attempts)
        return changed == 1

    async def _attempt(self, notifier, delivery_id: int, message: Message, attempts: int, created_ms: int) -> None:
        try:
            answer = await notifier.send(message, self._session)
        except NotifyError as exc:
            now = now_ms()
            gave_up = exc.permanent or now - created_ms >= notifier.settings.retry_for * 1000
            state = "failed" if gave_up else "pending"
            next_ms = now + int(self.backoff.delay(attempts, exc.retry_after) * 1000)
            log.warning("notification %s notifier=%s key=%s attempt=%d error=%s", "failed" if gave_up else
                        "will be retried", notifier.id, message.key, attempts, exc.message)
            await self._record(delivery_id, state, attempts, next_ms, exc.message, now if gave_up else None)
            return
        except Exception as exc:  # a bug in a channel must not lose the message: retry it
            log.exception("notifier crashed notifier=%s key=%s", notifier.id, message.key)
            await self._record(delivery_id, "pending", attempts,
                               now_ms() + int(self.backoff.delay(attempts) * 1000), f"internal error: {exc}", None)
            return
        log.info("notification sent notifier=%s key=%s attempt=%d", notifier.id, message.key, attempts)
        await self._record(delivery_id, "sent", attempts, now_ms(), answer, now_ms())

    async def _record(self, delivery_id: int, state: str, attempts: int, next_ms: int, answer: str,
                      done_ms: int | None) -> None:
        # The row must not stay pending after a send, or the worker would send it again: wait
        # for the database (a full disk) as long as it takes, holding up only this channel.
        for failures in itertools.count():
            try:
                await self.probe.store.write([(
                    "UPDATE deliveries SET state=?, attempts=?, next_ms=?, answer=?, done_ms=? WHERE id=?",
                    (state, attempts, next_ms, answer[:2000], done_ms, delivery_id))])
                return
            except Exception as exc:
                if failures == 0:
                    log.warning("recording a delivery failed delivery=%d error=%s; retrying until it is written",
                                delivery_id, exc)
                await asyncio.sleep(min(16.0, 0.5 * 2 ** failures))

    async def deliveries(self, notifier_id: str | None = None, limit: int = 100) -> list[dict]:
        where, params = ("WHERE notifier=?", (notifier_id,)) if notifier_id else ("", ())
        rows = await self.probe.store.fetchall(
            "SELECT id, notifier, key, state, attempts, created_ms, done_ms, answer FROM deliveries"
            f" {where} ORDER BY id DESC LIMIT ?", (*params, limit))
        names = ("id", "notifier", "key", "state", "attempts", "created_ms", "done_ms", "answer")
        return [dict(zip(names, row)) for row in rows]


async def _cancel(tasks: list[asyncio.Task]) -> None:
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


def outbox_row(notifier_id: str, message: Message) -> tuple[str, tuple]:
    now = now_ms()
    return ("INSERT OR IGNORE INTO deliveries (notifier, key, payload, next_ms, created_ms) VALUES (?,?,?,?,?)",
            (notifier_id, message.key, message.to_json(), now, now))
