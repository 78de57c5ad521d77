"""The running probe: config -> scheduled checks -> stored results -> incidents -> events.

`Probe` owns one of each part and the path a result takes through them. The web
application (web/app.py) starts and stops it; tests drive it directly.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter
from dataclasses import dataclass

from checks.base import Check
from probe import __version__
from probe.calendar import Calendar
from probe.certs import CertificateNotices
from probe.config import Config, MonitorConfig
from probe.events import EventBus
from probe.incidents import IncidentEngine
from probe.notify import Dispatcher
from probe.maintenance import MaintenanceWindow
from probe.models import ResultRecord
from probe.runner import CheckRunner
from probe.scheduler import Scheduler
from probe.stats import Stats
from probe.store import Store
from probe.units import now_ms

log = logging.getLogger("probe")

PRUNE_EVERY_S = 3600.0


@dataclass
class Monitor:
    config: MonitorConfig
    check: Check


class Probe:
    def __init__(self, config: Config, *, flush_interval: float = 0.2) -> None:
        self.config = config
        self.store = Store(config.database_path, Calendar(config.page.tz), flush_interval=flush_interval)
        self.engine = IncidentEngine(self.store)
        self.bus = EventBus()
        self.stats = Stats(self.store)
        self.runner = CheckRunner()
        self.scheduler = Scheduler(self.run_monitor)
        self.monitors: dict[str, Monitor] = {}
        self.latest: dict[str, ResultRecord] = {}
        self.check_counts: Counter[tuple[str, str]] = Counter()  # (monitor, status) since start: /metrics
        self.started_ms: int | None = None
        self.notify = Dispatcher(self)
        self.certs = CertificateNotices(self)
        self.watcher = None  # probe.reload.ConfigWatcher, when run from a file
        self.scheduled: list[MaintenanceWindow] = []  # ad hoc windows from the admin API (table `maintenance`)

    async def start(self) -> None:
        await self.store.open()
        self.store.subscribe(self.bus.publish)
        await self._load_monitors(self.config.monitors)
        await self.engine.restore(self.config.monitors)
        await self._load_scheduled()
        await self.notify.start()
        await self.certs.start()
        for monitor in self.config.monitors:
            self.scheduler.schedule(monitor.id, monitor.interval)
        self.scheduler.add_periodic("prune", self.prune, every=PRUNE_EVERY_S, first_in=60)
        self.scheduler.start()
        self.started_ms = now_ms()
        log.info("probe started version=%s monitors=%d database=%s", __version__,
                 len(self.monitors), self.store.path)

    async def stop(self, flush_timeout: float = 10.0) -> None:
        await self.scheduler.stop()
        await self.certs.stop()
        await self.notify.stop()
        try:
            await asyncio.wait_for(self.store.close(), flush_timeout)
        except TimeoutError:
            log.error("could not flush pending results within %.0fs: the database is not writable", flush_timeout)
        await self.runner.close()
        log.info("probe stopped")

    async def _load_monitors(self, monitors: tuple[MonitorConfig, ...]) -> None:
        await self.store.sync_monitors(monitors)
        self.monitors = {m.id: Monitor(m, m.make_check()) for m in monitors}
        for m in monitors:
            recent = await self.store.recent_results(m.id, 1)
            if recent:
                self.latest[m.id] = recent[-1]

    async def apply(self, config: Config) -> None:
        """Switch to a new, already validated config without a restart."""
        old = set(self.monitors)
        await self._load_monitors(config.monitors)
        for monitor_id in old - set(self.monitors):
            self.scheduler.unschedule(monitor_id)
            self.engine.forget(monitor_id)
            self.latest.pop(monitor_id, None)
        await self.engine.restore([m for m in config.monitors if m.id not in old])
        for monitor in config.monitors:
            self.scheduler.schedule(monitor.id, monitor.interval)
        self.config = config
        await self.notify.apply(config)

    async def run_monitor(self, monitor_id: str, scheduled_ms: int) -> None:
        monitor = self.monitors.get(monitor_id)
        if monitor is None:
            return
        started_ms = now_ms()
        result = await self.runner.run(monitor.config, monitor.check)
        if self.monitors.get(monitor_id) is not monitor:
            return  # removed or replaced by a reload while the check ran
        self.record(monitor.config, ResultRecord(
            monitor_id, started_ms, scheduled_ms, result.status, result.reason, result.latency_ms,
            result.details, self.in_maintenance(monitor_id, started_ms)))

    def record(self, monitor: MonitorConfig, record: ResultRecord) -> None:
        """Decide, then queue: the result and the transitions it caused share one transaction."""
        events = self.engine.observe(monitor.settings, record)
        self.store.submit_result(record, monitor.interval)
        if events:
            self.store.submit_events(events)
        self.certs.observe(monitor, record.details, record.status.label)
        latest = self.latest.get(monitor.id)
        if latest is None or record.ts_ms >= latest.ts_ms:  # a late, older result is history, not the state
            self.latest[monitor.id] = record
        self.check_counts[monitor.id, record.status.label] += 1

    async def prune(self) -> None:
        storage = self.config.storage
        await self.store.prune(storage.raw_retention, storage.rollup_retention)

    def maintenance_between(self, start_ms: int, end_ms: int) -> list[MaintenanceWindow]:
        """Occurrences of maintenance windows (config and ad hoc) that overlap [start_ms, end_ms), by start."""
        found = [w for c in self.config.maintenance for w in c.occurrences(start_ms, end_ms)]
        found += [w for w in self.scheduled if w.start_ms < end_ms and w.end_ms > start_ms]
        return sorted(found, key=lambda w: (w.start_ms, w.id))

    def in_maintenance(self, monitor_id: str, ts_ms: int) -> bool:
        """Was this monitor in a maintenance window at ts_ms? Asked once per result."""
        if any(w.covers(monitor_id, ts_ms) for w in self.scheduled):
            return True
        return any(w.covers(monitor_id, ts_ms) for c in self.config.maintenance if monitor_id in c.monitors
                   for w in c.occurrences(ts_ms, ts_ms + 1))

    async def _load_scheduled(self) -> None:
        rows = await self.store.fetchall("SELECT id, title, monitors, start_ms, end_ms, description FROM maintenance"
                                         " WHERE cancelled_ms IS NULL OR end_ms > start_ms ORDER BY start_ms")
        self.scheduled = [MaintenanceWindow(r[0], r[1], tuple(r[2].split()), r[3], r[4], r[5]) for r in rows]

    async def schedule_maintenance(self, window: MaintenanceWindow, author: str) -> None:
        await self.store.write([(
            "INSERT INTO maintenance (id, title, description, monitors, start_ms, end_ms, created_ms, author)"
            " VALUES (?,?,?,?,?,?,?,?)", (window.id, window.title, window.description, " ".join(window.monitors),
                                          window.start_ms, window.end_ms, now_ms(), author))])
        self.scheduled.append(window)

    async def cancel_maintenance(self, window: MaintenanceWindow, now: int) -> MaintenanceWindow | None:
        """A window not yet begun disappears; one in progress ends now (its past stays true)."""
        end = now if window.start_ms <= now < window.end_ms else window.start_ms
        await self.store.write([("UPDATE maintenance SET cancelled_ms=?, end_ms=? WHERE id=?", (now, end, window.id))])
        self.scheduled.remove(window)
        if end > window.start_ms:
            ended = dataclasses.replace(window, end_ms=end)
            self.scheduled.append(ended)
            return ended
        return None

    def health(self) -> dict:
        problems = []
        if not self.scheduler.running:
            problems.append("scheduler is not running")
        if not self.store.healthy:
            problems.append(self.store.last_error or "database is not writable")
        return {
            "status": "ok" if not problems else "failing",
            "problems": problems,
            "version": __version__,
            "monitors": len(self.monitors),
            "scheduler_running": self.scheduler.running,
            "database_writable": self.store.healthy,
            "database": self._database_health(),
            "last_commit_ms": self.store.last_commit_ms,
            "started_ms": self.started_ms,
            "config": self.watcher.status() if self.watcher else None,
        }

    def _database_health(self) -> dict:
        """What /healthz says about the file: the problem in words, and what waits in memory."""
        state = self.store.write_state
        return {
            "path": str(self.store.path),
            "writable": self.store.healthy,
            "problem": state.problem,  # "database full", "read-only", ... or null
            "error": state.error or None,
            "since_ms": state.since_ms,
            "pending_results": self.store.pending_results,
            "max_pending_results": self.store.max_pending,
            "dropped_results": self.store.dropped_results,
        }
