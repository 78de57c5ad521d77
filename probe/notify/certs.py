"""TLS certificate expiry notices: one per `cert_expiry_notify` threshold a certificate crosses.

Every result of a TLS check carries the certificate's notAfter (`cert_expires_ts`). On the
result path, `observe` only compares it and its threshold with what it saw last. When
either changes, a background task asks the file which thresholds were already announced
for that certificate and queues at most one notice, for the lowest threshold crossed (a
certificate first seen 5 days before expiry gets the 7-day notice, not three), in the
same transaction as the `cert_notices` row that records it: a restart re-sends nothing
and a crash loses nothing. A renewed certificate has a new notAfter and so no rows yet:
its thresholds notify afresh. Rows are kept per certificate, so a load balancer that
serves two certificates in turn does not cause a notice at every switch.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from probe.notify.outbox import delivery
from probe.storage import CertNotice

log = logging.getLogger("probe.certs")

DAY_S = 86400
EVENT = "cert_expiring"


def crossed(seconds_left: float, thresholds: Iterable[int]) -> int | None:
    """The lowest threshold (in days) the time left has reached; None above all of them, and
    once expired (the monitor is down then, and that incident is the news)."""
    if seconds_left <= 0:
        return None
    return min((t for t in thresholds if seconds_left <= t * DAY_S), default=None)


def due(threshold: int | None, announced: int | None) -> bool:
    """A notice is due for a threshold below every one already announced for this certificate."""
    return threshold is not None and (announced is None or threshold < announced)


@dataclass(frozen=True, slots=True)
class Sighting:
    """A certificate seen at a new threshold: what the background task decides on."""

    monitor_id: str
    expires_ts: int
    threshold: int
    status: str  # the monitor's status in that result


class CertificateNotices:
    def __init__(self, probe, clock: Callable[[], float] = time.time) -> None:
        self.probe = probe
        self.clock = clock  # seconds UTC; tests move it on instead of waiting for days
        self._seen: dict[str, tuple[int, int | None]] = {}  # monitor -> (notAfter, threshold) last handled
        self._queue: asyncio.Queue[Sighting] | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run(), name="cert-notices")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        # Sightings still queued are not lost: after a restart the first result brings them back.
        self._task = self._queue = None

    def observe(self, monitor, details: dict, status: str) -> None:
        """On the result path: two comparisons, unless the certificate or its threshold changed."""
        expires = details.get("cert_expires_ts")
        if expires is None or self._queue is None:
            return
        threshold = crossed(expires - self.clock(), getattr(monitor.options, "cert_expiry_notify", ()))
        if self._seen.get(monitor.id) == (expires, threshold):
            return
        self._seen[monitor.id] = (expires, threshold)
        if threshold is not None:
            self._queue.put_nowait(Sighting(monitor.id, expires, threshold, status))

    async def _run(self) -> None:
        while True:
            sighting = await self._queue.get()
            try:
                await self.handle(sighting)
            except Exception:
                log.exception("queueing a certificate notice failed monitor=%s", sighting.monitor_id)
                self._seen.pop(sighting.monitor_id, None)  # the monitor's next result tries again

    async def handle(self, sighting: Sighting) -> int:
        """Queue the notice if it is due; returns how many notifiers it went to."""
        store = self.probe.store
        announced = await store.cert_notice_lowest(sighting.monitor_id, sighting.expires_ts)
        monitor = self.probe.config.monitor(sighting.monitor_id)
        if monitor is None or not due(sighting.threshold, announced):
            return 0
        now = self.clock()
        notify = self.probe.notify
        targets = notify.wanting((monitor.id,), EVENT)
        deliveries = [delivery(c.id, notify.messages.certificate(c, monitor, sighting.expires_ts, sighting.threshold,
                                                                 sighting.status, now)) for c in targets]
        await store.cert_notice_add(CertNotice(monitor.id, sighting.expires_ts, sighting.threshold), deliveries,
                                    int(now * 1000))
        notify.outbox.wake_all()
        log.info("certificate expiring monitor=%s threshold_days=%d days_left=%.1f notifiers=%d", monitor.id,
                 sighting.threshold, (sighting.expires_ts - now) / DAY_S, len(targets))
        return len(targets)
