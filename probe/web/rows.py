"""Each monitor's row of the front page, kept as HTML and rendered again only when what it shows changes.

At 1,000 monitors the template's work per row (90 cells, escaping, attribute look-ups) was
most of a cold render, yet two renders 5 s apart mostly show the same rows. A row is a pure
function of its key (everything `_row.html` reads from the monitor, and the language), so a
row from here is byte-identical to one rendered afresh.
"""
from __future__ import annotations

import asyncio

SHOWN_WINDOWS = ("24h", "30d", "90d")  # the availability figures a row shows (the template loops over these)
YIELD_EVERY = 100  # rows between two returns to the event loop: checks due during a render start on time


def row_key(m) -> tuple:
    """Everything the row shows. The past days are one object per monitor that changes only when
    one of them does (PastDays, compared by identity), so only today's cell is compared by value."""
    past = m.past
    days = tuple(m.days[len(past.cells):]) if past is not None else tuple(m.days)
    return (m.name, m.status, m.description, m.target, tuple(m.uptime_label.get(w) for w in SHOWN_WINDOWS),
            past, days, tuple(m.sparkline))


class RowCache:
    """Rows are kept as UTF-8: the page is put together as bytes (web/page.py), so the 8 MB of
    rows of 1,000 monitors are neither escaped, copied into one string nor encoded again."""

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, tuple[tuple, bytes]]] = {}  # language -> monitor id -> (key, html)
        self._section: tuple[tuple, str] | None = None  # the past 14 days: (key, html)
        self.renders = 0  # rows rendered (for tests and benchmarks)

    def section(self, key: tuple, render) -> str:
        """The front page's past incidents, rendered again only when `key` (incidents, config,
        day, language) changes: a day of a flapping monitor is dozens of cards."""
        if self._section is None or self._section[0] != key:
            self._section = key, render()
        return self._section[1]

    async def rows(self, template, context: dict, language: str, monitors) -> dict[str, bytes]:
        """The row of each monitor by id, as UTF-8 HTML. Rows of monitors no longer shown are dropped."""
        known = self._rows.get(language, {})
        fresh: dict[str, tuple[tuple, bytes]] = {}
        for index, m in enumerate(monitors):
            key = row_key(m)
            hit = known.get(m.id)
            if hit is None or hit[0] != key:
                hit = key, template.render(context, m=m, windows=SHOWN_WINDOWS).encode()
                self.renders += 1
            fresh[m.id] = hit
            if index % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)
        self._rows[language] = fresh
        return {mid: html for mid, (_, html) in fresh.items()}
