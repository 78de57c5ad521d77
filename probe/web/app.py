"""The aiohttp application. It starts and stops the probe with itself (cleanup_ctx)."""
from __future__ import annotations

import json
import logging

from aiohttp import web

from probe.service import Probe
from probe.web import (
    admin,
    api,
    badges,
    feeds,
    headers,
    metrics,
    openapi,
    page,
    push,
    refusals,
    statuspage,
    subscribe,
)
from probe.web.keys import PROBE

log = logging.getLogger("probe.web")


def create_app(probe: Probe) -> web.Application:
    app = web.Application(middlewares=[errors])
    app[PROBE] = probe
    headers.install(app)
    refusals.install()
    app.cleanup_ctx.append(_run_probe)
    app.router.add_get("/healthz", healthz)
    page.add_routes(app)
    api.add_routes(app)
    statuspage.add_routes(app)
    openapi.add_routes(app)
    badges.add_routes(app)
    feeds.add_routes(app)
    subscribe.add_routes(app)
    push.add_routes(app)
    metrics.add_routes(app, probe)
    admin.add_routes(app, probe)
    return app


async def _run_probe(app: web.Application):
    probe = app[PROBE]
    await probe.start()
    yield
    await probe.stop()


async def healthz(request: web.Request) -> web.Response:
    """200 while the scheduler runs and the database takes writes; 503 with the reason otherwise."""
    health = request.app[PROBE].health()
    return web.json_response(health, status=200 if health["status"] == "ok" else 503,
                             headers={"Cache-Control": "no-store"})


@web.middleware
async def errors(request: web.Request, handler):
    """One error path: JSON {"error", "status"} under /api/, an HTML page elsewhere; never a traceback."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        return _error_response(request, exc.status, message.lower() if message == exc.reason else message,
                               exc.headers)
    except Exception:
        log.exception("request failed path=%s", request.path)
        return _error_response(request, 500, "internal error", {})


def _error_response(request: web.Request, status: int, message: str, headers) -> web.Response:
    keep = {k: v for k, v in headers.items() if k in ("Allow", "Retry-After", "WWW-Authenticate")}
    if request.path.startswith("/api/") or request.path.startswith("/badge/"):
        return web.Response(text=json.dumps({"error": message, "status": status}), status=status,
                            content_type="application/json", headers=keep)
    try:
        body = page.render(request, "error.html", status=status, message=message)
    except Exception:  # the error page itself must not fail
        body = f"{status} {message}".encode()
    return web.Response(body=body, status=status, content_type="text/html", charset="utf-8", headers=keep)
