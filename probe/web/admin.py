"""The admin API: /api/v1/admin/..., for operators and the `probe incident` CLI.

It exists only when `[server] admin_token` is set. The token is compared in constant
time and always accepted; an address that keeps failing is slowed to one attempt a second
(TokenGuard), so the token cannot be guessed by brute force and the operator is never
locked out.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import time
from datetime import datetime

from aiohttp import web

from probe.core.addresses import AddressError, normal_address
from probe.core.models import Incident, IncidentUpdate, MaintenanceWindow
from probe.core.texts import display_title
from probe.core.units import iso_utc, now_ms, parse_duration
from probe.core.window import SlidingWindow
from probe.engine.operator import NewIncident, Operator, OperatorError
from probe.view import maintenance
from probe.view.public import whole_number
from probe.web.clients import client_address

FAILURES_ALLOWED, FAILURE_WINDOW_S = 10, 60.0
SLOW_S = 1.0  # past the limit: one attempt a second per client address
OPERATOR = web.AppKey("operator", Operator)
GUARD = web.AppKey("admin_guard", "TokenGuard")


class TokenGuard:
    """The right token is always accepted. Wrong ones are counted per client address; past
    FAILURES_ALLOWED a minute, that address's attempts are answered one at a time, SLOW_S
    apart (wrong ones with 429), so guessing from it slows to one try a second while the
    operator, even behind the same address, gets in after a second at most."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()
        self._failures = SlidingWindow(FAILURE_WINDOW_S)
        self._turns: dict[str, asyncio.Lock] = {}  # failing addresses with attempts waiting

    async def check(self, request: web.Request) -> None:
        client = client_address(request)
        if len(self._failures.recent(client)) < FAILURES_ALLOWED:
            return self._verify(request, client, over_limit=False)
        turn = self._turns.setdefault(client, asyncio.Lock())
        try:
            async with turn:
                await asyncio.sleep(SLOW_S)
                return self._verify(request, client, over_limit=True)
        finally:
            if not turn.locked() and self._turns.get(client) is turn:
                del self._turns[client]  # nobody waits: the table holds only addresses being slowed

    def _verify(self, request: web.Request, client: str, over_limit: bool) -> None:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._token):
            return
        self._failures.recent(client).append(time.monotonic())
        if over_limit:
            raise _error(429, "too many failed attempts; try again later", {"Retry-After": str(int(SLOW_S) or 1)})
        raise _error(401, "a valid admin token is required", {"WWW-Authenticate": 'Bearer realm="probe admin"'})


def add_routes(app: web.Application, probe) -> None:
    token = probe.config.server.admin_token
    if not token:
        return  # no token, no admin surface at all
    app[OPERATOR] = Operator(probe)
    app[GUARD] = TokenGuard(token)
    base = "/api/v1/admin"
    app.router.add_get(f"{base}/incidents", _guarded(list_incidents))
    app.router.add_post(f"{base}/incidents", _guarded(open_incident))
    app.router.add_get(f"{base}/incidents/{{id}}", _guarded(get_incident))
    app.router.add_patch(f"{base}/incidents/{{id}}", _guarded(edit_incident))
    app.router.add_post(f"{base}/incidents/{{id}}/updates", _guarded(post_update))
    app.router.add_put(f"{base}/incidents/{{id}}/postmortem", _guarded(publish_postmortem))
    app.router.add_get(f"{base}/health", _guarded(health, writes=False))
    app.router.add_get(f"{base}/config", _guarded(config_status, writes=False))
    app.router.add_post(f"{base}/config/reload", _guarded(reload_config))
    app.router.add_get(f"{base}/deliveries", _guarded(list_notifications))
    app.router.add_get(f"{base}/notifications", _guarded(list_notifications))  # the older name
    app.router.add_get(f"{base}/maintenance", _guarded(list_maintenance))
    app.router.add_post(f"{base}/maintenance", _guarded(add_maintenance))
    app.router.add_delete(f"{base}/maintenance/{{id}}", _guarded(cancel_maintenance))
    app.router.add_get(f"{base}/subscribers", _guarded(list_subscribers))
    app.router.add_delete(f"{base}/subscribers/{{id}}", _guarded(remove_subscriber))


MAINTENANCE_SHOWN_MS = (7 * 86_400_000, 90 * 86_400_000)  # a week back, 90 days ahead


async def list_maintenance(request: web.Request, operator: Operator) -> web.Response:
    """Each window's current or next occurrence; ?all=true: every occurrence of the last week and
    the next 90 days; ?until=ISO 8601: every occurrence from a week ago until then."""
    probe, now = operator.probe, now_ms()
    until = _instant(request.query["until"], "until") if request.query.get("until") else None
    every = until is not None or request.query.get("all") in ("1", "true")
    windows = probe.maintenance_between(now - MAINTENANCE_SHOWN_MS[0], until or now + MAINTENANCE_SHOWN_MS[1])
    if not every:
        windows = maintenance.next_per_window(probe, windows, now, MAINTENANCE_SHOWN_MS[0])
    ad_hoc = {w.id for w in probe.scheduled}
    return _json({"maintenance": [maintenance_json(probe, w, now, w.id in ad_hoc) for w in windows],
                  "time_zone": probe.config.page.timezone})


async def add_maintenance(request: web.Request, operator: Operator) -> web.Response:
    """Schedule a window: title, monitors, start (ISO 8601 with offset; default now), and
    duration ("2h") or end, optional description."""
    body = await _body(request, {"title": str, "monitors": list, "start": str, "end": str, "duration": str,
                                 "description": str}, required=("title", "monitors"))
    probe, now = operator.probe, now_ms()
    unknown = [m for m in body["monitors"] if not isinstance(m, str) or probe.config.monitor(m) is None]
    if unknown or not body["monitors"]:
        raise OperatorError(f"monitors must name configured monitors (unknown: {', '.join(map(str, unknown)) or 'none given'})")
    if not body["title"].strip():
        raise OperatorError("title must not be empty")
    start = _instant(body["start"], "start") if "start" in body else now
    if ("duration" in body) == ("end" in body):
        raise OperatorError("give either duration or end")
    if "end" in body:
        end = _instant(body["end"], "end")
    else:
        try:
            end = start + int(parse_duration(body["duration"]) * 1000)
        except ValueError as exc:
            raise OperatorError(f"duration: {exc}") from None
    if end <= start or end <= now:
        raise OperatorError("the window must end after it starts, and in the future")
    window = MaintenanceWindow(f"op-{now}", body["title"].strip(), tuple(body["monitors"]), start, end,
                               body.get("description", ""))
    await probe.schedule_maintenance(window, _author(request))
    return _json(maintenance_json(probe, window, now, True) | {"time_zone": probe.config.page.timezone}, 201)


async def cancel_maintenance(request: web.Request, operator: Operator) -> web.Response:
    probe, now = operator.probe, now_ms()
    window_id = request.match_info["id"]
    window = next((w for w in probe.scheduled if w.id == window_id), None)
    if window is None:
        if any(c.id == window_id.split("@")[0] for c in probe.config.maintenance):
            raise OperatorError("this window is defined in the config file: edit the file to change it", 409)
        raise OperatorError("maintenance window not found", 404)
    if window.end_ms <= now:
        raise OperatorError("this window is already over", 409)
    ended = await probe.cancel_maintenance(window, now)
    return _json({"cancelled": window_id, "ended_early": ended is not None})


def maintenance_json(probe, window: MaintenanceWindow, now: int, ad_hoc: bool) -> dict:
    return {"id": window.id, "title": window.title, "description": window.description,
            "monitors": list(window.monitors), "starts_at": iso_utc(window.start_ms), "ends_at": iso_utc(window.end_ms),
            "status": maintenance.state(probe, window, now), "source": "admin" if ad_hoc else "config",
            "window": window.series or window.id, "rule": maintenance.rule(probe, window, probe.config.page.language)}


def _instant(text: str, name: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise OperatorError(f"{name} must be ISO 8601, e.g. 2026-12-01T02:00:00+01:00") from None
    if moment.tzinfo is None:
        raise OperatorError(f"{name} needs a UTC offset, e.g. 2026-12-01T02:00:00+01:00")
    return int(moment.timestamp() * 1000)


async def health(request: web.Request, operator: Operator) -> web.Response:
    """/healthz with what the public one leaves out: paths, error texts, private monitors."""
    return _json(operator.probe.health(private=True))


async def config_status(request: web.Request, operator: Operator) -> web.Response:
    return web.json_response(_watcher(operator).status())


async def reload_config(request: web.Request, operator: Operator) -> web.Response:
    """Reload now (as SIGHUP does); 422 with the problems when the file is rejected."""
    watcher = _watcher(operator)
    applied = await watcher.reload("admin API")
    return web.json_response({"applied": applied, **watcher.status()}, status=200 if applied else 422)


def _watcher(operator: Operator):
    if operator.probe.watcher is None:
        raise OperatorError("this process was not started from a config file", 409)
    return operator.probe.watcher


async def list_notifications(request: web.Request, operator: Operator) -> web.Response:
    """The outbox, newest first: what was sent, what waits, what failed and the channel's words."""
    notifier = request.query.get("notifier") or None
    limit = _int_query(request, "limit", 100, 1, 1000)
    state = request.query.get("state") or None
    if state not in (None, "pending", "sent", "failed"):
        raise OperatorError("state must be pending, sent or failed")
    return web.json_response({"deliveries": await operator.probe.notify.deliveries(notifier, limit, state)})


async def list_subscribers(request: web.Request, operator: Operator) -> web.Response:
    """Email subscribers (pending and confirmed) and the config's webhook subscribers."""
    subscriptions = operator.probe.notify.subscribers
    rows = await subscriptions.everyone()
    return _json({"subscribers": [{"id": s.id, "email": s.email, "groups": list(s.groups),
                                   "confirmed": s.confirmed_ms is not None, "requested_at": iso_utc(s.requested_ms),
                                   "confirmed_at": iso_utc(s.confirmed_ms)} for s in rows],
                  "webhooks": [h.id for h in subscriptions.config.webhooks]})


async def remove_subscriber(request: web.Request, operator: Operator) -> web.Response:
    """Remove a subscriber by id or by address (a request by mail, a bounce): as if it had unsubscribed."""
    subscriptions = operator.probe.notify.subscribers
    given = request.match_info["id"]
    if "@" in given:  # an address as the operator has it: any spelling of it finds the row
        try:
            subscriber = await operator.probe.store.subscriber_by_email(normal_address(given))
        except AddressError as exc:
            raise OperatorError(f"not a valid email address: {exc}") from None
    else:
        subscriber = await subscriptions.subscriber(_incident_id(request, "subscriber not found"))
    if subscriber is None:
        raise OperatorError("subscriber not found", 404)
    await subscriptions.remove(subscriber)
    return _json({"removed": subscriber.id})


def _guarded(handler, writes: bool = True):
    """The token check; and, for routes that may write (`writes`), a 503 at once while the
    database takes no writes."""
    async def guarded(request: web.Request) -> web.Response:
        try:
            await request.app[GUARD].check(request)
            store = request.app[OPERATOR].probe.store
            if writes and not store.healthy:  # an action would wait on the disk; say why at once instead
                raise OperatorError(f"the database takes no writes: {store.last_error}", 503)
            return await handler(request, request.app[OPERATOR])
        except OperatorError as exc:
            raise _error(exc.status, exc.message) from None
    guarded.__name__ = handler.__name__
    return guarded


async def list_incidents(request: web.Request, operator: Operator) -> web.Response:
    store = operator.probe.store
    await store.flush()
    if request.query.get("open") in ("1", "true"):
        incidents = await store.open_incidents()
    else:
        incidents = await store.incidents(limit=_int_query(request, "limit", 50, 1, 500))
    updates = await store.incident_updates([i.id for i in incidents])
    return _json({"incidents": [incident_json(i, updates[i.id], operator.probe.config) for i in incidents],
                  "time_zone": operator.probe.config.page.timezone})


async def get_incident(request: web.Request, operator: Operator) -> web.Response:
    incident = await operator._current(_incident_id(request))
    updates = await operator.probe.store.incident_updates([incident.id])
    return _json(incident_json(incident, updates[incident.id], operator.probe.config))


async def open_incident(request: web.Request, operator: Operator) -> web.Response:
    body = await _body(request, {"title": str, "impact": str, "monitors": list, "status": str, "body": str,
                                 "component_status": dict})
    if not all(isinstance(m, str) for m in body.get("monitors", [])):
        raise OperatorError("monitors must be a list of monitor ids")
    body["monitors"] = tuple(body.get("monitors", ()))
    body["component_status"] = _component_status(body)
    incident = await operator.open(NewIncident(**body), author=_author(request))
    return await _answer(operator, incident, 201)


async def post_update(request: web.Request, operator: Operator) -> web.Response:
    body = await _body(request, {"status": str, "body": str, "component_status": dict}, required=("status",))
    incident = await operator.update(_incident_id(request), body["status"], body.get("body"), _author(request),
                                     _component_status(body))
    return await _answer(operator, incident, 201)


async def edit_incident(request: web.Request, operator: Operator) -> web.Response:
    body = await _body(request, {"title": str, "impact": str, "component_status": dict})
    incident = await operator.edit(_incident_id(request), body.get("title"), body.get("impact"), _author(request),
                                   _component_status(body))
    return await _answer(operator, incident)


def _component_status(body: dict) -> tuple[tuple[str, str], ...]:
    """{"api": "degraded_performance", ...} -> (("api", "degraded_performance"), ...)."""
    given = body.get("component_status", {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in given.items()):
        raise OperatorError("component_status must map monitor ids to component statuses")
    return tuple(given.items())


async def publish_postmortem(request: web.Request, operator: Operator) -> web.Response:
    body = await _body(request, {"body": str}, required=("body",))
    incident = await operator.postmortem(_incident_id(request), body["body"], _author(request))
    return await _answer(operator, incident)


async def _answer(operator: Operator, incident: Incident, status: int = 200) -> web.Response:
    updates = await operator.probe.store.incident_updates([incident.id])
    return _json(incident_json(incident, updates[incident.id], operator.probe.config), status)


def incident_json(incident: Incident, updates: list[IncidentUpdate], config) -> dict:
    """`title` is the operator's ("" for an automatic incident not yet given one); `display_title`
    what the page shows ("Website is down"); `time_zone` the page's, for the CLI's times."""
    monitor = config.monitor(incident.monitor_ids[0]) if incident.monitor_ids else None
    shown = display_title(incident, monitor.display_name if monitor else "", config.page.language)
    return {
        "id": incident.id, "title": incident.title, "display_title": shown, "time_zone": config.page.timezone,
        "origin": incident.origin,
        "impact": incident.impact.value, "status": incident.status,
        "monitors": list(incident.monitor_ids), "reason": incident.reason,
        "started_at": iso_utc(incident.started_ms), "resolved_at": iso_utc(incident.resolved_ms),
        "component_status": dict(incident.component_status),
        "postmortem": incident.postmortem or None, "postmortem_at": iso_utc(incident.postmortem_ms),
        "updates": [{"id": u.id, "status": u.status, "body": u.body, "kind": u.kind, "author": u.author,
                     "created_at": iso_utc(u.created_ms)} for u in updates],
    }


async def _body(request: web.Request, fields: dict[str, type], required: tuple[str, ...] = ()) -> dict:
    try:
        body = await request.json()
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
        raise OperatorError("the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise OperatorError("the request body must be a JSON object")
    for key, value in body.items():
        if key not in fields:
            raise OperatorError(f"unknown field {key!r} (expected {', '.join(fields)})")
        if not isinstance(value, fields[key]):
            raise OperatorError(f"{key} must be a {fields[key].__name__}")
    for key in required:
        if key not in body:
            raise OperatorError(f"{key} is required")
    return body


def _incident_id(request: web.Request, missing: str = "incident not found") -> int:
    number = whole_number(request.match_info["id"], 18)
    if number is None:
        raise OperatorError(missing, 404)
    return number


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    number = whole_number(raw)
    if number is None or not low <= number <= high:
        raise OperatorError(f"{name} must be a whole number from {low} to {high}")
    return number


def _author(request: web.Request) -> str:
    return request.headers.get("X-Probe-Author", "operator")[:80] or "operator"


def _json(data: dict, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, headers={"Cache-Control": "no-store"})


_ERRORS = {cls.status_code: cls for cls in (web.HTTPBadRequest, web.HTTPUnauthorized, web.HTTPNotFound,
                                            web.HTTPConflict, web.HTTPTooManyRequests, web.HTTPServiceUnavailable)}


def _error(status: int, message: str, headers: dict | None = None) -> web.HTTPException:
    """The one JSON error shape of every API route: {"error": ..., "status": ...}."""
    return _ERRORS[status](text=json.dumps({"error": message, "status": status}),
                           content_type="application/json", headers=headers)
