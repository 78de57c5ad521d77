"""probe's own JSON API (/api/v1/...), public part. Errors: {"error": ..., "status": ...}."""
from __future__ import annotations

import json
from datetime import datetime

from aiohttp import web

from probe.core.units import iso_utc, now_ms
from probe.view import maintenance as maintenances
from probe.view import public
from probe.view.statuspage import COMPONENT_STATUS, INDICATOR
from probe.web.keys import PROBE

MAX_RESULTS = 5000
DAY_MS = 86_400_000


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/status", status)
    app.router.add_get("/api/v1/monitors/{id}", monitor)
    app.router.add_get("/api/v1/monitors/{id}/results", results)
    app.router.add_get("/api/v1/incidents", incidents)
    app.router.add_get("/api/v1/maintenance", maintenance)


def _probe(request):
    return request.app[PROBE]


def _json(data, max_age: int = 5) -> web.Response:
    return web.Response(text=json.dumps(data, ensure_ascii=False), content_type="application/json",
                        headers={"Cache-Control": f"public, max-age={max_age}"})


def monitor_json(m: public.MonitorView) -> dict:
    doc = {"id": m.id, "name": m.name, "group": m.group, "status": m.status,
           "component_status": COMPONENT_STATUS[m.status], "checked_status": m.checked,
           "last_checked_at": iso_utc(m.last_checked_ms),
           "latency_ms": None if m.latency_ms is None else round(m.latency_ms, 3),
           "uptime": {w: None if v is None else round(v * 100, 4) for w, v in m.uptime.items()},
           "uptime_display": m.uptime_label}
    if m.target is not None:
        doc["target"] = m.target
    return doc


def locations_json(m: public.MonitorView) -> dict:
    """[cluster] Each location's view of the monitor, by location id."""
    return {v.id: {"name": v.name, "status": v.status, "last_checked_at": iso_utc(v.checked_ms),
                   "latency_ms": None if v.latency_ms is None else round(v.latency_ms, 3)} for v in m.locations}


async def status(request: web.Request) -> web.Response:
    probe = _probe(request)
    view = await public.build_view(probe, language=probe.config.page.language)
    indicator, description = INDICATOR[view.overall]
    return _json({"status": view.overall, "indicator": indicator, "description": description,
                  "updated_at": iso_utc(view.now_ms),
                  "monitors": [monitor_json(m) for m in view.monitors]})


def _public_monitor_id(request: web.Request) -> str:
    monitor_id = request.match_info["id"]
    if not public.is_public(_probe(request), monitor_id):
        raise web.HTTPNotFound(text="monitor not found")
    return monitor_id


async def monitor(request: web.Request) -> web.Response:
    monitor_id = _public_monitor_id(request)
    probe = _probe(request)
    view = await public.build_view(probe, language=probe.config.page.language)
    return _json(monitor_detail_json(view.monitor(monitor_id)))


def monitor_detail_json(m: public.MonitorView) -> dict:
    """/api/v1/monitors/{id}: the monitor with its 90 days."""
    doc = monitor_json(m)
    doc["daily"] = [{"date": c.day.isoformat(), "uptime": None if c.availability is None
                     else round(c.availability * 100, 4), "down_minutes": c.down_minutes,
                     "incidents": c.incidents} for c in m.days]
    if m.locations:  # [cluster]
        doc["locations"] = locations_json(m)
        doc["failing_from"] = m.failing_from or None
    return doc


async def results(request: web.Request) -> web.Response:
    monitor_id = _public_monitor_id(request)
    now = now_ms()
    since = _time_param(request, "since", now - DAY_MS)
    until = _time_param(request, "until", now + 1)
    limit = _int_param(request, "limit", 500, 1, MAX_RESULTS)
    records = await _probe(request).store.results(monitor_id, since, until, limit=limit, newest_first=True)
    show_reason = _probe(request).config.monitor(monitor_id).show_target
    return _json({"monitor": monitor_id, "results": [
        {"time": iso_utc(r.ts_ms), "status": r.status.label,
         "latency_ms": None if r.latency_ms is None else round(r.latency_ms, 3),
         "reason": r.reason if show_reason else None, "maintenance": r.in_maintenance,
         "offline": r.offline} for r in records]})


async def incidents(request: web.Request) -> web.Response:
    probe = _probe(request)
    limit = _int_param(request, "limit", 20, 1, 100)
    before = _time_param(request, "before", 2**62)
    found = await public.public_incidents(probe, limit, before)
    updates = await probe.store.incident_updates([i.id for i in found])
    names = {m.id: m.display_name for m in public.public_monitors(probe)}
    from probe.core.texts import display_title, update_body
    language = probe.config.page.language
    items = []
    for inc in found:
        monitors = [m for m in inc.monitor_ids if m in names]
        items.append({
            "id": inc.id, "title": display_title(inc, names.get(monitors[0], "") if monitors else "", language),
            "monitors": monitors, "impact": inc.impact.value, "status": inc.status,
            "started_at": iso_utc(inc.started_ms), "resolved_at": iso_utc(inc.resolved_ms),
            "postmortem": inc.postmortem or None,
            "updates": [{"status": u.status, "body": u.body or update_body(u.status, u.kind, language),
                         "created_at": iso_utc(u.created_ms)} for u in updates[inc.id]]})
    next_before = found[-1].started_ms if len(found) == limit else None
    return _json({"incidents": items, "next": f"/api/v1/incidents?before={next_before}&limit={limit}"
                  if next_before else None})


async def maintenance(request: web.Request) -> web.Response:
    probe = _probe(request)
    now = now_ms()
    windows = public.public_windows(probe, now - 90 * DAY_MS, now + 90 * DAY_MS)  # not those of private monitors alone
    language = probe.config.page.language
    return _json({"maintenance": [
        {"id": w.id, "title": w.title, "description": w.description, "status": maintenances.state(probe, w, now),
         "monitors": list(w.monitors), "start": iso_utc(w.start_ms), "end": iso_utc(w.end_ms),
         "window": w.series or w.id, "rule": maintenances.rule(probe, w, language) or None}
        for w in windows]})


def _time_param(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if public.whole_number(raw) is not None:
        return int(raw)
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an ISO 8601 time or milliseconds since 1970") from None
    if parsed.tzinfo is None:
        raise web.HTTPBadRequest(text=f"{name} needs a UTC offset, e.g. 2026-11-24T06:00:00Z")
    return int(parsed.timestamp() * 1000)


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    number = public.whole_number(raw)
    if number is None or not low <= number <= high:
        raise web.HTTPBadRequest(text=f"{name} must be a whole number from {low} to {high}")
    return number
