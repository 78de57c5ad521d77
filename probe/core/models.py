"""Plain data that flows between checks, the scheduler, the store and the incident engine."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Status(enum.IntEnum):
    """A check's verdict. The integer is what the store keeps (and orders by badness)."""

    UP = 0
    DEGRADED = 1
    DOWN = 2

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def is_good(self) -> bool:
        # Degraded counts as available time: the service answers, only worse.
        return self is not Status.DOWN


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What one check says about its target. Checks return it; they never raise."""

    status: Status
    reason: str
    latency_ms: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def up(cls, reason: str, latency_ms: float | None = None, **details: Any) -> "CheckResult":
        return cls(Status.UP, reason, latency_ms, details)

    @classmethod
    def degraded(cls, reason: str, latency_ms: float | None = None, **details: Any) -> "CheckResult":
        return cls(Status.DEGRADED, reason, latency_ms, details)

    @classmethod
    def down(cls, reason: str, latency_ms: float | None = None, **details: Any) -> "CheckResult":
        return cls(Status.DOWN, reason, latency_ms, details)


@dataclass(frozen=True, slots=True)
class ResultRecord:
    """A check result as stored: which monitor, when it was due and when it ran (UTC ms)."""

    monitor_id: str
    ts_ms: int  # actual start of the check
    scheduled_ms: int  # when the scheduler meant to start it
    status: Status
    reason: str
    latency_ms: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    in_maintenance: bool = False
    # Taken while probe's own network was down ([server] connectivity): a failure then says
    # nothing about the target, so it opens nothing and counts as no data.
    offline: bool = False
    # [cluster]: the location whose check this is; "" for what the locations confirm together
    # (and for every result of a single process), which is what incidents and the page go by
    location: str = ""

    @property
    def late_ms(self) -> int:
        return self.ts_ms - self.scheduled_ms


class Impact(str, enum.Enum):
    NONE = "none"
    MINOR = "minor"
    MAJOR = "major"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _IMPACT_ORDER.index(self)


_IMPACT_ORDER = [Impact.NONE, Impact.MINOR, Impact.MAJOR, Impact.CRITICAL]

# A component's status in Statuspage's words, best first: what an operator's incident may set
# for the monitors it names (the page shows the worse of that and the monitor's own checks).
COMPONENT_STATUSES = ("operational", "under_maintenance", "degraded_performance", "partial_outage", "major_outage")


class EventKind(str, enum.Enum):
    """What happened to an incident; notifiers subscribe to these."""

    OPENED = "open"
    ESCALATED = "escalate"
    REOPENED = "reopen"
    RESOLVED = "resolve"
    UPDATED = "update"  # a person posted an update (or changed the title or impact)
    POSTMORTEM = "postmortem"  # a person published the postmortem
    EDITED = "edit"  # a person changed the title or impact (no timeline entry)
    AFFECTED = "affect"  # a monitor that depends on the incident's failed: it is listed as affected

    @property
    def on_timeline(self) -> bool:
        return self not in (EventKind.POSTMORTEM, EventKind.EDITED, EventKind.AFFECTED)


@dataclass(frozen=True, slots=True)
class Incident:
    id: int
    monitor_id: str | None  # None for incidents an operator opened by hand
    title: str
    impact: Impact
    status: str  # investigating | identified | monitoring | resolved
    started_ms: int
    resolved_ms: int | None = None
    reason: str = ""
    origin: str = "auto"  # auto (opened by the engine) | manual (opened by an operator)
    # monitor ids a manual incident names; for an automatic one, the monitors that depend on
    # its monitor and failed while it was open (they have no incident of their own meanwhile)
    affected: tuple[str, ...] = ()
    postmortem: str = ""  # markdown, once published
    postmortem_ms: int | None = None
    # (monitor id, one of COMPONENT_STATUSES but operational) set by an operator; it counts while open
    component_status: tuple[tuple[str, str], ...] = ()

    @property
    def is_open(self) -> bool:
        return self.resolved_ms is None

    @property
    def monitor_ids(self) -> tuple[str, ...]:
        """Every monitor it concerns, its own monitor first."""
        return (self.monitor_id, *self.affected) if self.monitor_id else self.affected


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    """One transition of an incident. Written to the `events` table first, then published."""

    id: int
    kind: EventKind
    at_ms: int
    incident: Incident
    reason: str = ""
    body: str | None = None  # an operator's words; None: the default text for the status
    author: str = "probe"


@dataclass(frozen=True, slots=True)
class IncidentUpdate:
    """One entry of an incident's timeline, as stored."""

    id: int
    incident_id: int
    status: str
    body: str | None  # None: the default text for the status, in the reader's language
    kind: str  # open | escalate | reopen | resolve | update
    author: str
    created_ms: int


@dataclass(frozen=True, slots=True)
class ConnectivityChange:
    """probe's own network went down (every connectivity target failed) or came back."""

    lost: bool
    since_ms: int  # when it was lost
    at_ms: int  # when this was seen
    failures: dict[str, str] = field(default_factory=dict)  # target -> why, in the round that saw it


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """One occurrence of a maintenance window (a recurring window yields one per run)."""

    id: str  # stable across restarts, e.g. "db-upgrade" or "weekly-patch@2026-11-29"
    title: str
    monitors: tuple[str, ...]  # monitor ids it covers
    start_ms: int  # UTC milliseconds
    end_ms: int
    description: str = ""
    series: str = ""  # the [[maintenance]] id it is an occurrence of; "" for one scheduled through the admin API

    def status(self, now_ms: int) -> str:
        """Statuspage's words: scheduled | in_progress | completed."""
        if now_ms < self.start_ms:
            return "scheduled"
        return "in_progress" if now_ms < self.end_ms else "completed"

    def covers(self, monitor_id: str, ts_ms: int) -> bool:
        return monitor_id in self.monitors and self.start_ms <= ts_ms < self.end_ms


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    groups: tuple[str, ...]
    requested_ms: int
    confirmed_ms: int | None

    def hears(self, groups: set[str] | None) -> bool:
        """`groups`: the public groups an item touches; None: page-wide (no public monitor named)."""
        return not self.groups or groups is None or bool(set(self.groups) & groups)
