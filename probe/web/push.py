"""Reports to push monitors, in the two URL formats scripts already use:

- healthchecks: /ping/<token> (success), /ping/<token>/start, /ping/<token>/fail and
  /ping/<token>/<exit status> (0 is success, 1-255 failure); the body's first 10 kB are the
  result's message. Answers "OK", or "not found" with 404.
- Uptime Kuma: /api/push/<token>?status=up|down&msg=...&ping=<ms>; any status other than
  "up" is a failure, `ping` is the latency. Answers {"ok": true}, or probe's JSON error.

GET, HEAD and POST alike. The service decides (probe/engine/passive.py): an unknown token and
a token over its rate limit record nothing.

Under `probe run` the front process (web/front.py) takes the pings and hands them over in
batches, one request to /_front/pings for all that arrived meanwhile, answered here by the
same `answer` as a ping sent straight to the application: a crowd of cron jobs costs the
checking process one HTTP request per batch, not one per ping.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from aiohttp import web
from yarl import URL

from probe.checks.base import Ping
from probe.core.units import now_ms
from probe.engine.passive import Fed
from probe.web.clients import from_the_front
from probe.web.keys import PROBE
from probe.web.ping_urls import BODY_LIMIT, FROM_THE_FRONT, ROUTES, first_bytes, route_of

MAX_PING_MS = 1e11  # Uptime Kuma's bound on `ping`
HEADERS = {"Ping-Body-Limit": str(BODY_LIMIT), "Access-Control-Allow-Origin": "*", "Cache-Control": "no-store"}
TEXT = {Fed.UNKNOWN: (404, "not found"), Fed.LIMITED: (429, "rate limited"),
        Fed.ELSEWHERE: (503, "not recorded by this instance, try again")}


@dataclass(frozen=True)
class Report:
    """One ping as it arrived: where it went and what it carried."""

    route: str  # a name in ROUTES
    match: dict[str, str]
    query: dict[str, str]
    body: bytes  # the first BODY_LIMIT bytes of a POST's body
    at_ms: int


def add_routes(app: web.Application) -> None:
    for route, pattern in ROUTES:
        path = pattern.pattern.replace("(?P<token>[^/]+)", "{token:[^/]+}").replace(
            "(?P<exit_status>[^/]+)", "{exit_status:[^/]+}")
        app.router.add_get(path, _handler(route))  # and HEAD
        app.router.add_post(path, _handler(route))
    app.router.add_post(FROM_THE_FRONT, batch)


def _handler(route: str):
    async def handle(request: web.Request) -> web.Response:
        body = await first_bytes(request.content) if request.method == "POST" else b""
        report = Report(route, dict(request.match_info), dict(request.query), body, now_ms())
        return await answer(request.app[PROBE], report)
    handle.__name__ = f"ping_{route}"
    return handle


async def answer(probe, report: Report) -> web.Response:
    """Feed one ping to the service and say how it went, in its format's words."""
    if report.route == "kuma":
        return await _kuma(probe, report)
    kind, exit_status = report.route, None
    if report.route == "exit_status":
        raw = report.match["exit_status"]
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 3 and int(raw) <= 255):
            return web.Response(status=400, text="invalid url format: the exit status is a number from 0 to 255",
                                headers=HEADERS)
        code = int(raw)
        kind, exit_status = ("success", None) if code == 0 else ("fail", code)
    ping = Ping(report.at_ms, kind, _message(report.body), exit_status)
    fed = await probe.feed(report.match["token"], ping)
    status, text = TEXT.get(fed, (200, "OK"))
    return web.Response(status=status, text=text, headers=HEADERS | _retry(fed))


def _message(body: bytes) -> str:
    return body.decode("utf-8", "replace").strip()


def _retry(fed: Fed) -> dict[str, str]:
    return {"Retry-After": "1"} if fed in (Fed.LIMITED, Fed.ELSEWHERE) else {}


async def _kuma(probe, report: Report) -> web.Response:
    query, latency = report.query, None
    if query.get("ping"):
        try:
            latency = float(query["ping"])
        except ValueError:
            latency = -1.0
        if not 0 <= latency <= MAX_PING_MS:  # NaN fails this too
            return _api_error(400, "ping must be a number of milliseconds from 0 to 1e11")
    kind = "success" if query.get("status", "up") == "up" else "fail"
    message = query.get("msg", "") or _message(report.body)
    fed = await probe.feed(report.match["token"], Ping(report.at_ms, kind, message, None, latency))
    if fed is Fed.UNKNOWN:
        return _api_error(404, "monitor not found")
    if fed is Fed.LIMITED:
        return _api_error(429, "rate limited", _retry(fed))
    if fed is Fed.ELSEWHERE:
        return _api_error(503, TEXT[fed][1], _retry(fed))
    return web.json_response({"ok": True}, headers=HEADERS)


def _api_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """The API's error body (web/app.py's errors middleware writes the same for a raised error)."""
    return web.Response(text=json.dumps({"error": message, "status": status}), status=status,
                        content_type="application/json", headers=headers)


async def batch(request: web.Request) -> web.Response:
    """The front's pings, in the order they arrived: [[method, raw path and query, body as latin-1,
    at_ms], ...]; answers [[status, headers, body as latin-1], ...] in the same order."""
    if not from_the_front(request):
        raise web.HTTPNotFound()
    probe, answers = request.app[PROBE], []
    for method, raw, body, at_ms in await request.json():
        url = URL(raw, encoded=True)
        found = route_of(url.path)
        if found is None or method not in ("GET", "HEAD", "POST"):
            response = web.Response(status=404, text="not found", headers=HEADERS)
        else:
            route, match = found
            response = await answer(probe, Report(route, match, dict(url.query), body.encode("latin-1"), at_ms))
        answers.append([response.status, list(response.headers.items()), (response.body or b"").decode("latin-1")])
    return web.json_response(answers, headers={"Cache-Control": "no-store"})
