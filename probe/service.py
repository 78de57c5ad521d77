"""The running probe: config -> scheduled checks -> stored results -> incidents -> events.

`Probe` owns one of each part and the path a result takes through them. The web
application (web/app.py) starts and stops it; tests drive it directly.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from probe import __version__
from probe.checks.base import Check, Ping
from probe.config.loader import Config, MonitorConfig
from probe.core.calendar import Calendar
from probe.core.events import EventBus
from probe.core.models import CheckResult, ConnectivityChange, MaintenanceWindow, ResultRecord, Status
from probe.core.units import now_ms
from probe.engine.connectivity import Connectivity
from probe.engine.incidents import IncidentEngine
from probe.engine.maintenance import Maintenance
from probe.engine.passive import Fed, Passive
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
    def __init__(self, config: Config, *, flush_interval: float = 0.2, read_only: bool = False) -> None:
        """`read_only`: a probe that only reads the database, beside the one `probe run` that writes it."""
        self.config = config
        self.store = open_storage(config.storage_target, Calendar(config.page.tz), flush_interval=flush_interval,
                                  connect_for=config.storage.connect_retry, read_only=read_only,
                                  cluster=config.cluster is not None and not read_only)
        self.engine = IncidentEngine(self.store)
        self.bus = EventBus()
        self.stats = Stats(self.store)
        self.runner = CheckRunner()
        self.scheduler = Scheduler(self.run_monitor)
        self.passive = Passive(self.store, self._submit_fed)  # monitors fed by reports (push), not run
        # [server] settings wait for a restart, so the targets are fixed for the process's life
        self.connectivity = Connectivity(config.server.connectivity, self.store, self._connectivity_changed)
        self.monitors: dict[str, Monitor] = {}
        self.latest: dict[str, ResultRecord] = {}
        self.check_counts: Counter[tuple[str, str]] = Counter()  # (monitor, status) since start: /metrics
        self.started_ms: int | None = None
        self.notify = Dispatcher(self)
        self.certs = CertificateNotices(self)
        self.watcher = None  # probe.reload.ConfigWatcher, when run from a file
        self.maintenance = Maintenance(self.store, lambda: self.config)
        self.config_version = 0  # counts configs applied by reloads
        self.roles = None  # [cluster]: probe.roles.ClusterRoles, made at start (it needs the open store)

    async def start(self) -> None:
        await self.store.open()
        self.store.subscribe(self.bus.publish)
        await self._load_monitors(self.config.monitors)
        self.engine.configure(self.config.monitors)
        if self.config.cluster is None:  # [cluster]: the leader restores the engine when it takes over
            await self.engine.restore(self.config.monitors)
        await self.maintenance.load()
        await self.notify.start(deliver=self.config.cluster is None)
        await self.certs.start()
        await self.connectivity.start()
        self.started_ms = now_ms()
        if self.config.cluster is not None:  # joined before sharing: the members decide this one's share
            from probe.roles import ClusterRoles
            self.roles = ClusterRoles(self)
            await self.roles.start()
        await self._watch_passive()
        self._schedule_active()
        self.scheduler.add_periodic("prune", self.prune, every=PRUNE_EVERY_S, first_in=60)
        self.scheduler.start()
        if self.roles is None:  # [cluster]: the leader watches the passive monitors' deadlines
            self.passive.start()
        log.info("probe started version=%s monitors=%d database=%s", __version__,
                 len(self.monitors), self.store.describe())

    async def stop(self, flush_timeout: float = FLUSH_TIMEOUT_S) -> None:
        await self.scheduler.stop()
        if self.roles is not None:
            await self.roles.stop()
        await self.passive.stop()
        await self.connectivity.stop()
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
            self.engine.forget(monitor_id)
            self.latest.pop(monitor_id, None)
        self.engine.configure(config.monitors)
        if self.roles is None or self.roles.leading:
            await self.engine.restore([m for m in config.monitors if m.id not in old])
        await self.maintenance.sync(config.maintenance, now_ms())
        self.config = config
        if self.roles is not None:
            self.roles.configure(config.monitors)
        self.config_version += 1
        await self._watch_passive()
        self._schedule_active()
        await self.notify.apply(config)

    def _schedule_active(self) -> None:
        """The scheduler runs the checks that are run; passive ones are fed (see probe/engine/passive.py).
        [cluster] Only this instance's share of its location's monitors."""
        active = {m.config.id: m.config.interval for m in self.monitors.values()
                  if not m.check.passive and (self.roles is None or self.roles.owns(m.config))}
        for monitor_id in self.scheduler.monitor_ids() - set(active):
            self.scheduler.unschedule(monitor_id)
        for monitor_id, interval in active.items():
            self.scheduler.schedule(monitor_id, interval)

    def reshare(self) -> None:
        """[cluster] The live instances changed: take on or give up monitors."""
        if self.scheduler.running:
            self._schedule_active()

    async def _watch_passive(self) -> None:
        await self.passive.load(((m.config, m.check) for m in self.monitors.values()), self.latest,
                                self.started_ms or now_ms())

    def location_latest(self, monitor_id: str) -> dict[str, ResultRecord]:
        """[cluster] Each location's newest result of the monitor (what every instance hears)."""
        return self.roles.confirmation.latest(monitor_id) if self.roles is not None else {}

    async def watch_passive(self, leading: bool) -> None:
        """[cluster] The leader watches the passive monitors' deadlines (what a late report records)."""
        await self.passive.stop()
        if leading:
            await self._watch_passive()
            self.passive.start()

    async def feed(self, key: str, ping: Ping) -> Fed:
        """A report for a passive monitor (a push), from the web route. [cluster] Only the leader
        keeps the passive monitors' state and records what they say: another instance answers so
        that the sender retries (behind a load balancer, likely at another instance) instead of
        losing the report."""
        if self.roles is not None and not self.roles.leading:
            return Fed.ELSEWHERE
        return await self.passive.feed(key, ping)

    def public_generation(self) -> tuple[int, int, int]:
        """Changes whenever an incident, a maintenance window scheduled by hand or the config does:
        what the public sees changed by someone's hand (web/cache.py renders again at once)."""
        return self.store.incidents_version, self.maintenance.version, self.config_version

    async def run_monitor(self, monitor_id: str, scheduled_ms: int) -> None:
        monitor = self.monitors.get(monitor_id)
        if monitor is None:
            return
        started_ms = now_ms()
        result = await self.runner.run(monitor.config, monitor.check)
        # A failure first asks whether probe's own network is down ([server] connectivity).
        offline = result.status is not Status.UP and not await self.connectivity.confirm()
        if self.monitors.get(monitor_id) is not monitor:
            return  # removed or replaced by a reload while the check ran
        if self.roles is not None:
            self.submit_located(monitor.config, result, started_ms, scheduled_ms, offline)
            return
        self.submit(monitor.config, result, started_ms, scheduled_ms, offline)

    def submit(self, monitor: MonitorConfig, result: CheckResult, ts_ms: int, scheduled_ms: int | None = None,
               offline: bool | None = None) -> None:
        """A check's result, run or fed, as of `ts_ms` (when it was due: a fed result has no lateness).
        `offline` None: a failure is offline while probe's own network is known to be down."""
        if offline is None:
            offline = result.status is not Status.UP and not self.connectivity.ok
        self.record(monitor, ResultRecord(
            monitor.id, ts_ms, ts_ms if scheduled_ms is None else scheduled_ms, result.status, result.reason,
            result.latency_ms, result.details, self.in_maintenance(monitor.id, ts_ms), offline))

    def submit_located(self, monitor: MonitorConfig, result: CheckResult, ts_ms: int, scheduled_ms: int,
                       offline: bool) -> None:
        """[cluster] This instance's check, as its location's: the leader confirms it with the others'."""
        record = ResultRecord(monitor.id, ts_ms, scheduled_ms, result.status, result.reason, result.latency_ms,
                              result.details, self.in_maintenance(monitor.id, ts_ms), offline,
                              self.config.cluster.location)
        self.store.submit_result(record, monitor.interval)
        self.certs.observe(monitor, record.details, record.status.label)
        self.check_counts[monitor.id, record.status.label] += 1

    def record_confirmed(self, record: ResultRecord) -> None:
        """[cluster] What the locations confirm together, recorded (on the leader) as one process records."""
        monitor = self.monitors.get(record.monitor_id)
        if monitor is not None:
            self.record(monitor.config, record, counted=False)

    def _submit_fed(self, monitor: MonitorConfig, result: CheckResult, ts_ms: int, offline: bool | None) -> None:
        self.submit(monitor, result, ts_ms, offline=offline)

    async def _connectivity_changed(self, change: ConnectivityChange) -> None:
        if change.lost:
            log.warning("connectivity lost: no target answered; failures are recorded as no data and open "
                        "no incident until one does %s", " ".join(f"{t}={r!r}" for t, r in change.failures.items()))
        else:
            log.warning("connectivity restored after %.0fs", (change.at_ms - change.since_ms) / 1000)
        await self.notify.queue_connectivity(change)

    def record(self, monitor: MonitorConfig, record: ResultRecord, counted: bool = True) -> None:
        """Decide, then queue: the result and the transitions it caused share one transaction."""
        events = self.engine.observe(monitor.settings, record)
        self.store.submit_result(record, monitor.interval)
        if events:
            self.store.submit_events(events)
        latest = self.latest.get(monitor.id)
        if latest is None or record.ts_ms >= latest.ts_ms:  # a late, older result is history, not the state
            self.latest[monitor.id] = record
        if counted:  # a check of this process's (not what a cluster's locations confirm together)
            self.certs.observe(monitor, record.details, record.status.label)
            self.check_counts[monitor.id, record.status.label] += 1

    async def prune(self) -> None:
        if self.roles is not None and not self.roles.leading:
            return  # [cluster] the leader tidies for everyone
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
        # A rejected reload is listed, but the process runs and serves: it stays "ok" (200).
        reload_problem = self.watcher.problem(detail=private) if self.watcher else None
        shown = [m for m in self.config.monitors if m.public or private]
        health = {
            "status": "ok" if not problems else "failing",
            "problems": problems + ([reload_problem] if reload_problem else []),
            "version": __version__,
            "monitors": len(shown),
            "scheduler_running": self.scheduler.running,
            "database_writable": self.store.healthy,
            "database": self._database_health(private),
            "last_commit_ms": self.store.last_commit_ms,
            "started_ms": self.started_ms,
            # Not a problem of probe's own (no 503: a restart would not bring the network back).
            "connectivity": self.connectivity.health(),
        }
        if self.roles is not None:
            health["cluster"] = self._cluster_health(private)
        watcher = self.watcher.status() if self.watcher else None
        if private:
            health["config"] = watcher
        elif watcher is not None:
            health["config"] = {"loaded_ms": watcher["loaded_ms"], "reload_refused": bool(watcher["error"])}
        return health

    def _cluster_health(self, private: bool) -> dict:
        """[cluster] This instance's name, location, whether it leads, and the members it sees. The
        public one says whether the cluster connection works, not why (an error may name a host)."""
        health = self.roles.health()
        if not private:
            health["problem"] = "the cluster connection failed" if health["problem"] else None
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
