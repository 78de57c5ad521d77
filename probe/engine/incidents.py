"""The incident state machine: results in, incident transitions out.

Per monitor:
- `failure_threshold` consecutive bad results (degraded or down) open an incident that
  starts at the first bad check: major when the monitor is down, minor when degraded;
- a minor incident is escalated (not duplicated) once the monitor has been down for
  `failure_threshold` consecutive checks;
- `success_threshold` consecutive up results resolve it at the first good check;
- a failure that starts within `reopen_window` of the last automatic resolve reopens that
  incident instead of opening a new one, so a flapping monitor keeps one incident;
- an operator's resolve stands: it is never reopened, and the monitor's failures open a new
  incident only once it has checked up again (a resolve by hand while it still fails would
  otherwise be undone by its very next check);
- results taken during maintenance never open or escalate an incident;
- failures taken while probe's own network was down (`offline`) change nothing;
- while a monitor it depends on is failing, a monitor opens no incident of its own: it is
  listed as affected in that monitor's incident (engine/dependencies.py). When that one
  recovers, a dependent still failing opens its own at once, from its first failure.

`step()` is pure (easy to test as a story); `IncidentEngine` keeps one tracker per
monitor, hands out ids from the store, and rebuilds its state from the database.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from probe.core.models import (
    EventKind,
    Impact,
    Incident,
    IncidentEvent,
    ResultRecord,
    Status,
)
from probe.engine.dependencies import Dependencies

log = logging.getLogger("probe.incidents")


@dataclass
class Tracker:
    bad_count: int = 0
    bad_since_ms: int | None = None  # first bad check of the current streak
    down_count: int = 0
    good_count: int = 0
    good_since_ms: int | None = None
    open: Incident | None = None
    last_resolved: Incident | None = None  # the last automatic resolve: a failure soon after reopens it
    awaiting_up: bool = False  # resolved by hand while failing: nothing opens until a result is up
    last_ms: int | None = None  # the newest result
    last_reason: str = ""

    @property
    def failing(self) -> bool:
        """An open incident, or bad checks on the way to one."""
        return self.open is not None or self.bad_count > 0


@dataclass(frozen=True)
class Rules:
    failure_threshold: int = 2
    success_threshold: int = 1
    reopen_window_ms: int = 300_000

    @classmethod
    def of(cls, settings) -> "Rules":
        return cls(settings.failure_threshold, settings.success_threshold, int(settings.reopen_window * 1000))


@dataclass(frozen=True)
class Transition:
    kind: EventKind
    incident: Incident
    at_ms: int
    reason: str = ""  # when it is not the reason of the result that caused it


def step(t: Tracker, r: ResultRecord, rules: Rules, new_id=lambda: 0, held: bool = False) -> list[Transition]:
    """Feed one result to a tracker; return what happened to its incident (usually nothing).
    `held`: a monitor this one depends on is failing, so its failures open nothing."""
    if r.offline and r.status is not Status.UP:
        return []  # probe's own network was down: the failure says nothing about the target
    t.last_ms, t.last_reason = r.ts_ms, r.reason
    if r.status is Status.UP:
        return _on_good(t, r, rules)
    t.good_count, t.good_since_ms = 0, None
    if r.in_maintenance:
        # Planned work: failures during it are expected and must not open anything.
        t.bad_count, t.bad_since_ms, t.down_count = 0, None, 0
        return []
    t.bad_count += 1
    t.bad_since_ms = t.bad_since_ms if t.bad_since_ms is not None else r.ts_ms
    t.down_count = t.down_count + 1 if r.status is Status.DOWN else 0
    if t.open is not None:
        return _maybe_escalate(t, r, rules)
    if t.bad_count < rules.failure_threshold or held or t.awaiting_up:
        return []
    return open_incident(t, r.monitor_id, rules, r.ts_ms, new_id)


def open_incident(t: Tracker, monitor_id: str, rules: Rules, at_ms: int, new_id) -> list[Transition]:
    """Open the incident of a streak past its threshold (or reopen the last one, if the streak began
    within `reopen_window` of its resolve). It starts at the streak's first bad check."""
    impact = Impact.MAJOR if t.down_count else Impact.MINOR  # the newest check's status
    last = t.last_resolved
    if last is not None and last.resolved_ms is not None \
            and t.bad_since_ms - last.resolved_ms <= rules.reopen_window_ms:
        impact = max(impact, last.impact, key=lambda i: i.rank)
        t.open = dataclasses.replace(last, resolved_ms=None, status="investigating", impact=impact,
                                     reason=t.last_reason)
        return [Transition(EventKind.REOPENED, t.open, at_ms, t.last_reason)]
    t.open = Incident(id=new_id(), monitor_id=monitor_id, title="", impact=impact, status="investigating",
                      started_ms=t.bad_since_ms, reason=t.last_reason)
    return [Transition(EventKind.OPENED, t.open, at_ms, t.last_reason)]


def _on_good(t: Tracker, r: ResultRecord, rules: Rules) -> list[Transition]:
    t.bad_count, t.bad_since_ms, t.down_count, t.awaiting_up = 0, None, 0, False
    t.good_count += 1
    t.good_since_ms = t.good_since_ms if t.good_since_ms is not None else r.ts_ms
    if t.open is None or t.good_count < rules.success_threshold:
        return []
    resolved = dataclasses.replace(t.open, resolved_ms=t.good_since_ms, status="resolved")
    t.open, t.last_resolved = None, resolved
    return [Transition(EventKind.RESOLVED, resolved, r.ts_ms)]


def _maybe_escalate(t: Tracker, r: ResultRecord, rules: Rules) -> list[Transition]:
    if t.open.impact.rank >= Impact.MAJOR.rank or t.down_count < rules.failure_threshold:
        return []
    t.open = dataclasses.replace(t.open, impact=Impact.MAJOR, reason=r.reason)
    return [Transition(EventKind.ESCALATED, t.open, r.ts_ms)]


class IncidentEngine:
    def __init__(self, store) -> None:
        self.store = store
        self.trackers: dict[str, Tracker] = {}
        self.dependencies = Dependencies()
        self.rules: dict[str, Rules] = {}

    def configure(self, monitors) -> None:
        """Every configured monitor: who depends on whom, and each one's rules."""
        self.dependencies = Dependencies(monitors)
        self.rules = {m.id: Rules.of(m.settings) for m in monitors}

    def open_incident(self, monitor_id: str) -> Incident | None:
        tracker = self.trackers.get(monitor_id)
        return tracker.open if tracker else None

    def _new_id(self) -> int:
        return self.store.allocate_id("incidents")

    def observe(self, settings, record: ResultRecord) -> list[IncidentEvent]:
        monitor_id = record.monitor_id
        tracker = self.trackers.setdefault(monitor_id, Tracker())
        was_failing = tracker.failing
        held = self.dependencies.held(monitor_id, self.trackers)
        transitions = [self._with_dependents(monitor_id, tr) for tr in
                       step(tracker, record, Rules.of(settings), self._new_id, held)]
        if held and tracker.open is None and tracker.bad_count:
            transitions += self._list_as_affected(monitor_id, record)
        if was_failing and not tracker.failing:
            transitions += self._release(monitor_id, tracker, record.ts_ms)
        events = [IncidentEvent(id=self.store.allocate_id("events"), kind=tr.kind, at_ms=tr.at_ms,
                                incident=tr.incident, reason=tr.reason or record.reason) for tr in transitions]
        for event in events:
            log.info("incident %s monitor=%s incident=%d impact=%s reason=%r", event.kind.value,
                     event.incident.monitor_id, event.incident.id, event.incident.impact.value, event.reason)
        return events

    # ---- dependencies (see engine/dependencies.py) --------------------------------------

    def _with_dependents(self, monitor_id: str, tr: Transition) -> Transition:
        """An incident that opens lists the monitors depending on it that are failing with it."""
        if tr.kind not in (EventKind.OPENED, EventKind.REOPENED):
            return tr
        failing = [d for d in self.dependencies.descendants(monitor_id)
                   if self._waiting(d) and self.dependencies.speaking_for(d, self.trackers) == monitor_id]
        if not failing:
            return tr
        tracker = self.trackers[monitor_id]
        tracker.open = _listing(tracker.open, failing)
        return dataclasses.replace(tr, incident=tracker.open)

    def _list_as_affected(self, monitor_id: str, record: ResultRecord) -> list[Transition]:
        """A dependent failed while the monitor it depends on has an incident: list it there, once."""
        parent = self.dependencies.speaking_for(monitor_id, self.trackers)
        if parent is None:
            return []  # what it depends on is failing but has no incident yet: listed when it opens
        tracker = self.trackers[parent]
        if monitor_id in tracker.open.affected:
            return []
        tracker.open = _listing(tracker.open, [monitor_id])
        return [Transition(EventKind.AFFECTED, tracker.open, record.ts_ms, record.reason)]

    def _release(self, monitor_id: str, tracker: Tracker, at_ms: int) -> list[Transition]:
        """The monitor recovered: a dependent that still fails (a bad check since the recovery)
        opens its own incident now, from its first failure. One whose newest check predates the
        recovery waits for its next: it may well be recovering too."""
        recovered_ms = tracker.good_since_ms if tracker.good_since_ms is not None else at_ms
        transitions = []
        for dependent in self.dependencies.descendants(monitor_id):
            t, rules = self.trackers.get(dependent), self.rules.get(dependent)
            if t is None or rules is None or not self._waiting(dependent) or t.bad_count < rules.failure_threshold \
                    or t.last_ms < recovered_ms or self.dependencies.held(dependent, self.trackers):
                continue
            transitions += [self._with_dependents(dependent, tr)
                            for tr in open_incident(t, dependent, rules, at_ms, self._new_id)]
        return transitions

    def _waiting(self, monitor_id: str) -> bool:
        """Failing with no incident of its own."""
        t = self.trackers.get(monitor_id)
        return t is not None and t.open is None and t.bad_count > 0

    async def restore(self, monitors) -> None:
        """Rebuild trackers from the file: open incidents, last resolves and current streaks.

        Streaks are counted back from the newest stored results; nothing is replayed, so
        a restart never repeats a transition the file already holds.
        """
        open_by_monitor = {i.monitor_id: i for i in await self.store.open_incidents() if i.origin == "auto"}
        resolved = await self.store.last_resolved_incidents()
        by_hand = await self._resolved_by_hand(list(resolved.values()))
        for m in monitors:
            last = resolved.get(m.id)
            tracker = Tracker(open=open_by_monitor.get(m.id), last_resolved=None if last and last.id in by_hand else last)
            tail = await self.store.recent_results(m.id, max(m.failure_threshold, m.success_threshold) + 1)
            _count_streaks(tracker, tail)
            if tracker.open is None and last is not None and last.id in by_hand:
                tracker.awaiting_up = not any(r.status is Status.UP for r in tail if r.ts_ms >= last.resolved_ms)
            self.trackers[m.id] = tracker

    async def _resolved_by_hand(self, incidents: list[Incident]) -> set[int]:
        """Which of these incidents an operator resolved (their resolve was not the engine's)."""
        updates = await self.store.incident_updates([i.id for i in incidents])
        return {incident_id for incident_id, entries in updates.items()
                if any(u.kind == EventKind.RESOLVED.value and u.author != "probe" for u in entries[-1:])}

    def tracked(self, incident_id: int) -> Incident | None:
        """The engine's own copy of an open automatic incident (newer than the file)."""
        for tracker in self.trackers.values():
            if tracker.open is not None and tracker.open.id == incident_id:
                return tracker.open
        return None

    def amend(self, incident: Incident) -> None:
        """An operator changed an automatic incident: keep the engine's copy in step,
        so that its next transition does not write back the old title or status."""
        for tracker in self.trackers.values():
            if tracker.open is not None and tracker.open.id == incident.id:
                if incident.is_open:
                    tracker.open = incident
                else:  # resolved by hand: it stands, and nothing opens until the monitor is up again
                    tracker.open, tracker.last_resolved = None, None
                    tracker.awaiting_up = tracker.good_count == 0

    def forget(self, monitor_id: str) -> None:
        self.trackers.pop(monitor_id, None)


def _count_streaks(t: Tracker, tail: list[ResultRecord]) -> None:
    """Set the streak counters from the newest results (oldest first)."""
    tail = [r for r in tail if not (r.offline and r.status is not Status.UP)]  # as step() ignores them
    if not tail:
        return
    t.last_ms, t.last_reason = tail[-1].ts_ms, tail[-1].reason
    if tail[-1].status is Status.UP:
        run = _trailing(tail, lambda r: r.status is Status.UP)
        t.good_count, t.good_since_ms = len(run), run[0].ts_ms
        return
    run = _trailing(tail, lambda r: r.status is not Status.UP and not r.in_maintenance)
    if run:
        t.bad_count, t.bad_since_ms = len(run), run[0].ts_ms
        t.down_count = len(_trailing(run, lambda r: r.status is Status.DOWN))


def _listing(incident: Incident, monitor_ids: list[str]) -> Incident:
    added = tuple(m for m in monitor_ids if m not in incident.affected and m != incident.monitor_id)
    return dataclasses.replace(incident, affected=incident.affected + added) if added else incident


def _trailing(items: list[ResultRecord], keep) -> list[ResultRecord]:
    i = len(items)
    while i > 0 and keep(items[i - 1]):
        i -= 1
    return items[i:]
