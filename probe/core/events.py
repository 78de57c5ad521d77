"""The in-process event queue: incident transitions, after they are safely in the file.

Subscribers get their own asyncio.Queue, so a slow consumer (a notifier waiting on a
dead webhook) never delays the writer or another consumer. A consumer that falls
behind loses nothing for good: every event is also a row in the `events` table.
"""
from __future__ import annotations

import asyncio
import logging

from probe.core.models import IncidentEvent

log = logging.getLogger("probe.events")


class EventBus:
    def __init__(self, queue_size: int = 10_000) -> None:
        self._queues: list[asyncio.Queue[IncidentEvent]] = []
        self._queue_size = queue_size

    def subscribe(self) -> asyncio.Queue[IncidentEvent]:
        queue: asyncio.Queue[IncidentEvent] = asyncio.Queue(self._queue_size)
        self._queues.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        if queue in self._queues:
            self._queues.remove(queue)

    def publish(self, events: list[IncidentEvent]) -> None:
        for queue in self._queues:
            for event in events:
                try:
                    queue.put_nowait(event)
                except asyncio.QueueFull:
                    # The consumer re-reads the events table from its cursor.
                    log.warning("event queue full: consumer will catch up from the database event=%d", event.id)
