"""Which maintenance is in effect: the config's windows (one-off or recurring) and those an
operator scheduled through the admin API (stored, so they survive a restart).

The rest of probe asks `between(start_ms, end_ms)` for the occurrences to list, and
`covers(monitor_id, ts_ms)` for each result (a result in maintenance is flagged and opens
no incident)."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from probe.core.models import MaintenanceWindow
from probe.core.units import now_ms


class Maintenance:
    def __init__(self, store, config: Callable[[], Any]) -> None:
        self.store = store
        self._config = config  # the running Config (a reload replaces it)
        self.scheduled: list[MaintenanceWindow] = []  # ad hoc windows from the admin API
        self.version = 0  # counts changes to `scheduled`

    async def load(self) -> None:
        self.scheduled = await self.store.maintenance_windows()

    def between(self, start_ms: int, end_ms: int) -> list[MaintenanceWindow]:
        """Occurrences of maintenance windows (config and ad hoc) that overlap [start_ms, end_ms), by start."""
        found = [w for c in self._config().maintenance for w in c.occurrences(start_ms, end_ms)]
        found += [w for w in self.scheduled if w.start_ms < end_ms and w.end_ms > start_ms]
        return sorted(found, key=lambda w: (w.start_ms, w.id))

    def covers(self, monitor_id: str, ts_ms: int) -> bool:
        """Was this monitor in a maintenance window at ts_ms? Asked once per result."""
        if any(w.covers(monitor_id, ts_ms) for w in self.scheduled):
            return True
        return any(w.covers(monitor_id, ts_ms) for c in self._config().maintenance if monitor_id in c.monitors
                   for w in c.occurrences(ts_ms, ts_ms + 1))

    async def schedule(self, window: MaintenanceWindow, author: str) -> None:
        await self.store.maintenance_add(window, author, now_ms())
        self.scheduled.append(window)
        self.version += 1

    async def cancel(self, window: MaintenanceWindow, now: int) -> MaintenanceWindow | None:
        """A window not yet begun disappears; one in progress ends now (its past stays true)."""
        end = now if window.start_ms <= now < window.end_ms else window.start_ms
        await self.store.maintenance_cancel(window.id, now, end)
        self.scheduled.remove(window)
        self.version += 1
        if end > window.start_ms:
            ended = dataclasses.replace(window, end_ms=end)
            self.scheduled.append(ended)
            return ended
        return None
