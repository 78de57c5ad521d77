"""Which maintenance is in effect: the config's windows (one-off or recurring) and those an
operator scheduled through the admin API (stored, so they survive a restart).

The rest of probe asks `between(start_ms, end_ms)` for the occurrences to list, and
`covers(monitor_id, ts_ms)` for each result (a result in maintenance is flagged and opens
no incident).

A cron line says when a window recurs, not that it happened: an occurrence of a config window
is listed only if it had not ended when probe first loaded the window with its present schedule
(`since`, kept in the file). When a window's schedule changes or it leaves the config, the
occurrences it had until then are kept as they were (`past`), so history stays true."""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from probe.config.maintenance import SCHEDULE_KEYS, MaintenanceConfig
from probe.core.models import MaintenanceWindow
from probe.core.units import now_ms


class Maintenance:
    def __init__(self, store, config: Callable[[], Any]) -> None:
        self.store = store
        self._config = config  # the running Config (a reload replaces it)
        self.scheduled: list[MaintenanceWindow] = []  # ad hoc windows from the admin API
        self.past: list[MaintenanceWindow] = []  # occurrences of schedules no longer in the config
        self.since: dict[str, int] = {}  # [[maintenance]] id -> since when it has had its schedule
        self.version = 0  # counts changes to `scheduled`

    async def load(self) -> None:
        self.scheduled = await self.store.maintenance_windows()
        self.past = await self.store.maintenance_past()
        await self.sync(self._config().maintenance, now_ms())

    async def sync(self, windows, now: int) -> None:
        """Record when each config window was first seen with its schedule; keep what a changed
        or removed one had begun until `now`. Called at start and before a reload applies."""
        known = await self.store.maintenance_definitions()
        definitions, past = {}, []
        for window in windows:
            definition = window.definition()
            text, since = known.pop(window.id, (None, now))
            old = json.loads(text) if text else None
            if old is not None and _schedule(old) != _schedule(definition):
                past += _begun(old, since, now)
                since = now
            definitions[window.id] = (json.dumps(definition, sort_keys=True), since)
        for text, since in known.values():  # windows that left the config
            past += _begun(json.loads(text), since, now)
        if not self.store.read_only:  # a reader beside `probe run` leaves the record to it
            await self.store.maintenance_definitions_set(definitions, known, past)
        self.since = {window_id: since for window_id, (_, since) in definitions.items()}
        self.past = sorted({w.id: w for w in self.past + past}.values(), key=lambda w: w.start_ms)

    def between(self, start_ms: int, end_ms: int) -> list[MaintenanceWindow]:
        """Occurrences of maintenance windows (config and ad hoc) that overlap [start_ms, end_ms), by start."""
        found = {}
        for config in self._config().maintenance:
            since = self.since.get(config.id, 0)  # 0: not synced (a store read without start(), as tests do)
            found.update((w.id, w) for w in config.occurrences(max(start_ms, since), end_ms))
        for window in (*self.scheduled, *self.past):
            if window.start_ms < end_ms and window.end_ms > start_ms:
                found.setdefault(window.id, window)
        return sorted(found.values(), key=lambda w: (w.start_ms, w.id))

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


def _schedule(definition: dict) -> tuple:
    return tuple(json.dumps(definition.get(key), sort_keys=True) for key in SCHEDULE_KEYS)


def _begun(definition: dict, since: int, now: int) -> list[MaintenanceWindow]:
    """The occurrences of an old definition from `since` that had begun by `now`, ended at `now` at the latest."""
    config = MaintenanceConfig.from_definition(definition)
    return [dataclasses.replace(w, end_ms=min(w.end_ms, now)) for w in config.occurrences(since, now)
            if w.start_ms < now]
