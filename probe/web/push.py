"""Reports to push monitors, in the two URL formats scripts already use:

- healthchecks: /ping/<token> (success), /ping/<token>/start, /ping/<token>/fail and
  /ping/<token>/<exit status> (0 is success, 1-255 failure); the body's first 10 kB are the
  result's message. Answers "OK", or "not found" with 404.
- Uptime Kuma: /api/push/<token>?status=up|down&msg=...&ping=<ms>; any status other than
  "up" is a failure, `ping` is the latency. Answers {"ok": true}, or probe's JSON error.

GET, HEAD and POST alike. The service decides (probe/engine/passive.py): an unknown token and
a token over its rate limit record nothing.
"""
from __future__ import annotations

from aiohttp import web

from probe.checks.base import Ping
from probe.core.units import now_ms
from probe.engine.passive import Fed
from probe.web.keys import PROBE

BODY_LIMIT = 10_000  # bytes of a body kept as the message (healthchecks' default)
MAX_PING_MS = 1e11  # Uptime Kuma's bound on `ping`
HEADERS = {"Ping-Body-Limit": str(BODY_LIMIT), "Access-Control-Allow-Origin": "*", "Cache-Control": "no-store"}
TEXT = {Fed.UNKNOWN: (404, "not found"), Fed.LIMITED: (429, "rate limited")}


def add_routes(app: web.Application) -> None:
    # Any text as a token (aiohttp's default refuses braces), so that every miss gets this module's answer.
    token = "{token:[^/]+}"
    routes = [(f"/ping/{token}", ping_success), (f"/ping/{token}/start", ping_start),
              (f"/ping/{token}/fail", ping_fail), (f"/ping/{token}/{{exit_status:[^/]+}}", ping_exit_status),
              (f"/api/push/{token}", kuma_push)]
    for path, handler in routes:  # in this order: "start" and "fail" are not exit statuses
        app.router.add_get(path, handler)  # and HEAD
        app.router.add_post(path, handler)


async def _message(request: web.Request) -> str:
    """The body's first BODY_LIMIT bytes as text; the rest is not read."""
    if request.method != "POST":
        return ""
    data = b""
    while len(data) < BODY_LIMIT:
        chunk = await request.content.read(BODY_LIMIT - len(data))
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace").strip()


async def _healthchecks(request: web.Request, kind: str, exit_status: int | None = None) -> web.Response:
    ping = Ping(now_ms(), kind, await _message(request), exit_status)
    fed = await request.app[PROBE].feed(request.match_info["token"], ping)
    status, text = TEXT.get(fed, (200, "OK"))
    return web.Response(status=status, text=text, headers=HEADERS | _retry(fed))


def _retry(fed: Fed) -> dict[str, str]:
    return {"Retry-After": "1"} if fed is Fed.LIMITED else {}


async def ping_success(request: web.Request) -> web.Response:
    return await _healthchecks(request, "success")


async def ping_start(request: web.Request) -> web.Response:
    return await _healthchecks(request, "start")


async def ping_fail(request: web.Request) -> web.Response:
    return await _healthchecks(request, "fail")


async def ping_exit_status(request: web.Request) -> web.Response:
    raw = request.match_info["exit_status"]
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 3 and int(raw) <= 255):
        return web.Response(status=400, text="invalid url format: the exit status is a number from 0 to 255",
                            headers=HEADERS)
    code = int(raw)
    return await _healthchecks(request, "success" if code == 0 else "fail", code if code else None)


async def kuma_push(request: web.Request) -> web.Response:
    query = request.query
    latency = None
    if query.get("ping"):
        try:
            latency = float(query["ping"])
        except ValueError:
            latency = -1.0
        if not 0 <= latency <= MAX_PING_MS:  # NaN fails this too
            raise web.HTTPBadRequest(text="ping must be a number of milliseconds from 0 to 1e11")
    kind = "success" if query.get("status", "up") == "up" else "fail"
    message = query.get("msg", "") or await _message(request)
    fed = await request.app[PROBE].feed(request.match_info["token"], Ping(now_ms(), kind, message, None, latency))
    if fed is Fed.UNKNOWN:
        raise web.HTTPNotFound(text="monitor not found")
    if fed is Fed.LIMITED:
        raise web.HTTPTooManyRequests(text="rate limited", headers=_retry(fed))
    return web.json_response({"ok": True}, headers=HEADERS)
