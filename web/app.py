"""The aiohttp application. It starts and stops the probe with itself (cleanup_ctx)."""
from __future__ import annotations

from aiohttp import web

from probe.service import Probe
from web import admin

PROBE = web.AppKey("probe", Probe)


def create_app(probe: Probe) -> web.Application:
    app = web.Application()
    app[PROBE] = probe
    app.cleanup_ctx.append(_run_probe)
    app.router.add_get("/healthz", healthz)
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
