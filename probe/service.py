"""The running probe: config -> scheduled checks -> stored results -> incidents -> events.

`Probe` owns one of each part and the path a result takes through them. The web
application (web/app.py) starts and stops it; tests drive it directly.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from probe import __version__
from probe.checks.base import Check
from probe.config.loader import Config, MonitorConfig
from probe.core.calendar import Calendar
from probe.core.events import EventBus
from probe.core.models import MaintenanceWindow, ResultRecord
from probe.core.units import now_ms
from probe.engine.incidents import IncidentEngine
from probe.engine.maintenance import Maintenance
from probe.engine.runner import CheckRunner
from probe.engine.scheduler import Scheduler
from probe.notify.certs import CertificateNotices
from probe.notify.dispatcher import Dispatcher
from probe.storage import open_storage
from probe.view.stats import Stats

log = logging.getLogger("probe")

PRUNE_EVERY_S = 3600.0
FLUSH_TIMEOUT_S = 10.0  # how long a stop waits for the database to take pending results (README)


@dataclass
class Monitor:
    config: MonitorConfig
    check: Check


class Probe:
    def __init__(self, config: Config, *, flush_interval: float = 0.2) -> None:
        self.config = config
        self.store = open_storage(config.database_path, Calendar(config.page.tz), flush_interval=flush_interval)
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
        self.maintenance = Maintenance(self.store, lambda: self.config)

    async def start(self) -> None:
        await self.store.open()
        self.store.subscribe(self.bus.publish)
        await self._load_monitors(self.config.monitors)
        await self.engine.restore(self.config.monitors)
        await self.maintenance.load()
        await self.notify.start()
        await self.certs.start()
        for monitor in self.config.monitors:
            self.scheduler.schedule(monitor.id, monitor.interval)
        self.scheduler.add_periodic("prune", self.prune, every=PRUNE_EVERY_S, first_in=60)
        self.scheduler.start()
        self.started_ms = now_ms()
        log.info("probe started version=%s monitors=%d database=%s", __version__,
                 len(self.monitors), self.store.describe())

    async def stop(self, flush_timeout: float = FLUSH_TIMEOUT_S) -> None:
        await self.scheduler.stop()
        await self.certs.stop()
        await self.notify.stop()
        await self.store.close(flush_timeout)
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
        return self.maintenance.between(start_ms, end_ms)

    def in_maintenance(self, monitor_id: str, ts_ms: int) -> bool:
        return self.maintenance.covers(monitor_id, ts_ms)

    @property
    def scheduled(self) -> list[MaintenanceWindow]:
        """Maintenance windows scheduled through the admin API."""
        return self.maintenance.scheduled

    async def schedule_maintenance(self, window: MaintenanceWindow, author: str) -> None:
        await self.maintenance.schedule(window, author)

    async def cancel_maintenance(self, window: MaintenanceWindow, now: int) -> MaintenanceWindow | None:
        return await self.maintenance.cancel(window, now)

    def health(self, private: bool = False) -> dict:
        """What /healthz says (`private`: what the admin API says, with the paths, the error
        texts and the private monitors counted). The public one names no path, no config
        problem and no count a visitor could not count on the page."""
        problems = []
        if not self.scheduler.running:
            problems.append("scheduler is not running")
        if not self.store.healthy:
            problems.append((self.store.last_error if private else self.store.write_state.problem)
                            or "database is not writable")
        shown = [m for m in self.config.monitors if m.public or private]
        health = {
            "status": "ok" if not problems else "failing",
            "problems": problems,
            "version": __version__,
            "monitors": len(shown),
            "scheduler_running": self.scheduler.running,
            "database_writable": self.store.healthy,
            "database": self._database_health(private),
            "last_commit_ms": self.store.last_commit_ms,
            "started_ms": self.started_ms,
        }
        watcher = self.watcher.status() if self.watcher else None
        if private:
            health["config"] = watcher
        elif watcher is not None:
            health["config"] = {"loaded_ms": watcher["loaded_ms"], "reload_refused": bool(watcher["error"])}
        return health

    def _database_health(self, private: bool) -> dict:
        """What /healthz says about the file: the problem in words, and what waits in memory."""
        state = self.store.write_state
        health = {
            "writable": self.store.healthy,
            "problem": state.problem,  # "database full", "read-only", ... or null
            "since_ms": state.since_ms,
            "pending_results": self.store.pending_results,
            "max_pending_results": self.store.max_pending,
            "dropped_results": self.store.dropped_results,
        }
        if private:
            health |= {"path": self.store.describe(), "error": state.error or None}
        return health
