"""/history.atom and /history.rss: incidents and maintenance with their updates, newest first.

Built with ElementTree, which escapes every text and attribute, so operator text
cannot break the XML. Entry content is HTML: operators' markdown through the page's renderer. Entry ids are stable tag: URIs, so readers do not repeat items.
"""
from __future__ import annotations

from datetime import datetime, timezone
from email.utils import format_datetime
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

from aiohttp import web
from markupsafe import escape

from probe.core.markdown import to_html
from probe.core.texts import update_body
from probe.core.units import iso_utc
from probe.view import maintenance, public
from probe.web.cache import respond
from probe.web.keys import CACHE, PROBE

ATOM = "http://www.w3.org/2005/Atom"
MAX_ENTRIES = 50


def add_routes(app: web.Application) -> None:
    app.router.add_get("/history.atom", atom)
    app.router.add_get("/history.rss", rss)


async def _entries(request: web.Request) -> tuple[list[dict], str, object]:
    probe = request.app[PROBE]
    language = probe.config.page.language
    view = await public.build_view(probe, language=language, figures=False)
    base = (probe.config.page.url or f"{request.scheme}://{request.host}").rstrip("/")
    entries = [_incident_entry(i, base, language) for i in view.incidents]
    entries += [_maintenance_entry(w, base, maintenance.state(probe, w, view.now_ms)) for w in view.maintenance]
    entries.sort(key=lambda e: e["updated"], reverse=True)
    return entries[:MAX_ENTRIES], base, probe.config.page


def _incident_entry(item: public.IncidentView, base: str, language: str) -> dict:
    """The updates newest first, each body rendered from markdown as on the page (core/markdown.py)."""
    inc = item.incident
    parts = [f"<p><strong>{escape(u.status)}</strong> ({iso_utc(u.created_ms)})</p>"
             + (to_html(u.body) if u.body else f"<p>{escape(update_body(u.status, u.kind, language))}</p>")
             for u in reversed(item.updates)]
    if inc.postmortem:
        parts.insert(0, "<p><strong>Postmortem</strong></p>" + to_html(inc.postmortem))
    updated = max([u.created_ms for u in item.updates] + [inc.started_ms, inc.postmortem_ms or 0])
    return {"id": f"incident-{inc.id}", "title": f"{item.title} [{inc.status}]", "link": f"{base}/incidents/{inc.id}",
            "published": inc.started_ms, "updated": updated, "html": "\n".join(parts)}


def _maintenance_entry(window, base: str, state: str) -> dict:
    html = (f"<p>{escape(window.description or window.title)}</p>"
            f"<p>{iso_utc(window.start_ms)} – {iso_utc(window.end_ms)}</p>")
    return {"id": f"maintenance-{window.id}", "title": f"{window.title} [maintenance: {state}]",
            "link": f"{base}/history", "published": window.start_ms, "updated": window.start_ms, "html": html}


def _tag(base: str, entry_id: str) -> str:
    return f"tag:{urlsplit(base).hostname or 'localhost'},2026:{entry_id}"


async def atom(request: web.Request) -> web.Response:
    async def render():
        entries, base, page = await _entries(request)
        feed = ET.Element("feed", xmlns=ATOM)
        ET.SubElement(feed, "title").text = page.title
        ET.SubElement(feed, "id").text = _tag(base, "history")
        ET.SubElement(feed, "updated").text = iso_utc(entries[0]["updated"] if entries else 0)
        ET.SubElement(feed, "link", href=f"{base}/history.atom", rel="self")
        ET.SubElement(feed, "link", href=f"{base}/", rel="alternate")
        ET.SubElement(ET.SubElement(feed, "author"), "name").text = page.title
        for e in entries:
            entry = ET.SubElement(feed, "entry")
            ET.SubElement(entry, "title").text = e["title"]
            ET.SubElement(entry, "id").text = _tag(base, e["id"])
            ET.SubElement(entry, "link", href=e["link"], rel="alternate")
            ET.SubElement(entry, "published").text = iso_utc(e["published"])
            ET.SubElement(entry, "updated").text = iso_utc(e["updated"])
            ET.SubElement(entry, "content", type="html").text = e["html"]
        return _xml(feed), "application/atom+xml"
    return respond(request, await _cache(request).get(request.path, render), max_age=30)


async def rss(request: web.Request) -> web.Response:
    async def render():
        entries, base, page = await _entries(request)
        root = ET.Element("rss", version="2.0")
        channel = ET.SubElement(root, "channel")
        ET.SubElement(channel, "title").text = page.title
        ET.SubElement(channel, "link").text = f"{base}/"
        ET.SubElement(channel, "description").text = page.description or page.title
        for e in entries:
            item = ET.SubElement(channel, "item")
            ET.SubElement(item, "title").text = e["title"]
            ET.SubElement(item, "link").text = e["link"]
            ET.SubElement(item, "guid", isPermaLink="false").text = _tag(base, e["id"])
            ET.SubElement(item, "pubDate").text = format_datetime(
                datetime.fromtimestamp(e["updated"] / 1000, timezone.utc))
            ET.SubElement(item, "description").text = e["html"]  # RSS readers take it as HTML
        return _xml(root), "application/rss+xml"
    return respond(request, await _cache(request).get(request.path, render), max_age=30)


def _cache(request: web.Request):
    return request.app[CACHE]


def _xml(root: ET.Element) -> bytes:
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
