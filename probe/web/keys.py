"""The application's keys, in one module every route module may import (instead of the app,
which imports the route modules)."""
from __future__ import annotations

from aiohttp import web

from probe.service import Probe
from probe.web.cache import RenderCache
from probe.web.rows import RowCache

PROBE = web.AppKey("probe", Probe)
ENV = web.AppKey("jinja", object)
CACHE = web.AppKey("page_cache", RenderCache)
ROWS = web.AppKey("page_rows", RowCache)
