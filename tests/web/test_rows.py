"""The front page's cached rows are byte-identical to rows rendered afresh, after whatever
changes a row: a status change, a new result in today's cell, a day rollover, an incident."""
from markupsafe import Markup

from probe.core.calendar import HOUR_MS
from probe.core.models import ResultRecord, Status
from probe.core.units import now_ms
from probe.view import public
from probe.web.page import past_days, render_index
from probe.web.render import OVERALL_ICON, environment, page_globals
from probe.web.rows import SHOWN_WINDOWS, RowCache
from tests.storage.test_rollcache import CONFIG, MIN, midnight, open_probe

ENV = environment()


async def record(probe, monitor_id, ts, status=Status.UP):
    latency = None if status is Status.DOWN else 10.0
    probe.record(probe.config.monitor(monitor_id), ResultRecord(monitor_id, ts, ts, status, "r", latency))
    await probe.store.flush()


async def same_as_uncached(probe, rows: RowCache, now: int) -> str:
    """The page with the warm row cache, after checking it against one rendered with none."""
    view = await public.build_view(probe, now=now)
    warm = await render_index(ENV, rows, probe, view)
    assert warm == await render_index(ENV, RowCache(), probe, view)
    return warm.decode()


def row(page: str, monitor_id: str) -> str:
    start = page.index(f'id="m-{monitor_id}"')
    return page[start:page.index("</article>", start)]


async def test_a_cached_row_follows_every_change_it_shows(write_config):
    path = write_config(CONFIG)
    probe = await open_probe(path)
    rows = RowCache()
    yesterday, today = midnight(probe, 1), midnight(probe, 0)
    evening = yesterday + 22 * HOUR_MS
    for ts in range(evening - 2 * HOUR_MS, evening, MIN):
        await record(probe, "web", ts)
        await record(probe, "api", ts)
    first = await same_as_uncached(probe, rows, evening)
    assert 'data-status="up"' in row(first, "web")

    # A status change (down long enough to open an incident, which names yesterday's cell).
    for k in range(6):
        await record(probe, "web", evening + k * MIN, Status.DOWN)
    down = await same_as_uncached(probe, rows, evening + 6 * MIN)
    assert 'data-status="down"' in row(down, "web")
    assert row(down, "web") != row(first, "web")

    # Recovery: today's cell and the figures change, the status too.
    for k in range(6, 30):
        await record(probe, "web", evening + k * MIN)
    up_again = await same_as_uncached(probe, rows, evening + 30 * MIN)
    assert 'data-status="up"' in row(up_again, "web")

    # After midnight yesterday's cell becomes a past day and a new today begins.
    for ts in range(evening + 30 * MIN, today + 20 * MIN, MIN):
        await record(probe, "web", ts)
    after_midnight = await same_as_uncached(probe, rows, today + 20 * MIN)
    assert row(after_midnight, "web") != row(up_again, "web")
    await same_as_uncached(probe, rows, now_ms())
    await probe.store.close()


async def test_only_the_rows_that_changed_are_rendered_again(write_config):
    path = write_config(CONFIG)
    probe = await open_probe(path)
    rows = RowCache()
    now = now_ms()
    await record(probe, "web", now - 2 * MIN)
    await record(probe, "api", now - 2 * MIN)
    await same_as_uncached(probe, rows, now)
    assert rows.renders == 2
    await same_as_uncached(probe, rows, now)
    assert rows.renders == 2
    await record(probe, "web", now - MIN, Status.DOWN)
    await same_as_uncached(probe, rows, now)
    assert rows.renders == 3
    await probe.store.close()



async def test_a_text_holding_the_row_mark_gets_the_page_rendered_plainly(write_config):
    marked = CONFIG.replace('name = "API"', 'name = "API"\ngroup = "a\\u0000row\\u0000b"')
    probe = await open_probe(write_config(marked))
    now = now_ms()
    await record(probe, "web", now - MIN)
    await record(probe, "api", now - MIN)
    view = await public.build_view(probe, now=now)
    page = await render_index(ENV, RowCache(), probe, view)
    context = page_globals(probe.config, "en")
    rows = {m.id: Markup(ENV.get_template("_row.html").render(context, m=m, windows=SHOWN_WINDOWS)) for m in view.monitors}
    plain = ENV.get_template("index.html").render(**context, view=view, rows=rows, overall_icon=OVERALL_ICON[view.overall],
                                                   subscribing=False, subscribe_groups=[], maintenance_now=[],
                                                   maintenance_next=[], past=Markup(ENV.get_template("_past.html").render(
                                                       **context, past_days=past_days(probe, view))))
    assert page == plain.encode()
    assert page.count(b'<article class="monitor"') == 2
    await probe.store.close()
