"""[cluster] What several locations' checks of one monitor say together: the confirmed status.

Every location checks a monitor on the same slots (the scheduler's phase is a hash of the monitor's
id), so the results of one round share their scheduled time. A round is decided once every live
location of the monitor has reported it, or at its deadline (the slot, the timeout, and GRACE_MS
for the commit and the notification), and rounds are decided in order, each once:

- each location's view is its result of the round, or else its newest result if it is at most two
  intervals old; a location without one (or whose network was down) is "no data" and never up;
- down when at least `confirm` of the views are down (degraded: at least `confirm` are degraded or
  down), up otherwise. With fewer views than `confirm`, all of those left must agree: the
  locations still checking decide;
- no view at all records nothing: that round is no data.

The confirmed result is what a single process records: incidents, availability and notifications
go by it. It keeps which locations saw what (`details["locations"]`, for the page and the API).
"""
from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

from probe.core.models import ResultRecord, Status

GRACE_MS = 2000  # after a round's slot and timeout: its last results commit and are announced


@dataclass(frozen=True)
class Rule:
    locations: tuple[str, ...]
    confirm: int
    interval_ms: int
    timeout_ms: int


@dataclass
class Watch:
    rule: Rule
    latest: dict[str, ResultRecord] = field(default_factory=dict)  # location -> its newest result
    rounds: dict[int, dict[str, ResultRecord]] = field(default_factory=dict)  # slot -> location -> result
    decided_ms: int = 0  # the slot of the newest round decided


class Confirmation:
    def __init__(self, names: dict[str, str]) -> None:
        self.names = names  # location id -> the name the page shows
        self.watches: dict[str, Watch] = {}
        self.waiting: set[str] = set()  # monitors with rounds not yet decided

    def configure(self, rules: dict[str, Rule]) -> None:
        """Each monitor's locations, confirm and timing; monitors that left are forgotten."""
        for monitor_id in set(self.watches) - set(rules):
            del self.watches[monitor_id]
            self.waiting.discard(monitor_id)
        for monitor_id, rule in rules.items():
            watch = self.watches.get(monitor_id)
            if watch is None:
                self.watches[monitor_id] = Watch(rule)
            else:
                watch.rule = rule

    def decided(self, monitor_id: str, slot_ms: int) -> None:
        """The newest round already decided (a former leader's, read back from the database)."""
        watch = self.watches.get(monitor_id)
        if watch is not None:
            watch.decided_ms = max(watch.decided_ms, slot_ms)
            for slot in [s for s in watch.rounds if s <= watch.decided_ms]:
                del watch.rounds[slot]

    def seen(self, record: ResultRecord, decide: bool = True) -> None:
        """A location's result. `decide`: keep it for the round it belongs to (the leader decides
        rounds; the others keep only each location's newest, for the page)."""
        watch = self.watches.get(record.monitor_id)
        if watch is None or record.location not in watch.rule.locations:
            return
        current = watch.latest.get(record.location)
        if current is None or record.ts_ms >= current.ts_ms:
            watch.latest[record.location] = record
        if decide and record.scheduled_ms > watch.decided_ms:
            watch.rounds.setdefault(record.scheduled_ms, {})[record.location] = record
            self.waiting.add(record.monitor_id)

    def forget_rounds(self) -> None:
        """No longer the leader: the rounds are the next leader's to decide (from the database)."""
        for watch in self.watches.values():
            watch.rounds.clear()
        self.waiting.clear()

    def ready(self, now_ms: int, live: Iterable[str]) -> list[ResultRecord]:
        """The confirmed results of the rounds that can be decided now, oldest first per monitor.
        `live`: the locations that have an instance running."""
        live = set(live)
        out = []
        for monitor_id in list(self.waiting):
            watch = self.watches[monitor_id]
            for slot in sorted(watch.rounds):
                if not self._complete(watch, slot, live) and now_ms < slot + watch.rule.timeout_ms + GRACE_MS:
                    break
                found = self.decide(monitor_id, watch, slot)
                if found is not None:
                    out.append(found)
                watch.decided_ms = slot
                del watch.rounds[slot]
            if not watch.rounds:
                self.waiting.discard(monitor_id)
        return out

    @staticmethod
    def _complete(watch: Watch, slot: int, live: set[str]) -> bool:
        """Every live location of the monitor has reported this round (or a later one)."""
        reported = watch.rounds[slot]
        for location in watch.rule.locations:
            if location in live and location not in reported:
                newest = watch.latest.get(location)
                if newest is None or newest.scheduled_ms <= slot:
                    return False
        return True

    def views(self, watch: Watch, slot: int, reported: dict[str, ResultRecord]) -> dict[str, ResultRecord]:
        """Each location's view of the round: its result of it, or its newest if recent enough."""
        out = {}
        for location in watch.rule.locations:
            record = reported.get(location) or watch.latest.get(location)
            if record is None or record.offline or record.ts_ms < slot - 2 * watch.rule.interval_ms:
                continue  # no data: never counts as up
            out[location] = record
        return out

    def decide(self, monitor_id: str, watch: Watch, slot: int) -> ResultRecord | None:
        reported = watch.rounds[slot]
        views = self.views(watch, slot, reported)
        if not views:
            return None
        need = min(watch.rule.confirm, len(views))
        down = [loc for loc, r in views.items() if r.status is Status.DOWN]
        bad = [loc for loc, r in views.items() if r.status is not Status.UP]
        status = Status.DOWN if len(down) >= need else Status.DEGRADED if len(bad) >= need else Status.UP
        seeing = down if status is Status.DOWN else bad if status is Status.DEGRADED else \
            [loc for loc, r in views.items() if r.status is Status.UP]
        first = views[seeing[0]]
        reason = first.reason if status is Status.UP else f"{first.reason} (from {self.listing(seeing)})"
        latencies = [r.latency_ms for r in views.values() if r.latency_ms is not None and r.status is not Status.DOWN]
        details = {} if status is Status.UP else {"locations": {loc: views[loc].status.label if loc in views
                                                                else "no data" for loc in watch.rule.locations}}
        return ResultRecord(monitor_id, min(r.ts_ms for r in reported.values()), slot, status, reason,
                            statistics.median(latencies) if latencies else None, details,
                            any(r.in_maintenance for r in views.values()))

    def listing(self, locations: list[str]) -> str:
        """'Frankfurt', 'Frankfurt and Singapore', 'Frankfurt, Singapore and Ashburn'."""
        names = [self.names.get(loc, loc) for loc in locations]
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]

    def latest(self, monitor_id: str) -> dict[str, ResultRecord]:
        watch = self.watches.get(monitor_id)
        return dict(watch.latest) if watch is not None else {}
