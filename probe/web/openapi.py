"""/api/openapi.json: an OpenAPI 3.1 description of every public route (and the page's forms).

Kept truthful by a test that compares its paths with the application's routes.
"""
from __future__ import annotations

from aiohttp import web

from probe import __version__

ERROR = {"$ref": "#/components/schemas/Error"}
JSON_OK = {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
HTML_OK = {"description": "OK", "content": {"text/html": {"schema": {"type": "string"}}}}


def _error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": ERROR}}}


def _param(name: str, where: str, schema: dict, description: str, required: bool = False) -> dict:
    return {"name": name, "in": where, "required": required or where == "path", "schema": schema,
            "description": description}


MONITOR_ID = _param("id", "path", {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$"}, "monitor id")
TIME = {"type": "string", "description": "ISO 8601 with offset, or milliseconds since 1970"}


def _get(summary: str, ok: dict = JSON_OK, params: list | None = None, errors: dict | None = None,
         tag: str = "status") -> dict:
    responses = {"200": ok} | (errors or {})
    operation = {"summary": summary, "tags": [tag], "responses": responses}
    if params:
        operation["parameters"] = params
    return {"get": operation}


NOT_FOUND = {"404": _error("monitor not found (unknown or private)")}
HTML_NOT_FOUND = {"404": {"description": "not found (an HTML page)", "content": {"text/html": {"schema": {"type": "string"}}}}}
BAD = {"400": _error("a query parameter is not valid")}

PATHS = {
    "/": _get("The status page", HTML_OK, tag="page"),
    "/history": _get("Past incidents by month, paged", HTML_OK,
                     [_param("before", "query", {"type": "integer"}, "page: incidents started before this time (ms)")],
                     {"400": HTML_NOT_FOUND["404"] | {"description": "before is not valid (an HTML page)"}}, tag="page"),
    "/monitors/{id}": _get("One monitor's page", HTML_OK, [MONITOR_ID], HTML_NOT_FOUND, tag="page"),
    "/incidents/{id}": _get("One incident and its timeline", HTML_OK,
                            [_param("id", "path", {"type": "integer"}, "incident id")],
                            HTML_NOT_FOUND, tag="page"),
    "/healthz": _get("200 while the scheduler runs and the database takes writes", JSON_OK,
                     errors={"503": {"description": "not healthy; the body says why",
                                     "content": {"application/json": {"schema": {"type": "object"}}}}},
                     tag="operations"),
    "/api/openapi.json": _get("This document", tag="operations"),
    "/api/v1/status": _get("Overall status and every public monitor with uptime for 24h/7d/30d/90d"),
    "/api/v1/monitors/{id}": _get("One monitor with a daily series for 90 days; with [cluster], `locations` (each "
                                  "location's status and latency) and `failing_from`", params=[MONITOR_ID],
                                  errors=NOT_FOUND),
    "/api/v1/monitors/{id}/results": _get("Raw results, newest first", params=[
        MONITOR_ID, _param("since", "query", TIME, "from (default: 24 hours ago)"),
        _param("until", "query", TIME, "until (default: now)"),
        _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 5000}, "at most (default 500)")],
        errors=NOT_FOUND | BAD),
    "/api/v1/incidents": _get("Incidents, newest first, paged", params=[
        _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 100}, "page size (default 20)"),
        _param("before", "query", TIME, "incidents started before this time")], errors=BAD),
    "/api/v1/maintenance": _get("Maintenance windows from 90 days back to 90 days ahead"),
}
SVG_OK = {"description": "OK", "content": {"image/svg+xml": {"schema": {"type": "string"}}}}
PATHS |= {
    "/history.atom": _get("Incidents and maintenance with their updates (Atom 1.0)", {
        "description": "OK", "content": {"application/atom+xml": {"schema": {"type": "string"}}}}, tag="feeds"),
    "/history.rss": _get("Incidents and maintenance with their updates (RSS 2.0)", {
        "description": "OK", "content": {"application/rss+xml": {"schema": {"type": "string"}}}}, tag="feeds"),
    "/badge/{id}/status.svg": _get("Status badge", SVG_OK, [MONITOR_ID], NOT_FOUND, tag="badges"),
    "/badge/{id}/uptime.svg": _get("Availability badge", SVG_OK, [MONITOR_ID, _param(
        "window", "query", {"type": "string", "enum": ["24h", "7d", "30d", "90d"]}, "window (default 30d)")],
        NOT_FOUND | {"400": _error("window is not one of 24h, 7d, 30d, 90d")}, tag="badges"),
    "/badge/{id}/latency.svg": _get("Last response time badge", SVG_OK, [MONITOR_ID], NOT_FOUND, tag="badges"),
    "/metrics": _get("Prometheus metrics for the operator (when [server] metrics = true)", {
        "description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}},
        errors={"401": {"description": "metrics_token is set and the bearer token is missing or wrong",
                        "content": {"text/plain": {"schema": {"type": "string"}}}}}, tag="operations"),
}
HTML_ERRORS = {"400": HTML_NOT_FOUND["404"] | {"description": "the link is not valid or has expired (an HTML page)"},
               "404": HTML_NOT_FOUND["404"] | {"description": "subscribing is not enabled ([subscribers] email_via)"}}
TOKEN = [_param("token", "query", {"type": "string"}, "the signed token from the mail")]
HTML_REFUSED = {code: HTML_NOT_FOUND["404"] | {"description": words} for code, words in (
    ("400", "the form cannot be read, or a value is not valid (an HTML page)"),
    ("403", "posted from another site (an HTML page)"),
    ("404", "subscribing is not enabled ([subscribers] email_via)"),
    ("429", "too many subscribe requests from this client or for this address (an HTML page)"))}


def _form_post(summary: str, fields: dict[str, dict], required: list[str]) -> dict:
    """A form the page posts: urlencoded as browsers send it, multipart as some clients do."""
    schema = {"type": "object", "properties": fields, "required": required}
    return {"post": {"summary": summary, "tags": ["page"], "responses": {"200": HTML_OK} | HTML_REFUSED,
                     "requestBody": {"required": True, "content": {
                         "application/x-www-form-urlencoded": {"schema": schema},
                         "multipart/form-data": {"schema": schema}}}}}


TOKEN_FIELD = {"token": {"type": "string", "description": "the signed token from the mail"}}
PATHS |= {
    "/subscribe": _get("The subscribe form", HTML_OK, errors=HTML_ERRORS, tag="page") | _form_post(
        "Subscribe: email and the groups to hear about (none: all)",
        {"email": {"type": "string"}, "group": {"type": "array", "items": {"type": "string"}}}, ["email"]),
    "/subscribe/confirm": _get("Shows a button that confirms (POST token)", HTML_OK, TOKEN, HTML_ERRORS,
                               tag="page") | _form_post("Confirm a subscription", TOKEN_FIELD, ["token"]),
    "/unsubscribe": _get("Shows a button that unsubscribes (POST token; RFC 8058 one-click)", HTML_OK, TOKEN,
                         HTML_ERRORS, tag="page") | _form_post("Unsubscribe", TOKEN_FIELD, []),
}
TEXT_ANSWER = {"text/plain": {"schema": {"type": "string"}}}
PUSH_TOKEN = _param("token", "path", {"type": "string", "minLength": 16}, "the push monitor's token")
PUSH_ERRORS = {"404": {"description": "no push monitor has this token; nothing is recorded", "content": TEXT_ANSWER},
               "429": {"description": "this token reports too often; nothing is recorded", "content": TEXT_ANSWER}}


def _push(summary: str, params: list, errors: dict, ok: dict | None = None) -> dict:
    """A push route: GET, HEAD and POST alike (POST's body is the message)."""
    ok = ok or {"description": "recorded", "content": TEXT_ANSWER}
    item = _get(summary, ok, params, errors, tag="push")
    return item | {"post": item["get"] | {"requestBody": {"required": False, "content": {"text/plain": {
        "schema": {"type": "string", "description": "the first 10,000 bytes are the result's message"}}}}}}


PATHS |= {
    "/ping/{token}": _push("A push monitor's job succeeded (healthchecks format)", [PUSH_TOKEN], PUSH_ERRORS),
    "/ping/{token}/start": _push("The job started: its run time is measured until it ends", [PUSH_TOKEN],
                                 PUSH_ERRORS),
    "/ping/{token}/fail": _push("The job failed", [PUSH_TOKEN], PUSH_ERRORS),
    "/ping/{token}/{exit_status}": _push("The job ended with this exit status: 0 succeeded, 1-255 failed", [
        PUSH_TOKEN, _param("exit_status", "path", {"type": "string", "pattern": "^[0-9]{1,3}$"}, "0 to 255")],
        PUSH_ERRORS | {"400": {"description": "the exit status is not a number from 0 to 255",
                               "content": TEXT_ANSWER}}),
    "/api/push/{token}": _push("A push monitor's report (Uptime Kuma format)", [
        PUSH_TOKEN, _param("status", "query", {"type": "string"}, '"up" (default) or anything else for down'),
        _param("msg", "query", {"type": "string"}, "the result's message"),
        _param("ping", "query", {"type": "number", "minimum": 0}, "latency in milliseconds")],
        {"400": _error("ping is not a number of milliseconds from 0 to 1e11"),
         "404": _error("no push monitor has this token; nothing is recorded"),
         "429": _error("this token reports too often; nothing is recorded")}, JSON_OK),
}
for _name, _summary in {
    "summary.json": "Page, status, components, unresolved incidents, upcoming and active maintenance",
    "status.json": "Page and overall status (indicator, description)",
    "components.json": "Components (monitors) and component groups",
    "incidents.json": "The 50 most recent incidents",
    "incidents/unresolved.json": "Unresolved incidents",
    "scheduled-maintenances.json": "Scheduled maintenances",
    "scheduled-maintenances/upcoming.json": "Maintenances not yet started",
    "scheduled-maintenances/active.json": "Maintenances in progress or verifying",
}.items():
    PATHS[f"/api/v2/{_name}"] = _get(_summary + " (Atlassian Statuspage v2 format)", tag="statuspage-v2")


def document(app: web.Application) -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "probe status page API", "version": __version__,
                 "description": "Public and read-only, but for the push routes, where jobs report to their push "
                                "monitors. Errors under /api/ share one shape: {\"error\": ..., \"status\": ...}."},
        "paths": {path: item for path, item in PATHS.items() if _served(app, path)},
        "components": {"schemas": {"Error": {
            "type": "object", "required": ["error", "status"],
            "properties": {"error": {"type": "string"}, "status": {"type": "integer"}}}}},
    }


def _served(app: web.Application, path: str) -> bool:
    return any(getattr(r.resource, "canonical", None) == path for r in app.router.routes())


def add_routes(app: web.Application) -> None:
    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(document(request.app), headers={"Cache-Control": "public, max-age=60"})
    app.router.add_get("/api/openapi.json", openapi)
