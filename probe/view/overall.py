"""The page's overall state and each component's status: decided here once, read by the page's
banner, /api/v1/status, the Statuspage v2 `status`, webhook envelopes and badges.

A component's status is the worse of what its monitor's checks say and what an operator's open
incident set for it (`component_status`): a monitor that checks up while the operator says
"partial outage" shows a partial outage; one that checks down while the operator says
"degraded" shows down. Only an open incident's statuses count: resolving it hands the
component back to its checks. A monitor with no result yet (or none for three intervals) is
"unknown": never operational, and left out of the v2 component lists (Statuspage has no such
status) unless an operator set one.

The overall state is the worst of two readings, on Statuspage's indicator scale (none < minor <
major < critical):
- the components: all major outage -> critical; any major or partial outage -> major; any
  degraded -> minor; then, with nothing wrong, maintenance, then unknown, then operational;
- the open public incidents: the highest impact (an incident of impact none changes nothing).
Maintenance is therefore the overall state only when nothing else is wrong.
"""
from __future__ import annotations

from collections.abc import Iterable

from probe.core.models import COMPONENT_STATUSES, Impact

# The page's words for a component (status.* in i18n) <-> Statuspage's. "unknown" has no v2 word.
TO_COMPONENT = {"up": "operational", "maintenance": "under_maintenance", "degraded": "degraded_performance",
                "partial": "partial_outage", "down": "major_outage", "unknown": None}
FROM_COMPONENT = {v: k for k, v in TO_COMPONENT.items() if v}
_RANK = {status: rank for rank, status in enumerate(COMPONENT_STATUSES)}

# state -> (Statuspage indicator, Statuspage description)
STATES = {
    "operational": ("none", "All Systems Operational"),
    "unknown": ("none", "Some Systems Not Yet Checked"),
    "maintenance": ("none", "Service Under Maintenance"),
    "degraded": ("minor", "Degraded System Service"),
    "minor_outage": ("minor", "Minor Service Outage"),
    "partial_outage": ("major", "Partial System Outage"),
    "major_outage": ("critical", "Major System Outage"),
}
_LEVEL = {"none": 0, "minor": 1, "major": 2, "critical": 3}
_BY_IMPACT = {Impact.MINOR: "minor_outage", Impact.MAJOR: "partial_outage", Impact.CRITICAL: "major_outage"}


def component_status(checked: str, operator: str | None) -> str:
    """The page status shown for a monitor: the worse of its checks' (`checked`, the page's word)
    and the operator's (`operator`, a Statuspage word or None)."""
    if operator is None or operator == "operational":
        return checked
    if checked == "unknown":
        return FROM_COMPONENT[operator]
    worse = max(TO_COMPONENT[checked], operator, key=_RANK.__getitem__)
    return FROM_COMPONENT[worse]


def worst_component(statuses: Iterable[str]) -> str | None:
    """The worst of several Statuspage component statuses (None when there are none)."""
    return max(statuses, key=_RANK.__getitem__, default=None)


def overall_state(statuses: list[str], impacts: Iterable[Impact]) -> str:
    """One of STATES, from the public components' page statuses and the open public incidents' impacts."""
    by_components = _from_components(statuses)
    impact = max(impacts, key=lambda i: i.rank, default=Impact.NONE)
    by_incidents = _BY_IMPACT.get(impact)
    if by_incidents is not None and _level(by_incidents) > _level(by_components):
        return by_incidents
    return by_components


def indicator(state: str) -> tuple[str, str]:
    return STATES[state]


def _level(state: str) -> int:
    return _LEVEL[STATES[state][0]]


def _from_components(statuses: list[str]) -> str:
    if statuses and all(s == "down" for s in statuses):
        return "major_outage"
    for found, state in (("down", "partial_outage"), ("partial", "partial_outage"), ("degraded", "degraded"),
                         ("maintenance", "maintenance"), ("unknown", "unknown")):
        if found in statuses:
            return state
    return "operational"
