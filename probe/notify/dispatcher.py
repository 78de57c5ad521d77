"""Notifications, off the check path: incident events -> outbox deliveries -> one worker per target.

The intake follows the `events` log with a cursor kept in `meta`. For each event it queues
one delivery per subscribed notifier (and per subscriber who hears it), and moves the
cursor, in one transaction: an event is queued exactly once, even across a crash or
`kill -9`. Reminders of open incidents and maintenance notices are queued by a periodic
scan, each under a key that makes a repeated scan harmless. probe/notify/outbox.py sends.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging

from probe.core.models import ConnectivityChange, EventKind, Impact, Incident, IncidentEvent
from probe.core.units import now_ms
from probe.notifiers import REGISTRY, NotifierConfig
from probe.notify.limits import Backoff
from probe.notify.messages import EVENT_NAMES, Messages
from probe.notify.outbox import Outbox, cancel, delivery
from probe.notify.subscribers.actions import Subscriptions

log = logging.getLogger("probe.notify")

CURSOR_KEY = "notify_cursor"
RECENT_EVENTS = 10_000
REMIND_EVERY_S = 30.0
MAINTENANCE_LOOKBACK_MS = 3_600_000


class Dispatcher:
    def __init__(self, probe, backoff: Backoff = Backoff(), poll_s: float = 5.0) -> None:
        self.probe = probe
        self.poll_s = poll_s
        self.cursor = 0
        self.messages = Messages(lambda: probe.config)
        self.outbox = Outbox(probe.store, backoff)
        self._recent: dict[int, IncidentEvent] = {}  # full snapshots of events seen live
        self._queue: asyncio.Queue | None = None
        self._tasks: list[asyncio.Task] = []
        self.delivering = False  # intake, reminders and workers run ([cluster]: on the leader only)
        self.subscribers = Subscriptions(probe, self.outbox, self.messages)  # more targets of the same outbox

    # ---- life cycle -------------------------------------------------------------------

    async def start(self, deliver: bool = True) -> None:
        """`deliver`: queue and send what events call for. [cluster] Only the leader does; every
        instance still queues what its visitors ask for (subscriptions), for the leader to send."""
        await self.subscribers.start()
        await self.outbox.start()
        if deliver:
            await self.start_delivering()

    async def start_delivering(self) -> None:
        store = self.probe.store
        cursor = await store.meta_get(CURSOR_KEY)
        if cursor is None:  # first start with notifiers: history before now is not news
            cursor = str(await store.events_last_id())
            await store.meta_set(CURSOR_KEY, cursor)
        self.cursor = int(cursor)
        self._queue = self.probe.bus.subscribe()
        self._tasks = [asyncio.create_task(self._intake(), name="notify-intake"),
                       asyncio.create_task(self._reminders(), name="notify-reminders")]
        self.delivering = True
        self.outbox.start_workers(self._targets(self.probe.config))

    async def stop_delivering(self) -> None:
        self.delivering = False
        await cancel(self._tasks)
        self._tasks = []
        await self.outbox.stop_workers()
        if self._queue is not None:
            self.probe.bus.unsubscribe(self._queue)
            self._queue = None

    async def stop(self) -> None:
        await self.stop_delivering()
        await self.outbox.stop()

    async def apply(self, config) -> None:
        """A reloaded config: workers restart with the new channel settings; queued rows stay."""
        if self.delivering:
            await self.outbox.stop_workers()
            self.outbox.start_workers(self._targets(config))

    def _targets(self, config) -> tuple:
        return config.notifiers + tuple(self.subscribers.targets(config))

    async def deliveries(self, notifier_id: str | None = None, limit: int = 100, state: str | None = None
                         ) -> list[dict]:
        return await self.outbox.deliveries(notifier_id, limit, state)

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
            deliveries = []
            for row in rows:
                event = self._recent.pop(row[0], None) or await self._event_from_row(row)
                deliveries += [delivery(config.id, message) for config, message in self._messages(event)]
                deliveries += await self.subscribers.event_deliveries(event)
            await self.outbox.enqueue(deliveries, meta={CURSOR_KEY: str(rows[-1][0])})
            self.cursor = rows[-1][0]
            queued += len(deliveries)

    async def _event_from_row(self, row: tuple) -> IncidentEvent | None:
        """An event from before this process (a restart), or committed but not yet published:
        rebuilt from the database, with the incident's status as of the event, not as of now."""
        event_id, at_ms, kind, incident_id, _, reason = row
        store = self.probe.store
        incident = await store.incident(incident_id)
        if incident is None:
            return None
        update = await store.incident_update_at(incident_id, at_ms, kind)
        body, author, status = (update.body, update.author, update.status) if update else (None, "probe",
                                                                                            incident.status)
        # Before the resolution: earlier, or in the same millisecond unless it is the resolution
        # itself or comes after it by nature (an operator's open, update and resolve can share one).
        later = incident.resolved_ms is not None and (
            at_ms < incident.resolved_ms
            or (at_ms == incident.resolved_ms and kind not in (EventKind.RESOLVED, EventKind.POSTMORTEM)))
        incident = dataclasses.replace(incident, status=status, resolved_ms=None if later else incident.resolved_ms)
        return IncidentEvent(event_id, EventKind(kind), at_ms, incident, reason, body, author)

    def _messages(self, event: IncidentEvent | None):
        if event is None or event.kind not in EVENT_NAMES:
            return
        for config in self._subscribers(event.incident):
            if self._wants(config, EVENT_NAMES[event.kind], event.incident):
                yield config, self.messages.incident(config, event)

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

    def wanting(self, monitor_ids, name: str) -> list[NotifierConfig]:
        """The notifiers of these monitors that take `name` notices (no incident, so no min_impact)."""
        return [c for c in self._subscribers_of(monitor_ids)
                if name in c.settings.events and name in REGISTRY[c.type].handles]

    async def queue_connectivity(self, change: ConnectivityChange) -> int:
        """probe's own network went down or came back: the operator's channels hear it, once (the
        key is the moment it was lost); subscribers do not (it says nothing of the services)."""
        name = "connectivity_lost" if change.lost else "connectivity_restored"
        deliveries = [delivery(c.id, self.messages.connectivity(c, change)) for c in self.probe.config.notifiers
                      if name in c.settings.events and name in REGISTRY[c.type].handles]
        await self.outbox.enqueue(deliveries)
        return len(deliveries)

    # ---- reminders and maintenance ----------------------------------------------------

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
        deliveries = []
        for incident in await self.probe.store.open_incidents():
            for config in self._subscribers(incident):
                every = config.settings.remind_every
                n = int((now - incident.started_ms) / 1000 // every) if every else 0
                if n >= 1 and self._wants(config, "remind", incident):
                    event = IncidentEvent(0, EventKind.UPDATED, now, incident, incident.reason)
                    message = self.messages.incident(config, event, f"remind:{incident.id}:{n}", "remind")
                    deliveries.append(delivery(config.id, message))
        await self.outbox.enqueue(deliveries)
        return len(deliveries)

    async def queue_maintenance(self, now: int | None = None) -> int:
        """A notice when a maintenance window starts and when it ends, to the notifiers of the
        monitors it covers. Only edges of the last hour: a restart does not replay old ones,
        and the key (the occurrence's id) makes a repeated scan harmless."""
        now = now if now is not None else now_ms()
        deliveries = []
        for window in self.probe.maintenance_between(now - MAINTENANCE_LOOKBACK_MS, now + 1):
            for edge, at in (("start", window.start_ms), ("end", window.end_ms)):
                if not now - MAINTENANCE_LOOKBACK_MS <= at <= now:
                    continue
                for config in self.wanting(window.monitors, "maintenance"):
                    deliveries.append(delivery(config.id, self.messages.maintenance(config, window, edge, at)))
        deliveries += await self.subscribers.maintenance_deliveries(now)
        await self.outbox.enqueue(deliveries)
        return len(deliveries)
