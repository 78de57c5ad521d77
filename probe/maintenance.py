"""Maintenance windows: [[maintenance]] in the config (issue 5 fills this in).

The rest of probe sees maintenance only through `MaintenanceWindow` occurrences and
`Probe.maintenance_between(start_ms, end_ms)`: the page, the APIs and the feeds list
them; the service asks `Probe.in_maintenance(monitor_id, ts_ms)` for each result.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """One occurrence of a maintenance window (a recurring window yields one per run)."""

    id: str  # stable across restarts, e.g. "db-upgrade" or "weekly-patch@2026-11-29"
    title: str
    monitors: tuple[str, ...]  # monitor ids it covers
    start_ms: int  # UTC milliseconds
    end_ms: int
    description: str = ""

    def status(self, now_ms: int) -> str:
        """Statuspage's words: scheduled | in_progress | completed."""
        if now_ms < self.start_ms:
            return "scheduled"
        return "in_progress" if now_ms < self.end_ms else "completed"

    def covers(self, monitor_id: str, ts_ms: int) -> bool:
        return monitor_id in self.monitors and self.start_ms <= ts_ms < self.end_ms


def parse_maintenance(items: Any, monitor_ids: set[str], problems) -> tuple[Any, ...]:
    """[[maintenance]] -> windows, one problem line per mistake. Not supported yet."""
    if not isinstance(items, list):
        problems.add("", "maintenance", "must be an array of tables ([[maintenance]])")
        return ()
    for index, _ in enumerate(items):
        problems.add(f"maintenance[{index}]", None, "maintenance windows are not supported yet")
    return ()
