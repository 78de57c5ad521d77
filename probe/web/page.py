"""The status page: /, /monitors/{id}, /incidents/{id}, /history. Server-rendered, cached."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

from aiohttp import web
from markupsafe import Markup

from probe.core.texts import display_title
from probe.core.units import now_ms
from probe.storage import DAILY, HOURLY
from probe.view import maintenance, public
from probe.view.words import texts
from probe.web import charts
from probe.web.cache import RenderCache, respond
from probe.web.keys import CACHE, ENV, PROBE, ROWS
from probe.web.render import OVERALL_ICON, environment, page_globals
from probe.web.rows import RowCache

STATIC = Path(__file__).parent / "static"
HISTORY_PAGE = 20
HISTORY_MAINTENANCE_MS = 365 * 86_400_000  # how far back the first page lists maintenance
DAY_MS, HOUR_MS = 86_400_000, 3_600_000


def add_routes(app: web.Application) -> None:
    app[ENV] = environment()
    app[CACHE] = RenderCache(generation=app[PROBE].public_generation)
    app[ROWS] = RowCache()
    app.router.add_get("/", index)
    app.router.add_get("/monitors/{id}", monitor_page)
    app.router.add_get("/incidents/{id}", incident_page)
    app.router.add_get("/history", history_page)
    app.router.add_static("/static", str(STATIC), append_version=False)


def _probe(request: web.Request):
    return request.app[PROBE]


def render(request: web.Request, template: str, **context) -> bytes:
    probe = _probe(request)
    language = probe.config.page.language
    html = request.app[ENV].get_template(template).render(**page_globals(probe.config, language), **context)
    return html.encode()


async def _cached(request: web.Request, build, params: tuple[str, ...] = ()) -> web.Response:
    """Keyed by path and the parameters the page reads: any other query string is ignored,
    so visitors cannot make the server render once per request by adding "?x=1"."""
    key = request.path + "".join(f"&{k}={request.query[k]}" for k in params if k in request.query)
    entry = await request.app[CACHE].get(key, build)
    return respond(request, entry)


async def index(request: web.Request) -> web.Response:
    async def build():
        probe = _probe(request)
        view = await public.build_view(probe, language=probe.config.page.language)
        return await render_index(request.app[ENV], request.app[ROWS], probe, view), "text/html"
    return await _cached(request, build)


ROW_MARK = Markup("\x00row\x00")  # where index.html puts a row; no text of a page holds it (see render_index)


async def render_index(env, rows: RowCache, probe, view: public.PublicView) -> bytes:
    """The front page: the monitors' rows come from `rows`, rendered again only where they changed.
    The template is rendered with a mark in each row's place, and the page is joined as bytes."""
    language = probe.config.page.language
    context = page_globals(probe.config, language)
    shown = await rows.rows(env.get_template("_row.html"), context, language, view.monitors)
    template = env.get_template("index.html")
    running, upcoming = maintenance.front_page(probe, view.maintenance, view.now_ms,
                                               probe.config.page.upcoming * 1000, language)
    past_key = (probe.store.incidents_version, probe.config_version, probe.store.calendar.date_of(view.now_ms), language)
    past = rows.section(past_key, lambda: env.get_template("_past.html").render(**context, past_days=past_days(probe, view)))
    extra = {"overall_icon": OVERALL_ICON[view.overall], "subscribing": probe.config.subscribers.email,
             "subscribe_groups": probe.notify.subscribers.groups(), "maintenance_now": running,
             "maintenance_next": upcoming, "past": Markup(past)}
    pieces = template.render(**context, **extra, view=view, rows=dict.fromkeys(shown, ROW_MARK)).split(ROW_MARK)
    order = [m.id for _, monitors in view.groups for m in monitors]
    if len(pieces) != len(order) + 1:  # a text holds the mark (a name with NUL characters): no shortcut
        html = {key: Markup(row.decode()) for key, row in shown.items()}
        return template.render(**context, **extra, view=view, rows=html).encode()
    out = [pieces[0].encode()]
    for monitor_id, piece in zip(order, pieces[1:]):
        out += (shown[monitor_id], piece.encode())
    return b"".join(out)


PAST_DAYS = 14  # the front page's past incidents, day by day, as Statuspage shows them
PAST_PER_DAY = 5  # a flapping day's others are in the history, not on the front page


def past_days(probe, view: public.PublicView) -> list[tuple[date, list[public.IncidentView], int]]:
    """The last PAST_DAYS days (page time zone), newest first, each with (at most PAST_PER_DAY of)
    the incidents that started on it and how many more there were."""
    calendar = probe.store.calendar
    today = calendar.date_of(view.now_ms)
    first = calendar.local_midnight(today - timedelta(days=PAST_DAYS - 1))
    days: dict[date, list] = {today - timedelta(days=k): [] for k in range(PAST_DAYS)}
    for item in view.incidents.started_since(first) if isinstance(view.incidents, public.IncidentViews) else []:
        days.setdefault(calendar.date_of(item.incident.started_ms), []).append(item)
    return [(day, items[:PAST_PER_DAY], len(items) - len(items[:PAST_PER_DAY])) for day, items in days.items()]


async def monitor_page(request: web.Request) -> web.Response:
    probe = _probe(request)
    monitor_id = request.match_info["id"]
    if not public.is_public(probe, monitor_id):
        raise web.HTTPNotFound(text="monitor not found")

    async def build():
        now = now_ms()
        view = await public.build_view(probe, now, probe.config.page.language)
        m = view.monitor(monitor_id)
        incidents = [i for i in view.incidents if monitor_id in i.incident.monitor_ids]
        hourly, daily = await latency_charts(probe, monitor_id, now)
        upstream, downstream = public.neighbours(probe, view, monitor_id)
        return render(request, "monitor.html", m=m, months=await _months(probe, monitor_id, now),
                      hourly=hourly, daily=daily, incidents=incidents, upstream=upstream,
                      downstream=downstream), "text/html"
    return await _cached(request, build)


async def latency_charts(probe, monitor_id: str, now: int) -> tuple[Markup, Markup]:
    """The monitor page's two charts: per hour over 7 days (this hour: each check, from the raw
    results) and per day over 90 days."""
    store, tz = probe.store, probe.config.page.tz
    words = texts(probe.config.page.language)
    hourly = await store.rollup_series([monitor_id], HOURLY, now - 7 * DAY_MS, now + 1)
    daily = await store.rollup_series([monitor_id], DAILY, now - 90 * DAY_MS, now + 1)
    this_hour = await store.results(monitor_id, now - now % HOUR_MS, now + 1, limit=5000)
    raw = [(r.ts_ms, r.latency_ms) for r in this_hour if r.latency_ms is not None]
    return (charts.chart(public.percentiles(hourly[monitor_id]), HOUR_MS, now, 7 * DAY_MS, tz, words, raw),
            charts.chart(public.percentiles(daily[monitor_id]), DAY_MS, now, 90 * DAY_MS, tz, words))


async def _months(probe, monitor_id: str, now: int) -> list[tuple[str, str]]:
    """Availability of each of the last 12 calendar months (page time zone)."""
    from probe.view.stats import format_availability
    calendar, mode = probe.store.calendar, probe.config.stats.maintenance
    today = calendar.date_of(now)
    out = []
    for back in range(12):
        year, month = divmod(today.year * 12 + today.month - 1 - back, 12)
        start, end = calendar.month_bounds(year, month + 1)
        d = (await probe.stats.durations([monitor_id], start, min(end, now), now)).get(monitor_id)
        value = d.availability(mode) if d else None
        label = date(year, month + 1, 1).strftime("%Y-%m")
        out.append((label, format_availability(value, d.downtime_ms(mode)) if value is not None else ""))
    return out


async def incident_page(request: web.Request) -> web.Response:
    probe = _probe(request)
    raw = request.match_info["id"]
    number = public.whole_number(raw, 18)
    incident = await probe.store.incident(number) if number is not None else None
    if incident is None or not public.incident_is_public(public.public_ids(probe), incident):
        raise web.HTTPNotFound(text="incident not found")

    async def build():
        view = await _incident_view(probe, incident)
        return render(request, "incident.html", view=view), "text/html"
    return await _cached(request, build)


async def _incident_view(probe, incident) -> public.IncidentView:
    language = probe.config.page.language
    monitors = {m.id: m for m in public.public_monitors(probe)}
    affected = [public.MonitorView(m.id, m.display_name, m.group, "", "", "", None, None, None, {}, {})
                for m in (monitors.get(key) for key in incident.monitor_ids) if m is not None]  # its own first
    updates = (await probe.store.incident_updates([incident.id]))[incident.id]
    name = affected[0].name if affected else ""
    return public.IncidentView(incident, display_title(incident, name, language), affected, updates)


async def history_page(request: web.Request) -> web.Response:
    probe = _probe(request)
    before = request.query.get("before", "")
    before_ms = public.whole_number(before) if before else None
    if before and before_ms is None:
        raise web.HTTPBadRequest(text="before must be a time in milliseconds")

    async def build():
        now = now_ms()
        months, older = await history_months(probe, now, before_ms)
        return render(request, "history.html", months=months, older=older, now=now,
                      maintenance_state=lambda w: maintenance.state(probe, w, now)), "text/html"
    return await _cached(request, build, ("before",))


async def history_months(probe, now: int, before_ms: int | None) -> tuple[list[tuple[str, list]], int | None]:
    """A page of history: incidents and the maintenance of the same span, by month (page time zone),
    newest first; and where the next page starts (None: this is the last)."""
    shown = await public.public_incidents(probe, HISTORY_PAGE, before_ms)
    views = [await _incident_view(probe, i) for i in shown]
    older = shown[-1].started_ms if len(shown) == HISTORY_PAGE else None
    # Maintenance of the same span (past and current: upcoming windows are on the front page).
    span_end = min(before_ms or now, now)
    windows = [w for w in public.public_windows(probe, older or now - HISTORY_MAINTENANCE_MS, span_end)
               if w.start_ms <= now]
    items = [(v.incident.started_ms, v) for v in views] + [(w.start_ms, w) for w in windows]
    months: dict[str, list] = {}
    for started_ms, item in sorted(items, key=lambda pair: pair[0], reverse=True):
        key = datetime.fromtimestamp(started_ms / 1000, probe.config.page.tz).strftime("%Y-%m")
        months.setdefault(key, []).append(item)
    return list(months.items()), older
