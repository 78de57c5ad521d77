"""Which monitors depend on which (`depends_on`), and what that means for incidents.

While a monitor that another depends on, directly or through others, is failing (an open
incident, or bad checks on the way to one), the dependent's failures open no incident of
its own: the incident of the monitor it depends on speaks for it, and lists it as affected.
The config guarantees there is no cycle.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class Dependencies:
    def __init__(self, monitors: Iterable[Any] = ()) -> None:
        self.parents: dict[str, tuple[str, ...]] = {}
        self.children: dict[str, list[str]] = {}
        for monitor in monitors:
            self.parents[monitor.id] = tuple(monitor.depends_on)
            for parent in monitor.depends_on:
                self.children.setdefault(parent, []).append(monitor.id)

    def ancestors(self, monitor_id: str) -> list[str]:
        """Every monitor it depends on, nearest first."""
        return _walk(monitor_id, self.parents)

    def descendants(self, monitor_id: str) -> list[str]:
        """Every monitor that depends on it, nearest first."""
        return _walk(monitor_id, self.children)

    def held(self, monitor_id: str, trackers: dict) -> bool:
        """Is a monitor it depends on failing? Then its own failures open nothing."""
        return any(_failing(trackers.get(a)) for a in self.ancestors(monitor_id))

    def speaking_for(self, monitor_id: str, trackers: dict) -> str | None:
        """The monitor whose open incident lists this one: among those it depends on with an open
        incident, the nearest whose own ancestors have none (the cause, not another symptom)."""
        open_ = [a for a in self.ancestors(monitor_id) if _open(trackers.get(a))]
        for candidate in open_:
            if not any(_open(trackers.get(a)) for a in self.ancestors(candidate)):
                return candidate
        return None


def _walk(start: str, edges: dict) -> list[str]:
    found: dict[str, None] = {}
    frontier = list(edges.get(start, ()))
    while frontier:
        following = []
        for node in frontier:
            if node not in found and node != start:
                found[node] = None
                following += edges.get(node, ())
        frontier = following
    return list(found)


def _failing(tracker) -> bool:
    return tracker is not None and tracker.failing


def _open(tracker) -> bool:
    return tracker is not None and tracker.open is not None
