"""What the public may see, computed once per render: monitors, statuses, bars, figures.

Everything public (page, JSON APIs, Statuspage routes) is built from `PublicView`, so
the rule "private monitors appear nowhere, targets only with show_target" lives here
and nowhere else. Queries are batched over all monitors: one per rollup series and
one per availability window, whatever the number of monitors.
"""
from __future__ import annotations

import dataclasses
import functools
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from probe.core import histogram
from probe.core.models import Impact, Incident, IncidentUpdate, MaintenanceWindow, Status
from probe.core.texts import display_title
from probe.core.units import now_ms
from probe.storage import DAILY, HOURLY
from probe.view.figures import sparklines, window_figures
from probe.view.locations import LocationView, failing_from, location_views
from probe.view.overall import component_status, overall_state, worst_component
from probe.view.stats import Durations, format_availability

DAY_MS, HOUR_MS = 86_400_000, 3_600_000
MS_DIGITS = 15  # milliseconds since 1970 until the year 33658: anything longer is no time


def whole_number(raw: str, max_digits: int = MS_DIGITS) -> int | None:
    """The number in a query or path value, or None. ASCII only: str.isdigit() also takes
    "²", which int() refuses, and a number SQLite cannot hold would fail in the query."""
    if raw.isascii() and raw.isdigit() and len(raw) <= max_digits:
        return int(raw)
    return None
WINDOWS = {"24h": DAY_MS, "7d": 7 * DAY_MS, "30d": 30 * DAY_MS, "90d": 90 * DAY_MS}
BAR_DAYS = 90
STALE_AFTER_INTERVALS = 3  # a monitor whose last result is older than this many intervals is "unknown"


@dataclass(frozen=True, slots=True)
class DayCell:
    day: date
    availability: float | None
    label: str  # "99.95%" or "" when there is no data
    down_minutes: int
    degraded_minutes: int
    level: str  # up | degraded | partial | major | maint | nodata (see _level)
    incidents: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class PastDays:
    """A monitor's bar cells before today. The same object comes back render after render
    until one of those days or its incidents changes, so its HTML is built once per language."""

    cells: tuple[DayCell, ...]
    html: dict[str, str] = field(default_factory=dict)


@dataclass
class MonitorView:
    id: str
    name: str
    group: str
    description: str
    status: str  # up | degraded | partial | down | maintenance | unknown: checks and operator combined (overall.py)
    reason: str  # shown only with show_target (a reason may name the host)
    target: str | None
    last_checked_ms: int | None
    latency_ms: float | None
    uptime: dict[str, float | None]
    uptime_label: dict[str, str]
    days: list[DayCell] = field(default_factory=list)
    sparkline: list[float | None] = field(default_factory=list)
    past: PastDays | None = None  # days[:-1], memoised
    checked: str = ""  # what the checks alone say: up | degraded | down | maintenance | unknown
    locations: list[LocationView] = field(default_factory=list)  # [cluster]: each location's view
    failing_from: str = ""  # [cluster]: the locations that see it failing, by name ("Alpha and Bravo")


@dataclass
class IncidentView:
    incident: Incident
    title: str
    monitors: list[MonitorView]
    updates: list[IncidentUpdate]


@dataclass
class PublicView:
    now_ms: int
    overall: str
    monitors: list[MonitorView]
    incidents: Sequence[IncidentView]  # public incidents of the last 90 days, newest first
    maintenance: list[MaintenanceWindow]

    @property
    def groups(self) -> list[tuple[str, list[MonitorView]]]:
        order: dict[str, list[MonitorView]] = {}
        for monitor in self.monitors:
            order.setdefault(monitor.group, []).append(monitor)
        return list(order.items())

    @property
    def active_incidents(self) -> list[IncidentView]:
        if isinstance(self.incidents, IncidentViews):
            return self.incidents.open()
        return [i for i in self.incidents if i.incident.is_open]

    def monitor(self, monitor_id: str) -> MonitorView | None:
        return next((m for m in self.monitors if m.id == monitor_id), None)


def public_monitors(probe) -> list:
    return [m for m in probe.config.monitors if m.public]


def public_ids(probe) -> set[str]:
    return {m.id for m in probe.config.monitors if m.public}


def public_windows(probe, start_ms: int, end_ms: int) -> list[MaintenanceWindow]:
    """Maintenance windows as the public may see them: only those covering a public monitor,
    naming only public monitors (a window over a private service is not news to customers)."""
    ids = public_ids(probe)
    shown = []
    for window in probe.maintenance_between(start_ms, end_ms):
        monitors = tuple(m for m in window.monitors if m in ids)
        if monitors:
            shown.append(window if monitors == window.monitors else dataclasses.replace(window, monitors=monitors))
    return shown


def is_public(probe, monitor_id: str) -> bool:
    monitor = probe.config.monitor(monitor_id)
    return monitor is not None and monitor.public


async def build_view(probe, now: int | None = None, language: str = "en", figures: bool = True) -> PublicView:
    """Without `figures`, no availability, bars or sparklines: statuses and incidents only,
    which is all the Statuspage routes and the feeds read, at a fraction of the cost.

    No return to the event loop between the last read and the end: the view is one instant
    of the store, which is what lets the per-monitor memos (web/figures.py) stay exact."""
    now = now if now is not None else now_ms()
    monitors = public_monitors(probe)
    ids = [m.id for m in monitors]
    mode = probe.config.stats.maintenance
    store = probe.store
    versions = dict(store.sums.version)  # before any read (see figures.window_figures)
    shown: dict[str, tuple[dict, dict]] = {}
    bar_start = store.calendar.local_midnight(store.calendar.date_of(now) - timedelta(days=BAR_DAYS - 1))
    days = _bar_days(store.calendar, bar_start)
    # One hour more than the sparkline shows: the 24 h window's first, partial hour.
    hours = [now - now % HOUR_MS - k * HOUR_MS for k in range(24, -1, -1)]
    if figures:
        hourly = await store.cached_buckets(HOURLY, hours)
        daily = await store.cached_buckets(DAILY, [start for _, start, _ in days])
        spans = {name: (now - span, now) for name, span in WINDOWS.items()}
        shown = await window_figures(probe, ids, spans, now, mode, versions)
    incidents = await _recent_incident_items(probe, now - 90 * DAY_MS, now, language)
    windows = public_windows(probe, now - 90 * DAY_MS, now + 30 * DAY_MS)
    views = [_monitor_view(probe, m, now, shown.get(m.id), _in_maintenance(windows, m.id, now),
                           incidents.operator.get(m.id)) for m in monitors]
    by_id = {v.id: v for v in views}
    if figures:
        mids = {view.id: store.monitor_ids.get(view.id, -1) for view in views}
        lines = sparklines(store.sums, hourly[1:], hours[1], list(mids.values()), versions)
        for view in views:
            mid = mids[view.id]
            incident_spans = incidents.spans.get(view.id, ())
            view.past = _past_days(probe, mid, daily, days, mode, incident_spans)
            view.days = [*view.past.cells, _today(probe, mid, daily[-1], days[-1], now, mode, incident_spans)]
            view.sparkline = lines[mid]
    overall = overall_state([v.status for v in views], incidents.open_impacts)
    return PublicView(now, overall, views, IncidentViews(incidents.items, by_id), windows)


def neighbours(probe, view: PublicView, monitor_id: str) -> tuple[list[MonitorView], list[MonitorView]]:
    """The public monitors this one depends on directly, and those that depend on it directly."""
    config = probe.config
    monitor = config.monitor(monitor_id)
    upstream = [view.monitor(p) for p in (monitor.depends_on if monitor else ())]
    downstream = [view.monitor(m.id) for m in config.monitors if monitor_id in m.depends_on]
    return [v for v in upstream if v is not None], [v for v in downstream if v is not None]


def _monitor_view(probe, monitor, now: int, shown: tuple[dict, dict] | None, in_maintenance: bool,
                  operator: str | None) -> MonitorView:
    latest = probe.latest.get(monitor.id)
    # No result yet, or none for a while, or only failures while probe's own network was down:
    # never counted as operational, and never as an outage either.
    checked = "unknown"
    if latest is not None and not latest.offline \
            and now - latest.ts_ms <= STALE_AFTER_INTERVALS * monitor.interval * 1000:
        checked = latest.status.label
    if in_maintenance:
        checked = "maintenance"
    uptime, labels = shown if shown is not None else ({w: None for w in WINDOWS}, {w: "" for w in WINDOWS})
    return MonitorView(
        id=monitor.id, name=monitor.display_name, group=monitor.group, description=monitor.description,
        status=component_status(checked, operator), checked=checked,
        reason=latest.reason if latest and monitor.show_target else "",
        target=monitor.make_check().target() if monitor.show_target else None,
        last_checked_ms=latest.ts_ms if latest else None,
        latency_ms=latest.latency_ms if latest and latest.status is not Status.DOWN else None,
        uptime=uptime, uptime_label=labels, **_located(probe, monitor, now))


def _located(probe, monitor, now: int) -> dict:
    views = location_views(probe, monitor, now)
    return {"locations": views, "failing_from": failing_from(views)} if views else {}


def _in_maintenance(windows: list[MaintenanceWindow], monitor_id: str, now: int) -> bool:
    return bool(windows) and any(w.covers(monitor_id, now) for w in windows)


def _bar_days(calendar, bar_start: int) -> list[tuple[date, int, int]]:
    """(day, local midnight, next local midnight) for each cell: the same for every monitor."""
    day = calendar.date_of(bar_start)
    edges = [calendar.local_midnight(day + timedelta(days=k)) for k in range(BAR_DAYS + 1)]
    return [(day + timedelta(days=k), edges[k], edges[k + 1]) for k in range(BAR_DAYS)]


def _names(spans, start: int, end: int, now: int) -> tuple[str, ...]:
    """Titles of the incidents open at some time of [start, end); an open one lasts until now."""
    return tuple(title for began, resolved, title in spans
                 if began < end and (resolved if resolved is not None else now) >= start)


def _past_days(probe, mid: int, daily: list[dict], days: list[tuple[date, int, int]], mode: str,
               spans: tuple) -> PastDays:
    """The cells before today, rebuilt only when the days move (midnight), a past day's sums
    change (a late result), or the monitor's incidents change. For a past day an open incident
    counts as lasting past it, so `now` plays no part and the memo holds."""
    sums = probe.store.sums
    memo = sums.derived.setdefault("past_days", {})
    key = (days[0][1], sums.past_version.get(mid, 0), spans, mode)
    hit = memo.get(mid)
    if hit is not None and hit[0] == key:
        return hit[1]
    cells = tuple(_cell(day, _five(entry.get(mid)), mode, _names(spans, start, end, 2**62))
                  for entry, (day, start, end) in zip(daily, days[:-1]))
    past = PastDays(cells)
    memo[mid] = (key, past)
    return past


def _today(probe, mid: int, entry: dict, day: tuple[date, int, int], now: int, mode: str, spans: tuple) -> DayCell:
    """Today's cell: its rollup plus the newest result's open interval."""
    date_, start, end = day
    return _cell(date_, probe.stats.completed(mid, _five(entry.get(mid)), [], start, end, now), mode,
                 _names(spans, start, end, now))


def _five(values: list | None) -> tuple:
    return tuple(values[:5]) if values is not None else (0, 0, 0, 0, 0)


@functools.lru_cache(maxsize=65_536)
def _cell(day: date, sums: tuple, mode: str, names: tuple[str, ...]) -> DayCell:
    """A cell is a pure function of its day's sums: past days, the same render after render,
    are computed once (100 monitors x 90 days would otherwise dominate a cold render)."""
    d = Durations(*sums)
    value = d.availability(mode)
    down = d.downtime_ms(mode)
    return DayCell(day, value, format_availability(value, down) if value is not None else "",
                   round(down / 60_000), round(d.degraded_ms / 60_000), _level(value, down, d.degraded_ms, d.maint_ms),
                   names)


LONG_DOWN_MS = 3_600_000  # a day down this long or longer is red; less, orange


def _level(value: float | None, down_ms: float, degraded_ms: float, maint_ms: float) -> str:
    """The cell's colour, by the worst status of the day and how long it lasted: down an hour or
    more (major), down less (partial), degraded (degraded time counts as available, but the bar
    shows it), up; a day of maintenance alone is maintenance; grey only for a day with no data."""
    if value is None:
        return "maint" if maint_ms > 0 else "nodata"
    if down_ms > 0:
        return "major" if down_ms >= LONG_DOWN_MS else "partial"
    return "degraded" if degraded_ms > 0 else "up"


def percentiles(rows: list[tuple], qs=(0.5, 0.95)) -> list[tuple[int, list[float | None]]]:
    """(bucket start, [p50, p95]) for each rollup row with latencies."""
    out = []
    for row in rows:
        counts = histogram.decode(row[8])
        out.append((row[0], [histogram.percentile(counts, q) for q in qs] if counts else [None] * len(qs)))
    return out


@dataclass(frozen=True, slots=True)
class _IncidentItem:
    incident: Incident
    title: str
    monitor_ids: tuple[str, ...]  # the public monitors it names
    updates: list[IncidentUpdate]


@dataclass(frozen=True)
class _RecentItems:
    """The public incidents of a 90-day span and each monitor's (start, resolved, title) of
    them, the same for every `now` in [since, until) with the same incidents and config."""

    key: tuple
    since: int
    until: int
    items: tuple[_IncidentItem, ...]
    spans: dict[str, tuple[tuple[int, int | None, str], ...]]
    open_impacts: tuple[Impact, ...] = ()  # of the open ones
    operator: dict[str, str] = field(default_factory=dict)  # monitor -> the worst status open incidents set


class IncidentViews(Sequence):
    """The render's incident views, made when read. A page reads only the open ones, yet 90
    days can hold thousands (13,000 in benchmark 3): making them all was a tenth of a render."""

    def __init__(self, items: tuple[_IncidentItem, ...], monitors: dict[str, MonitorView]) -> None:
        self._items, self._monitors = items, monitors
        self._made: dict[int, IncidentView] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[k] for k in range(*index.indices(len(self._items)))]
        index = range(len(self._items))[index]  # negative indices; IndexError past the end
        view = self._made.get(index)
        if view is None:
            item = self._items[index]
            view = IncidentView(item.incident, item.title, [self._monitors[m] for m in item.monitor_ids
                                                           if m in self._monitors], item.updates)
            self._made[index] = view
        return view

    def open(self) -> list[IncidentView]:
        return [self[k] for k, item in enumerate(self._items) if item.incident.is_open]

    def started_since(self, start_ms: int) -> list[IncidentView]:
        """Those that started at or after `start_ms`, newest first (views made for those only)."""
        return [self[k] for k, item in enumerate(self._items) if item.incident.started_ms >= start_ms]


_ITEMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # store -> _RecentItems


async def _recent_incident_items(probe, start: int, now: int, language: str) -> _RecentItems:
    """The public incidents open at some time in [start, now], newest first, made once per change
    of incidents, config or language, and again only when `now` reaches an incident's start or
    passes the end of one by 90 days (start is now - 90 days)."""
    found, updates = await _hour_incidents(probe.store, start)
    key = (probe.store.incidents_version, start - start % HOUR_MS, probe.config, language)
    hit = _ITEMS.get(probe.store)
    if hit is not None and hit.key == key and hit.since <= now < hit.until:
        return hit
    hit = _recent_items(probe, found, updates, start, now, language, key)
    _ITEMS[probe.store] = hit
    return hit


def _recent_items(probe, found, updates, start: int, now: int, language: str, key: tuple) -> _RecentItems:
    names = {m.id: m.display_name for m in public_monitors(probe)}
    ids = set(names)
    shown = [i for i in found if i.started_ms < now + 1 and (i.resolved_ms is None or i.resolved_ms >= start)]
    until = min([i.started_ms for i in found if i.started_ms >= now + 1]
                + [i.resolved_ms + (now - start) + 1 for i in shown if i.resolved_ms is not None], default=2**62)
    items, spans = [], {}
    for incident in shown[:1000]:
        if not incident_is_public(ids, incident):
            continue
        affected = tuple(m for m in incident.monitor_ids if m in names)
        title = display_title(incident, names[affected[0]] if affected else "", language)
        items.append(_IncidentItem(incident, title, affected, updates[incident.id]))
        for monitor_id in incident.monitor_ids:
            spans.setdefault(monitor_id, []).append((incident.started_ms, incident.resolved_ms, title))
    still_open = [item for item in items if item.incident.is_open]
    return _RecentItems(key, now, until, tuple(items), {m: tuple(v) for m, v in spans.items()},
                        tuple(item.incident.impact for item in still_open), _operator_statuses(still_open))


def _operator_statuses(items: list[_IncidentItem]) -> dict[str, str]:
    """Each public monitor's status as open incidents set it: the worst, when several do."""
    found: dict[str, list[str]] = {}
    for item in items:
        for monitor_id, status in item.incident.component_status:
            if monitor_id in item.monitor_ids:
                found.setdefault(monitor_id, []).append(status)
    return {monitor_id: worst_component(statuses) for monitor_id, statuses in found.items()}


_HOUR_INCIDENTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # store -> (key, incidents, updates)


async def _hour_incidents(store, start: int) -> tuple[list[Incident], dict[int, list[IncidentUpdate]]]:
    """Incidents open at some time since the start of `start`'s hour, newest first, with their
    updates: read from the file once an hour and again whenever the writer commits an incident
    change; readers cut them to their exact span."""
    key = (store.incidents_version, start - start % HOUR_MS)
    hit = _HOUR_INCIDENTS.get(store)
    if hit is None or hit[0] != key:
        found = await store.incidents_between(key[1], 2**62, limit=2000)
        hit = key, found, await store.incident_updates([i.id for i in found])
        _HOUR_INCIDENTS[store] = hit
    return hit[1], hit[2]


async def public_incidents(probe, limit: int, before_ms: int | None = None) -> list[Incident]:
    """The newest `limit` public incidents started before `before_ms`. Private ones are skipped
    by reading on, a batch at a time, so a page is short only at the end of history."""
    ids, found, seen = public_ids(probe), [], set()
    cursor = before_ms if before_ms is not None else 2**62
    while len(found) < limit:
        batch = [i for i in await probe.store.incidents(limit=limit * 3, before_ms=cursor) if i.id not in seen]
        if not batch:
            break
        seen.update(i.id for i in batch)
        found += [i for i in batch if incident_is_public(ids, i)]
        cursor = batch[-1].started_ms + 1  # ties with the last one read: `seen` skips the repeats
    return found[:limit]


def incident_is_public(public_ids: set[str], incident: Incident) -> bool:
    # An automatic incident is as public as its monitor; an operator's incident was
    # written for the page, but it names only the public monitors it affects, and one about
    # private monitors alone stays private (as a maintenance window over them does).
    if incident.monitor_id is not None:
        return incident.monitor_id in public_ids
    return not incident.affected or any(m in public_ids for m in incident.affected)
