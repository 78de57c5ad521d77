"""Long history: 1,000 monitors, a year of rollups and 30 days of raw results at 60 s.

    .venv/bin/python bench/history.py [--monitors 1000] [--raw-days 30] [--rollup-days 365]

Prints: how long generating the database took and its size on disk; the time to compute
90-day and 1-year availability of one monitor (median and p95 over a sample of monitors;
one monitor's windows are read from the file, see Stats._entries); the status page's cold render (first in a new
process, first of a new hour, and after the page cache expired).

Generation takes a faster path than the engine (which writes ~20,000 results/s, so 43 M
rows would take over half an hour): the real schema, made by the store's own migrations,
filled by SQL inside SQLite (recursive CTEs, rows in primary-key order). Raw results carry
a status, latency and lateness per check; hourly rollups of the raw period are summed from
them by SQL; older hourly rollups are generated per hour; daily rollups are summed from
hourly (page time zone UTC). Each monitor is down 15 minutes a week, each outage an incident.
Latency histograms are one representative encoded histogram per row (the size on disk is
what a real one costs; percentiles are not measured here).
"""
from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from page import pct, write_config  # noqa: E402

from probe.config.loader import load_config  # noqa: E402
from probe.core import histogram  # noqa: E402
from probe.service import Probe  # noqa: E402

HOUR_MS, DAY_MS, WEEK_MIN = 3_600_000, 86_400_000, 7 * 24 * 60
OUTAGE_MIN = 15


async def _make_schema(config_path: Path) -> None:
    config = load_config(config_path)
    probe = Probe(config)
    await probe.store.open()
    await probe._load_monitors(config.monitors)
    await probe.store.close()


def _hist() -> str:
    counts: dict[int, int] = {}
    for k in range(60):
        index = histogram.bucket_of(5 + (k * 37 % 20))
        counts[index] = counts.get(index, 0) + 1
    return histogram.encode(counts)


def generate(folder: Path, monitors: int, raw_days: int, rollup_days: int, interval_s: int = 60,
             port: int = 9) -> tuple[Path, int]:
    """Write the config and the database; returns (config path, end of history in ms)."""
    began = time.perf_counter()
    config = write_config(folder, monitors, port, f"{interval_s}s")
    asyncio.run(_make_schema(config))
    step = interval_s * 1000
    end = int(time.time() * 1000) // step * step
    raw_start = end - raw_days * DAY_MS
    old_start = (end - rollup_days * DAY_MS) // HOUR_MS * HOUR_MS
    per_week = WEEK_MIN * 60_000 // step
    down = OUTAGE_MIN * 60_000 // step
    hist = _hist()
    conn = sqlite3.connect(folder / "probe.db")
    conn.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; PRAGMA cache_size=-200000;")
    with conn:
        conn.execute("INSERT INTO reasons (id, text) VALUES (1, 'connected'), (2, 'connection refused')")
        # Raw results: monitor outer, time inner, so rows arrive in primary-key order.
        conn.execute(f"""
            WITH RECURSIVE k(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM k WHERE n < {raw_days * DAY_MS // step - 1})
            INSERT INTO results (monitor, ts, late, status, latency_us, flags, reason, details)
            SELECT m.id, {raw_start} + n * {step}, abs(random() % 40),
                   CASE WHEN (n + m.id * 977) % {per_week} < {down} THEN 2 ELSE 0 END,
                   CASE WHEN (n + m.id * 977) % {per_week} < {down} THEN NULL ELSE 5000 + abs(random() % 20000) END,
                   0, CASE WHEN (n + m.id * 977) % {per_week} < {down} THEN 2 ELSE 1 END, NULL
            FROM monitors m, k ORDER BY m.id, n""")
    generated_raw = time.perf_counter()
    with conn:
        conn.execute(f"""
            INSERT INTO rollups SELECT monitor, 0, ts - ts % {HOUR_MS},
                   sum(status = 0), sum(status = 1), sum(status = 2),
                   {step} * sum(status = 0), {step} * sum(status = 1), {step} * sum(status = 2), 0, 0,
                   count(latency_us), coalesce(sum(latency_us), 0) / 1000.0, min(latency_us) / 1000.0,
                   max(latency_us) / 1000.0, ? FROM results GROUP BY monitor, ts / {HOUR_MS}""", (hist,))
        hours = (raw_start - old_start) // HOUR_MS
        per_hour = HOUR_MS // step
        conn.execute(f"""
            WITH RECURSIVE h(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM h WHERE n < {hours - 1}),
            o AS (SELECT m.id AS monitor, n,
                         CASE WHEN (n * {per_hour} + m.id * 977) % {per_week} < {down} THEN {down} ELSE 0 END AS down
                  FROM monitors m, h ORDER BY m.id, n)
            INSERT INTO rollups SELECT monitor, 0, {old_start} + n * {HOUR_MS}, {per_hour} - down, 0, down,
                   ({per_hour} - down) * {step}, 0, down * {step}, 0, 0, {per_hour} - down,
                   ({per_hour} - down) * 14.5, 5.0, 24.9, ? FROM o""", (hist,))
        conn.execute(f"""
            INSERT INTO rollups SELECT monitor, 1, start - start % {DAY_MS}, sum(n_up), sum(n_degraded), sum(n_down),
                   sum(up_ms), sum(degraded_ms), sum(down_ms), 0, 0, sum(lat_n), sum(lat_sum), min(lat_min),
                   max(lat_max), ? FROM rollups WHERE res = 0 GROUP BY monitor, start / {DAY_MS}""", (hist,))
        # One resolved incident per outage, over the whole year.
        conn.execute(f"""
            WITH RECURSIVE w(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM w WHERE n < {rollup_days // 7 + 1})
            INSERT INTO incidents (monitor, origin, impact, status, started_ms, resolved_ms, reason, updated_ms)
            SELECT m.id, 'auto', 'major', 'resolved', s, s + {OUTAGE_MIN * 60_000}, 'connection refused',
                   s + {OUTAGE_MIN * 60_000}
            FROM (SELECT m.id AS id, {raw_start} - ((m.id * 977 * {step}) % (7 * {DAY_MS})) + {7 * DAY_MS}
                         - n * 7 * {DAY_MS} AS s FROM monitors m, w) AS m
            WHERE s >= {old_start} AND s + {OUTAGE_MIN * 60_000} < {end}""")
        conn.execute("""INSERT INTO incident_updates (incident, status, body, kind, created_ms)
                        SELECT id, 'investigating', NULL, 'open', started_ms FROM incidents""")
        conn.execute("""INSERT INTO incident_updates (incident, status, body, kind, created_ms)
                        SELECT id, 'resolved', NULL, 'resolve', resolved_ms FROM incidents""")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    print(f"  (raw results: {generated_raw - began:.0f} s, the rest: {time.perf_counter() - generated_raw:.0f} s)")
    return config, end


async def measure(config_path: Path, end: int, sample: int) -> dict[str, list[float]]:
    from probe.view import public
    from probe.web.page import render_index
    from probe.web.render import environment
    from probe.web.rows import RowCache

    config = load_config(config_path)
    probe = Probe(config)
    await probe.store.open()
    await probe._load_monitors(config.monitors)
    env, rows = environment(), RowCache()  # rows persist between renders, as in the server
    times: dict[str, list[float]] = {"90d": [], "1y": [], "page first": [], "page hour": [], "page": []}
    now = int(time.time() * 1000)
    try:
        for monitor in config.monitors[:sample]:
            for name, span in (("90d", 90 * DAY_MS), ("1y", 365 * DAY_MS)):
                started = time.perf_counter()  # one monitor alone: read from the file (Stats._entries)
                await probe.stats.availability(monitor.id, now - span, now)
                times[name].append((time.perf_counter() - started) * 1000)
        probe.store.sums.clear()
        for k in range(12):
            if k == 1:
                probe.store.sums.ranges.clear()  # what a new hour does: the windows' edges move
            started = time.perf_counter()
            view = await public.build_view(probe, now=int(time.time() * 1000))
            await render_index(env, rows, probe, view)
            times["page first" if k == 0 else "page hour" if k == 1 else "page"].append(
                (time.perf_counter() - started) * 1000)
    finally:
        await probe.store.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--monitors", type=int, default=1000)
    parser.add_argument("--raw-days", type=int, default=30)
    parser.add_argument("--rollup-days", type=int, default=365)
    parser.add_argument("--sample", type=int, default=50, help="monitors whose availability is timed")
    parser.add_argument("--keep", type=Path, help="write the database here and keep it (measure it again if it exists)")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="probe-bench-history-"))
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if args.keep and (folder / "probe.db").exists():  # measure again on a database kept before
        config, end, took = folder / "bench.toml", int(time.time() * 1000), float("nan")
    else:
        config, end = generate(folder, args.monitors, args.raw_days, args.rollup_days)
        took = time.perf_counter() - started
    db = folder / "probe.db"
    with sqlite3.connect(db) as conn:
        raw = conn.execute("SELECT count(*) FROM results").fetchone()[0]
        rollups = conn.execute("SELECT count(*) FROM rollups").fetchone()[0]
    print(f"generated {args.monitors} monitors: {raw:,} raw results ({args.raw_days} d at 60 s), {rollups:,} rollup rows "
          f"({args.rollup_days} d) in {took:.0f} s; database {db.stat().st_size / 1e6:,.0f} MB on disk")
    times = asyncio.run(measure(config, end, args.sample))
    for name in ("90d", "1y"):
        print(f"{name} availability of one monitor (Stats.availability, read from the file): median "
              f"{statistics.median(times[name]):.1f} ms, p95 {pct(times[name], 0.95):.1f} ms ({len(times[name])} monitors)")
    print(f"status page cold render ({args.monitors} monitors): first in a new process {times['page first'][0]:.0f} ms; "
          f"first of a new hour {times['page hour'][0]:.0f} ms; page cache expired: median "
          f"{statistics.median(times['page']):.0f} ms, p95 {pct(times['page'], 0.95):.0f} ms")
    if not args.keep:
        import shutil
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
