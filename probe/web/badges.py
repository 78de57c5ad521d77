"""Shields-style SVG badges: /badge/{id}/status.svg, uptime.svg?window=30d, latency.svg."""
from __future__ import annotations

from aiohttp import web
from markupsafe import escape

from probe.core.units import format_latency
from probe.view import public
from probe.web.cache import respond
from probe.web.keys import CACHE, PROBE

COLOURS = {"up": "#1f9d55", "degraded": "#d69e2e", "partial": "#dd6b20", "down": "#d64545",
           "maintenance": "#3b82c4", "unknown": "#9f9f9f"}
# Verdana 11px advance widths (as shields.io measures); other characters count as "m"-wide.
_NARROW = {"i": 3.1, "l": 3.1, "j": 3.4, "f": 4.3, "t": 4.3, "r": 4.7, " ": 3.9, ".": 3.9, ",": 3.9,
           ":": 4.5, "%": 10.9, "I": 4.6, "1": 7.0, "(": 5.4, ")": 5.4, "-": 4.6}
_DEFAULT, _WIDE = 7.0, 10.5


def add_routes(app: web.Application) -> None:
    app.router.add_get("/badge/{id}/status.svg", status_badge)
    app.router.add_get("/badge/{id}/uptime.svg", uptime_badge)
    app.router.add_get("/badge/{id}/latency.svg", latency_badge)


def text_width(text: str) -> float:
    return sum(_NARROW.get(c, _WIDE if c in "mwMW@" or ord(c) > 0x2E80 else _DEFAULT) for c in text)


def svg(label: str, value: str, colour: str) -> str:
    lw, vw = round(text_width(label)) + 10, round(text_width(value)) + 10
    label_e, value_e = escape(label), escape(value)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{lw + vw}" height="20" role="img" '
            f'aria-label="{label_e}: {value_e}"><title>{label_e}: {value_e}</title>'
            f'<rect width="{lw}" height="20" fill="#555"/><rect x="{lw}" width="{vw}" height="20" fill="{colour}"/>'
            f'<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">'
            f'<text x="{lw / 2}" y="14">{label_e}</text><text x="{lw + vw / 2}" y="14">{value_e}</text></g></svg>')


async def _monitor(request: web.Request) -> public.MonitorView:
    probe = request.app[PROBE]
    monitor_id = request.match_info["id"]
    if not public.is_public(probe, monitor_id):
        raise web.HTTPNotFound(text="monitor not found")
    view = await public.build_view(probe, language=probe.config.page.language)
    return view.monitor(monitor_id)


async def _cached(request: web.Request, draw) -> web.Response:
    """Badges are embedded in READMEs and dashboards: cache them like the page."""

    async def render():
        return svg(*draw(await _monitor(request))).encode(), "image/svg+xml"
    key = request.path + "?" + request.query.get("window", "")
    return respond(request, await request.app[CACHE].get(key, render), max_age=30)


def _status(m: public.MonitorView) -> tuple[str, str, str]:
    return m.name, m.status, COLOURS[m.status]


def _latency(m: public.MonitorView) -> tuple[str, str, str]:
    if m.latency_ms is None:
        return "response time", "no data", COLOURS["unknown"]
    return "response time", format_latency(m.latency_ms), COLOURS[m.status]


async def status_badge(request: web.Request) -> web.Response:
    return await _cached(request, _status)


async def latency_badge(request: web.Request) -> web.Response:
    return await _cached(request, _latency)


async def uptime_badge(request: web.Request) -> web.Response:
    window = request.query.get("window", "30d")
    if window not in public.WINDOWS:
        raise web.HTTPBadRequest(text=f"window must be one of {', '.join(public.WINDOWS)}")

    def draw(m: public.MonitorView) -> tuple[str, str, str]:
        value = m.uptime[window]
        colour = COLOURS["unknown"] if value is None else COLOURS["up"] if value >= 0.999 else \
            COLOURS["degraded"] if value >= 0.99 else COLOURS["down"]
        return f"uptime {window}", m.uptime_label[window] or "no data", colour
    return await _cached(request, draw)
