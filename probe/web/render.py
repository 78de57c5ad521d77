"""The jinja2 environment, page text per language, and the small SVG and text helpers."""
from __future__ import annotations

import functools
from datetime import datetime
from pathlib import Path

import jinja2
from markupsafe import Markup, escape

from probe.core.markdown import to_html
from probe.core.texts import update_body
from probe.core.units import iso_utc
from probe.view.words import texts

HERE = Path(__file__).parent
ICONS = {"up": "✓", "degraded": "!", "partial": "◐", "down": "✕", "maintenance": "⚒", "unknown": "?"}
OVERALL_ICON = {"operational": "up", "degraded": "degraded", "minor_outage": "degraded", "partial_outage": "down",
                "major_outage": "down", "maintenance": "maintenance", "unknown": "unknown"}


def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             enable_async=False, trim_blocks=True, lstrip_blocks=True)
    env.globals.update(icons=ICONS, iso=iso_utc, sparkline=sparkline, markdown=markdown)
    return env


def page_globals(config, language: str) -> dict:
    t = texts(language)
    tz = config.page.tz

    def when(ms: int | None) -> str:
        return datetime.fromtimestamp(ms / 1000, tz).strftime("%Y-%m-%d %H:%M %Z") if ms else ""

    def cells_html(cells) -> str:
        return "".join(_cell_html(language, c.day, c.level, c.label, c.availability is not None,
                                  c.down_minutes, c.degraded_minutes, tuple(c.incidents)) for c in cells)

    def bar(monitor) -> Markup:
        """The 90 cells; the days before today come as one memoised string (see PastDays)."""
        past = monitor.past
        if past is None:
            return Markup(cells_html(monitor.days))
        if language not in past.html:
            past.html[language] = cells_html(past.cells)
        return Markup(past.html[language] + cells_html(monitor.days[len(past.cells):]))

    # The status_badge macro's output, made once: a jinja macro call per monitor costs more than the rest of its row.
    badges = {status: Markup(f'<span class="status s-{status}"><span class="icon" aria-hidden="true">{icon}</span> '
                             f'{escape(t["status." + status])}</span>') for status, icon in ICONS.items()}
    return {"t": t, "page": config.page, "when": when, "bar": bar, "badges": badges,
            "update_body": lambda u: update_body(u.status, u.kind, language),
            "maintenance_mode": config.stats.maintenance}


@functools.lru_cache(maxsize=65_536)
def _cell_html(language: str, day, level: str, label: str, has_data: bool, down_minutes: int,
               degraded_minutes: int, incidents: tuple[str, ...]) -> str:
    """One day of the uptime bar. Past days repeat render after render, so they are made
    once: 100 monitors x 90 days would otherwise dominate the cost of a cold page."""
    t = texts(language)
    lines = [day.isoformat(), label or t["no_data"]]
    if has_data:
        lines.append(t["down_minutes"].format(n=down_minutes) if down_minutes else t["no_downtime"])
        if degraded_minutes:
            lines.append(t["degraded_minutes"].format(n=degraded_minutes))
    if incidents:
        lines.append(f"{t['incidents_that_day']}: " + "; ".join(incidents))
    return f'<li class="cell l-{level}" tabindex="0" title="{escape(chr(10).join(lines))}"></li>'


def sparkline(values: list[float | None], too_little: str, width: int = 120, height: int = 24) -> Markup:
    return _sparkline(tuple(values), too_little, width, height)


@functools.lru_cache(maxsize=16_384)
def _sparkline(values: tuple[float | None, ...], too_little: str, width: int, height: int) -> Markup:
    """Memoised: a quiet monitor's last 24 hours are the same from one render to the next.
    Fewer than two hours with latencies draw no line: `too_little` says so instead."""
    points = _points(values, width, height)
    if points.count(" ") < 1:
        return Markup(f'<span class="muted spark-empty">{escape(too_little)}</span>')
    return Markup(f'<svg class="spark" viewBox="0 0 {width} {height}" role="img" aria-label="response time">'
                  f'<polyline points="{points}"/></svg>')


def _points(values: list[float | None], width: int, height: int, top: float | None = None) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return ""
    top = top or max(known) or 1
    step = width / max(1, len(values) - 1)
    return " ".join(f"{i * step:.1f},{height - 2 - (v / top) * (height - 4):.1f}"
                    for i, v in enumerate(values) if v is not None)


def markdown(text: str, inline: bool = False) -> Markup:
    """An operator's markdown (postmortems, update bodies) as safe HTML: see core/markdown.py."""
    return Markup(to_html(text, inline))
