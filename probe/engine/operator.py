"""What operators do to incidents: open one by hand, post updates, retitle, publish a postmortem.

Every change is an IncidentEvent that goes through the store's single writer, like the
engine's transitions, so the page, the APIs, the feeds and the notifiers see it in order.
The admin API (web/admin.py) and the `probe incident` CLI (through that API) call this.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from probe.core.models import COMPONENT_STATUSES, EventKind, Impact, Incident, IncidentEvent
from probe.core.units import now_ms

STATUSES = ("investigating", "identified", "monitoring", "resolved")
IMPACTS = tuple(i.value for i in Impact)
MAX_TITLE, MAX_BODY, MAX_POSTMORTEM = 200, 10_000, 100_000

class OperatorError(Exception):
    """A request the operator must change; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


@dataclass(frozen=True)
class NewIncident:
    title: str = ""
    impact: str = "major"
    monitors: tuple[str, ...] = ()
    status: str = "investigating"
    body: str | None = None
    component_status: tuple[tuple[str, str], ...] = ()  # (monitor id, Statuspage component status)


class Operator:
    def __init__(self, probe) -> None:
        self.probe = probe

    async def open(self, request: NewIncident, author: str = "operator") -> Incident:
        _check_text("title", request.title, MAX_TITLE, required=True)
        _check_text("body", request.body, MAX_BODY)
        _check_choice("impact", request.impact, IMPACTS)
        _check_choice("status", request.status, STATUSES[:-1])
        unknown = [m for m in request.monitors if m not in self.probe.monitors]
        if unknown:
            raise OperatorError(f"unknown monitor {unknown[0]!r}")
        self._check_component_status(request.component_status)
        at = now_ms()
        named = (*request.monitors, *(m for m, _ in request.component_status))
        incident = Incident(id=self.probe.store.allocate_id("incidents"), monitor_id=None,
                            title=request.title.strip(), impact=Impact(request.impact), status=request.status,
                            started_ms=at, origin="manual", affected=tuple(dict.fromkeys(named)),
                            component_status=merged_status((), request.component_status))
        await self._write(incident, EventKind.OPENED, at, request.body, author)
        return incident

    async def update(self, incident_id: int, status: str, body: str | None = None,
                     author: str = "operator", component_status: tuple[tuple[str, str], ...] = ()) -> Incident:
        _check_choice("status", status, STATUSES)
        _check_text("body", body, MAX_BODY)
        self._check_component_status(component_status)
        incident = await self._current(incident_id)
        if not incident.is_open:
            raise OperatorError(f"incident {incident_id} is already resolved", 409)
        at = now_ms()
        changed = dataclasses.replace(_with_status(incident, component_status), status=status,
                                      resolved_ms=at if status == "resolved" else None)
        kind = EventKind.RESOLVED if status == "resolved" else EventKind.UPDATED
        await self._write(changed, kind, at, body, author)
        return changed

    async def edit(self, incident_id: int, title: str | None = None, impact: str | None = None,
                   author: str = "operator", component_status: tuple[tuple[str, str], ...] = ()) -> Incident:
        """Give an incident a human title (automatic ones start with a generated one), a new impact,
        or set the status of the components it names."""
        if title is None and impact is None and not component_status:
            raise OperatorError("nothing to change: give title, impact or component_status")
        if title is not None:
            _check_text("title", title, MAX_TITLE, required=True)
        if impact is not None:
            _check_choice("impact", impact, IMPACTS)
        self._check_component_status(component_status)
        incident = await self._current(incident_id)
        changed = dataclasses.replace(_with_status(incident, component_status),
                                      title=title.strip() if title is not None else incident.title,
                                      impact=Impact(impact) if impact is not None else incident.impact)
        await self._write(changed, EventKind.EDITED, now_ms(), None, author)
        return changed

    async def postmortem(self, incident_id: int, body: str, author: str = "operator") -> Incident:
        _check_text("body", body, MAX_POSTMORTEM, required=True)
        incident = await self._current(incident_id)
        if incident.is_open:
            raise OperatorError(f"incident {incident_id} is still open: resolve it before the postmortem", 409)
        at = now_ms()
        changed = dataclasses.replace(incident, postmortem=body, postmortem_ms=at)
        await self._write(changed, EventKind.POSTMORTEM, at, None, author)
        return changed

    def _check_component_status(self, pairs: tuple[tuple[str, str], ...]) -> None:
        for monitor_id, status in pairs:
            if monitor_id not in self.probe.monitors:
                raise OperatorError(f"component_status: unknown monitor {monitor_id!r}")
            _check_choice(f"component_status of {monitor_id}", status, COMPONENT_STATUSES)

    async def _current(self, incident_id: int) -> Incident:
        store = self.probe.store
        await store.flush()  # what the engine decided a moment ago is in the file
        incident = self.probe.engine.tracked(incident_id) or await store.incident(incident_id)
        if incident is None:
            raise OperatorError("incident not found", 404)
        # The engine may have moved on while we read: its copy wins.
        return self.probe.engine.tracked(incident_id) or incident

    async def _write(self, incident: Incident, kind: EventKind, at: int, body: str | None,
                     author: str) -> None:
        self.probe.engine.amend(incident)
        event = IncidentEvent(id=self.probe.store.allocate_id("events"), kind=kind, at_ms=at,
                              incident=incident, body=body.strip() if body else None, author=author)
        self.probe.store.submit_events([event])
        await self.probe.store.flush()


def merged_status(held: tuple[tuple[str, str], ...], changes: tuple[tuple[str, str], ...]
                  ) -> tuple[tuple[str, str], ...]:
    """The component statuses an incident holds after `changes`: a later one for the same monitor
    wins, and "operational" clears it (the monitor's own checks speak for it again)."""
    statuses = dict(held) | dict(changes)
    return tuple((m, s) for m, s in statuses.items() if s != "operational")


def _with_status(incident: Incident, changes: tuple[tuple[str, str], ...]) -> Incident:
    """The incident with the operator's component statuses applied. An automatic incident is about
    its own monitor only; a manual one comes to name every monitor it sets a status for."""
    if not changes:
        return incident
    if incident.monitor_id is not None:
        others = [m for m, _ in changes if m != incident.monitor_id]
        if others:
            raise OperatorError(f"component_status: this automatic incident is about {incident.monitor_id!r} "
                                f"only (got {others[0]!r})")
    affected = incident.affected if incident.monitor_id else tuple(dict.fromkeys(
        (*incident.affected, *(m for m, _ in changes))))
    return dataclasses.replace(incident, affected=affected,
                               component_status=merged_status(incident.component_status, changes))


def _check_text(name: str, value: str | None, limit: int, required: bool = False) -> None:
    if value is None or not value.strip():
        if required:
            raise OperatorError(f"{name} is required")
        return
    if len(value) > limit:
        raise OperatorError(f"{name} is too long ({len(value)} characters; at most {limit})")


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise OperatorError(f"{name} must be one of {', '.join(allowed)} (got {value!r})")
