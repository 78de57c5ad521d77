"""/api/v2/*: Atlassian Statuspage's public API v2, served from the documents of probe/view/statuspage.py."""
from __future__ import annotations

import json

from aiohttp import web

from probe.view import public
from probe.view.statuspage import ROUTES, Shape
from probe.web.cache import respond
from probe.web.keys import CACHE, PROBE


def add_routes(app: web.Application) -> None:
    for name, build in ROUTES.items():
        app.router.add_get(f"/api/v2/{name}", _handler(build))


def _handler(build):
    async def handler(request: web.Request) -> web.Response:
        probe = request.app[PROBE]

        async def render():
            view = await public.build_view(probe, language=probe.config.page.language, figures=False)
            doc = build(Shape(probe, view, request))
            return json.dumps(doc, ensure_ascii=False).encode(), "application/json"
        entry = await request.app[CACHE].get(request.path, render)
        return respond(request, entry)
    return handler
