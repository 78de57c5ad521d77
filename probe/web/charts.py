"""The monitor page's response-time charts: server-rendered SVG, no script in the browser.

A chart spans from its first data to now (at most its window: 7 or 90 days), so a monitor one
minute old has a chart of one minute. Completed buckets (hours, days) are drawn as their p50
and p95 from the rollups; the current hour as each check, from the raw results, so the first
hour is not an empty box. The plot stretches to the page's width (its own viewBox, strokes of a
fixed width), while the axis labels are text in CSS pixels: readable at 390 px as at 1280 px,
in light and dark (colours come from the stylesheet). Too little to draw is a sentence.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

PLOT_W, PLOT_H = 1000, 150  # the plot's own units; it is stretched to the chart's box
TOP_PX, BOTTOM_PX = 10, 22  # room above the plot, and below it for the time labels
HEIGHT_PX = TOP_PX + PLOT_H + BOTTOM_PX
MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000
# (longest span, step between two labels, format): three to seven labels whatever the span
TICKS = ((90_000, 15_000, "%H:%M:%S"), (3 * MIN, 30_000, "%H:%M:%S"), (10 * MIN, 2 * MIN, "%H:%M"), (30 * MIN, 5 * MIN, "%H:%M"),
         (2 * HOUR, 15 * MIN, "%H:%M"), (12 * HOUR, 2 * HOUR, "%H:%M"), (2 * DAY, 6 * HOUR, "%H:%M"),
         (10 * DAY, DAY, "%m-%d"), (2**62, 14 * DAY, "%m-%d"))


def chart(buckets: list[tuple[int, list[float | None]]], bucket_ms: int, now: int, window_ms: int, tz: ZoneInfo,
          words: dict[str, str], raw: list[tuple[int, float]] | None = None) -> Markup:
    """p50 and p95 per bucket (start, [p50, p95]); with `raw`, the checks of the current bucket as
    (time, ms) stand for it. The x axis in `tz`, the y axis in milliseconds."""
    done = [(min(start + bucket_ms // 2, now), values) for start, values in buckets
            if (start + bucket_ms <= now or raw is None) and values[0] is not None]
    raw = raw or []
    points = [t for t, _ in done] + [t for t, _ in raw]
    if len(points) < 2:
        return Markup(f'<p class="chart-empty muted">{escape(words["chart.not_enough"])}</p>')
    start = max(now - window_ms, min(points) - (bucket_ms // 2 if done else 0))
    top = _nice(max([v[1] or v[0] for _, v in done] + [ms for _, ms in raw]))
    x = _scale(start, now)
    lines = "".join(_polyline(name, [(x(t), v[i]) for t, v in done], top) for i, name in enumerate(("p50", "p95"))
                    if done)
    lines += _polyline("raw", [(x(t), ms) for t, ms in raw], top) if raw else ""
    label = words["chart.label"].format(start=_local(start, tz, "%Y-%m-%d %H:%M"),
                                        end=_local(now, tz, "%Y-%m-%d %H:%M %Z"), top=f"{top:g}")
    svg = (f'<svg class="chart" width="100%" height="{HEIGHT_PX}" role="img" aria-label="{escape(label)}">'
           f'{_grid(top)}<svg x="0" y="{TOP_PX}" width="100%" height="{PLOT_H}" viewBox="0 0 {PLOT_W} {PLOT_H}" '
           f'preserveAspectRatio="none">{lines}</svg>{_time_labels(start, now, tz, DAY if bucket_ms >= DAY else 0)}</svg>')
    return Markup(svg + _legend(words, bool(done), bool(raw)))


def _scale(start: int, end: int):
    span = max(1, end - start)
    return lambda t: (t - start) / span * PLOT_W


def _nice(value: float) -> float:
    """A round top for the y axis, at or above `value` (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def _polyline(name: str, points: list[tuple[float, float | None]], top: float) -> str:
    coords = " ".join(f"{x:.1f},{PLOT_H - (v / top) * (PLOT_H - 2) - 1:.1f}" for x, v in points if v is not None)
    if " " not in coords:  # one point: a dot, drawn as a line of no length with round ends
        coords = f"{coords} {coords}"
    return f'<polyline class="{name}" vector-effect="non-scaling-stroke" points="{coords}"/>'


def _grid(top: float) -> str:
    """Lines at 0, half and the top, each labelled in milliseconds at the left."""
    out = []
    for fraction in (0.0, 0.5, 1.0):
        y = TOP_PX + PLOT_H - fraction * (PLOT_H - 2) - 1
        out.append(f'<line class="grid" x1="0" x2="100%" y1="{y:.1f}" y2="{y:.1f}"/>'
                   f'<text class="axis" x="2" y="{y - 3:.1f}">{top * fraction:g} ms</text>')
    return "".join(out)


def _time_labels(start: int, end: int, tz: ZoneInfo, min_step: int) -> str:
    """Times in the page's zone at round steps (a daily chart's are dates), placed by percentage of the width."""
    span, step, fmt = next(t for t in TICKS if end - start <= t[0] and t[1] >= min_step or t[0] == 2**62)
    local = datetime.fromtimestamp(start / 1000, tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if step >= DAY:
        first = midnight
    else:  # the last round step of the local day at or before the start
        into_day_ms = int((local - midnight).total_seconds() * 1000)
        first = datetime.fromtimestamp((start - into_day_ms % step) / 1000, tz)
    out, moment = [], first
    while (ms := int(moment.timestamp() * 1000)) <= end:
        share = (ms - start) / max(1, end - start)
        if 0.04 <= share <= 0.93:  # not under the y labels, not cut at the right edge
            out.append(f'<text class="axis" x="{share * 100:.2f}%" y="{HEIGHT_PX - 6}" text-anchor="middle">'
                       f'{moment.strftime(fmt)}</text>')
        moment = _next(moment, step, tz)
    return "".join(out)


def _next(moment: datetime, step_ms: int, tz: ZoneInfo) -> datetime:
    """The next tick: whole local days step by calendar (a DST day is 23 or 25 hours)."""
    if step_ms >= 86_400_000:
        day = (moment.replace(tzinfo=None) + timedelta(days=step_ms // 86_400_000)).replace(hour=0)
        return day.replace(tzinfo=tz)
    return datetime.fromtimestamp(moment.timestamp() + step_ms / 1000, tz)


def _legend(words: dict[str, str], buckets: bool, raw: bool) -> str:
    keys = (["p50", "p95"] if buckets else []) + (["raw"] if raw else [])
    items = "".join(f'<li><span class="key {k}" aria-hidden="true"></span>{escape(words["chart." + k])}</li>'
                    for k in keys)
    return f'<ul class="chart-legend muted">{items}</ul>'


def _local(ms: int, tz: ZoneInfo, fmt: str) -> str:
    return datetime.fromtimestamp(ms / 1000, tz).strftime(fmt)
