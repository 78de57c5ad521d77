"""[cluster] What a Probe does as one instance of several on one PostgreSQL database.

As a member, every instance checks its share of its location's monitors (engine/cluster.py) and
writes those results as its location's; it serves the page and the APIs from the shared database,
kept current by what the others announce (the store's `probe_results` and `probe_changes`
channels). As the leader, one instance also decides what the locations' results confirm
(engine/confirmation.py) and records that as a single process records its results, through the
incident engine; it sends the notifications and tidies the database. A new leader rebuilds all of
it from the database: the open incidents and streaks, the rounds the last leader had not decided.
"""
from __future__ import annotations

import asyncio
import logging

from probe import __version__
from probe.config.cluster import confirm_needed, monitor_locations
from probe.core.models import ResultRecord
from probe.core.units import now_ms
from probe.engine.cluster import Cluster
from probe.engine.confirmation import Confirmation, Rule

log = logging.getLogger("probe.cluster")

DECIDE_EVERY_S = 0.25  # the leader looks for rounds past their deadline this often
STOP_FLUSH_S = 5.0  # a stopping leader waits this long for its decided results to commit


class ClusterRoles:
    def __init__(self, probe) -> None:
        self.probe = probe
        config = probe.config.cluster
        link = probe.store.cluster_link(config.instance, config.location, __version__, config.heartbeat)
        self.cluster = Cluster(config, link, on_lead=self._lead, on_follow=self._follow,
                               on_members=self._members_changed, on_message=self._message,
                               on_connect=self._resync)
        self.confirmation = Confirmation(config.names)
        self._decider: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._pending: list[asyncio.Task] = []
        self.took_over_ms: list[int] = []  # how long each take-over took (for /metrics and the benchmark)

    @property
    def leading(self) -> bool:
        return self.cluster.leading

    def configure(self, monitors) -> None:
        config = self.probe.config.cluster
        self.confirmation.configure({m.id: Rule(monitor_locations(m, config), confirm_needed(m, config),
                                                int(m.interval * 1000), int(m.timeout * 1000))
                                     for m in monitors if not m.make_check().passive})

    async def start(self) -> None:
        self.configure(self.probe.config.monitors)
        self.probe.store.on_fenced = self._fenced
        await self.cluster.start()

    async def stop(self) -> None:
        await self._stop_deciding()
        if self.leading:  # what it decided goes in under its own term, before it gives the term up
            try:
                await asyncio.wait_for(self.probe.store.flush(), STOP_FLUSH_S)
            except Exception as exc:  # noqa: BLE001 - the next leader decides those rounds again
                log.warning("could not write the last decided results before stepping down: %r", exc)
        await self.cluster.stop()
        for task in self._pending:
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)

    def owns(self, monitor) -> bool:
        return self.cluster.owns(monitor.id, monitor_locations(monitor, self.probe.config.cluster))

    # ---- what the others announce -----------------------------------------------------

    def _message(self, channel: str, payload: str) -> None:
        """From the cluster connection (asyncpg calls this in the event loop)."""
        from probe.storage.postgres.link import RESULTS_CHANNEL
        from probe.storage.postgres.together import announced
        if channel == RESULTS_CHANNEL:
            confirmed = []
            for record in announced(payload):
                if record.location:
                    self.confirmation.seen(record, decide=self.leading)
                else:
                    confirmed.append(record)
            if confirmed and not self.leading:  # the leader's own: it knows them already
                self._follow_confirmed(confirmed)
            self._wake.set()
        elif payload == "incidents":
            self.probe.store.incidents_version += 1
        elif payload == "operator" and self.leading:
            self._spawn(self._operator_changed())
        elif payload == "maintenance":
            self._spawn(self.probe.maintenance.load())
        elif payload == "outbox" and self.leading:
            self.probe.notify.outbox.wake_all()

    async def _operator_changed(self) -> None:
        """An operator changed incidents, perhaps through another instance: the engine's copies of
        the open ones follow the database, or its next transition would write back the old title,
        impact or status (a resolved-by-hand incident resolved again). Flushed first, so that what
        the engine decided before is in the database and the copy read is not older than its own."""
        engine, store = self.probe.engine, self.probe.store
        await store.flush()
        for tracker in list(engine.trackers.values()):
            if tracker.open is not None:
                stored = await store.incident(tracker.open.id)
                if stored is not None and stored != tracker.open:
                    engine.amend(stored)

    def _follow_confirmed(self, records: list[ResultRecord]) -> None:
        for record in records:
            latest = self.probe.latest.get(record.monitor_id)
            if latest is None or record.ts_ms >= latest.ts_ms:
                self.probe.latest[record.monitor_id] = record
        self.probe.store.committed_elsewhere(records)

    async def _resync(self) -> None:
        """The cluster connection is new: what was announced before it listened is read from the database."""
        store = self.probe.store
        monitors = [m for m in self.probe.config.monitors if m.id in store.monitor_ids]
        for record in await store.location_latest([m.id for m in monitors], list(self.confirmation.names)):
            self.confirmation.seen(record, decide=self.leading)
        confirmed = []
        for m in monitors:
            recent = await store.recent_results(m.id, 1)
            confirmed += recent
        if not self.leading:
            self._follow_confirmed(confirmed)
        store.incidents_version += 1

    def _members_changed(self) -> None:
        self.probe.reshare()
        self._wake.set()

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._pending.append(task)
        task.add_done_callback(lambda t: self._pending.remove(t) if t in self._pending else None)

    # ---- leading ----------------------------------------------------------------------

    async def _lead(self, term: int) -> None:
        """Rebuild what the leader keeps from the database, then decide and notify."""
        started = now_ms()
        probe, store = self.probe, self.probe.store
        await store.lead(term)
        await store.reserve_ids()
        monitors = probe.config.monitors
        probe.engine.trackers.clear()
        probe.engine.configure(monitors)
        await probe.engine.restore(monitors)
        await self._restore_rounds(monitors)
        await probe.watch_passive(leading=True)
        await probe.notify.start_delivering()
        self._decider = asyncio.create_task(self._decide(), name="cluster-decide")
        self.took_over_ms.append(now_ms() - started)
        log.info("took over as the leader term=%d in=%dms", term, now_ms() - started)

    async def _restore_rounds(self, monitors) -> None:
        """The rounds after the newest decided one of each monitor (a former leader's, or none) are
        decided again from the locations' stored results: nothing is lost, nothing decided twice."""
        store, confirmation = self.probe.store, self.confirmation
        oldest = now_ms()
        for m in monitors:
            if m.id not in confirmation.watches:
                continue
            recent = await store.recent_results(m.id, 1)
            decided = recent[-1].scheduled_ms if recent else 0
            confirmation.decided(m.id, decided)
            oldest = min(oldest, max(decided, now_ms() - int(2 * m.interval * 1000)))
        for record in await store.location_results_since(list(confirmation.watches), list(confirmation.names),
                                                         oldest):
            confirmation.seen(record)

    async def _follow(self) -> None:
        await self._stop_deciding()
        self.confirmation.forget_rounds()
        self.probe.store.follow()
        await self.probe.notify.stop_delivering()
        await self.probe.watch_passive(leading=False)
        self.probe.engine.trackers.clear()

    def _fenced(self) -> None:
        """The writer met another leader's term: this instance's heartbeat steps it down."""
        log.warning("another instance leads now; this one steps down at its next heartbeat")

    async def _stop_deciding(self) -> None:
        task, self._decider = self._decider, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _decide(self) -> None:
        while True:
            try:
                async with asyncio.timeout(DECIDE_EVERY_S):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.probe.store.reserve_ids()
                for record in self.confirmation.ready(now_ms(), self.cluster.live_locations()):
                    self.probe.record_confirmed(record)
            except Exception:  # a database hiccup while topping up ids: the rounds wait, nothing is lost
                log.exception("deciding confirmed results failed")
                await asyncio.sleep(1.0)

    # ---- what /healthz and /metrics say -----------------------------------------------

    def health(self) -> dict:
        return self.cluster.health()
