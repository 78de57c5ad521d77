"""Maintenance windows: [[maintenance]] in the config, one-off or recurring (cron, parsed
by APScheduler's CronTrigger in the window's time zone, so DST changes are its problem).

The rest of probe sees maintenance only through `MaintenanceWindow` occurrences and
`Probe.maintenance_between(start_ms, end_ms)`: the page, the APIs and the feeds list
them; the service asks `Probe.in_maintenance(monitor_id, ts_ms)` for each result.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from probe.config.schema import Duration, load, load_entries, show
from probe.core.models import MaintenanceWindow


@dataclass(frozen=True)
class MaintenanceConfig:
    """One [[maintenance]] entry: a single window (`start` + `duration` or `end`) or a
    recurring one (`cron` + `duration`), in `timezone` (default: the page's)."""

    id: str
    title: str
    monitors: tuple[str, ...]
    description: str = ""
    start: Any = None  # a TOML date-time (local ones are in `timezone`) or ISO 8601 text
    end: Any = None
    duration: Duration | None = None
    cron: str | None = None  # five fields, e.g. "0 2 * * sun": Sundays at 02:00 in `timezone`
    timezone: str = ""

    def problems(self):
        if not WINDOW_ID.match(self.id):
            yield "id", f"must match [a-z0-9][a-z0-9_-]* (got {show(self.id)})"
        if not self.monitors:
            yield "monitors", "needs at least one monitor id"
        try:
            tz = ZoneInfo(self.timezone or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            yield "timezone", f"is not a known IANA time zone (got {show(self.timezone)})"
            return
        if (self.start is None) == (self.cron is None):
            yield "start", "give either start (one window) or cron (a recurring one)"
            return
        if self.cron is not None:
            if self.duration is None or self.end is not None:
                yield "duration", "a cron window needs duration (and no end)"
            try:
                CronTrigger.from_crontab(self.cron, timezone=tz)
            except ValueError as exc:
                yield "cron", f"is not a cron schedule ({exc}) (got {show(self.cron)})"
            return
        for key in ("start", "end"):
            value = getattr(self, key)
            if value is not None and _instant(value, tz) is None:
                yield key, f"must be a date-time such as 2026-12-01T02:00:00+01:00 (got {show(value)})"
        if (self.duration is None) == (self.end is None):
            yield "duration", "give either duration or end"
        elif self.duration is not None and self.duration <= 0:
            yield "duration", "must be greater than 0"
        elif self.end is not None and (_instant(self.end, tz) or 0) <= (_instant(self.start, tz) or 0):
            yield "end", "must be after start"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone or "UTC")

    def occurrences(self, start_ms: int, end_ms: int) -> list[MaintenanceWindow]:
        """The runs of this window that overlap [start_ms, end_ms), oldest first."""
        if self.cron is None:
            lo = _instant(self.start, self.tz)
            hi = _instant(self.end, self.tz) if self.end is not None else lo + int(self.duration * 1000)
            return [self._window(self.id, lo, hi)] if lo < end_ms and hi > start_ms else []
        return self._runs(start_ms, end_ms)

    def _runs(self, start_ms: int, end_ms: int) -> list[MaintenanceWindow]:
        trigger = CronTrigger.from_crontab(self.cron, timezone=self.tz)
        span = int(self.duration * 1000)
        # A run that began up to `duration` before the range still overlaps it.
        fire = _next_fire(trigger, datetime.fromtimestamp((start_ms - span) / 1000 - 0.001, timezone.utc))
        found = []
        while fire is not None and len(found) < MAX_RUNS:
            lo = int(fire.timestamp() * 1000)
            if lo >= end_ms:
                break
            if lo + span > start_ms:
                found.append(self._window(f"{self.id}@{fire.strftime('%Y-%m-%dT%H:%M')}", lo, lo + span))
            fire = _next_fire(trigger, fire)
        return found

    def _window(self, window_id: str, lo: int, hi: int) -> MaintenanceWindow:
        return MaintenanceWindow(window_id, self.title, self.monitors, lo, hi, self.description, self.id)

    def definition(self) -> dict:
        """What the window is, as plain JSON data: enough to compute its occurrences again later."""
        return {"id": self.id, "title": self.title, "monitors": list(self.monitors), "description": self.description,
                "start": _text(self.start), "end": _text(self.end), "duration": self.duration, "cron": self.cron,
                "timezone": self.timezone}

    @classmethod
    def from_definition(cls, data: dict) -> "MaintenanceConfig":
        return cls(**(data | {"monitors": tuple(data["monitors"])}))


SCHEDULE_KEYS = ("monitors", "start", "end", "duration", "cron", "timezone")  # what moves or changes occurrences


def _text(value: Any) -> str | None:
    """A TOML date-time as ISO 8601 text (a local one stays local: `_instant` reads it in the window's zone)."""
    return None if value is None else value.isoformat() if isinstance(value, datetime) else str(value)


WINDOW_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
MAX_RUNS = 2000  # a minutely cron over a year is a mistake, not a reason to hang the page


def _next_fire(trigger: CronTrigger, after: datetime) -> datetime | None:
    """The first run strictly after `after`. On the hour a DST change repeats, APScheduler 3
    can answer the same instant again; step past it rather than loop."""
    search = after + timedelta(seconds=1)
    for _ in range(3):
        fire = trigger.get_next_fire_time(None, search)
        if fire is None or fire > after:
            return fire
        search += timedelta(hours=1)
    return None


def _instant(value: Any, tz: ZoneInfo) -> int | None:
    """UTC milliseconds of a TOML date-time or ISO 8601 text; a local time is in `tz`."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return int(value.timestamp() * 1000)


def parse_maintenance(items: Any, monitor_ids: set[str], problems, timezone_name: str = "UTC"
                      ) -> tuple[MaintenanceConfig, ...]:
    """[[maintenance]] -> windows, one problem line per mistake, naming the window and key."""
    def load_one(table: dict, place: str) -> MaintenanceConfig | None:
        config = load(MaintenanceConfig, {"timezone": timezone_name} | table, problems, place)
        for monitor_id in config.monitors if config else ():
            if monitor_id not in monitor_ids:
                problems.add(place, "monitors", f"names no [[monitors]] entry (got {show(monitor_id)})")
        return config

    return load_entries(items, "maintenance", problems, load_one)
