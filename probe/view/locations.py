"""[cluster] A monitor as each of its locations sees it, for the monitor page and v1.

Each location's view is its newest result if at most two intervals old (the rule confirmation
goes by, engine/confirmation.py); older, or taken while that instance's own network was down, it
is "no data", which never reads as up. Without [cluster] there are no locations to show.
"""
from __future__ import annotations

from dataclasses import dataclass

from probe.config.cluster import monitor_locations
from probe.core.models import Status

STALE_AFTER_INTERVALS = 2


@dataclass(frozen=True, slots=True)
class LocationView:
    id: str
    name: str  # as the page shows it
    status: str  # up | degraded | down | no data
    latency_ms: float | None
    checked_ms: int | None


def location_views(probe, monitor, now: int) -> list[LocationView]:
    cluster = probe.config.cluster
    if cluster is None:
        return []
    newest = probe.location_latest(monitor.id)
    views = []
    for location in monitor_locations(monitor, cluster):
        record = newest.get(location)
        fresh = record is not None and not record.offline \
            and now - record.ts_ms <= STALE_AFTER_INTERVALS * monitor.interval * 1000
        views.append(LocationView(
            location, cluster.names.get(location, location), record.status.label if fresh else "no data",
            record.latency_ms if fresh and record.status is not Status.DOWN else None,
            record.ts_ms if record is not None else None))
    return views


def failing_from(views: list[LocationView]) -> str:
    """'Alpha', 'Alpha and Bravo', 'Alpha, Bravo and Charlie': where the monitor is seen failing,
    whether or not enough locations confirm it."""
    names = [v.name for v in views if v.status in ("down", "degraded")]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]
