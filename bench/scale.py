"""Scale: 10,000 HTTP monitors at a 30 s interval in one `probe run`, for 10 minutes.

    .venv/bin/python bench/scale.py [--monitors 10000] [--interval 30] [--duration 600]
                                    [--engines sqlite,postgresql] [--url URL]

Against a local nginx (8 ports, so ephemeral ports spread over more 4-tuples). Prints
the CPU share of one core (utime + stime from /proc over the run after the first
interval, and over the first interval, which holds start-up), RSS (sampled each second;
max), start lateness p50 / p99 / max read from the `late` column the store writes for
every result, and the database growth per day (see `growth()` for the method).
`--engines sqlite,postgresql` runs once on each, one after the other, each on a fresh database
(PostgreSQL: a durable cluster bench/engines.py starts, or `--url`'s server), and reports the
server's CPU apart.
Needs nginx (apt-get install -y nginx).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common import (
    Sampler,
    count_results,
    free_port,
    lateness,
    load_average,
    machine,
    nginx,
    now_ms,
    pct,
    probe_run,
    workdir,
    write_probe_config,
)
from engines import POSTGRES_SETTINGS, Database, engines, server_version

TARGET_PORTS = 8
ROLLUP_ROWS_PER_MONITOR_DAY = 24 + 1  # hourly (UTC) + one daily row


def growth(db: Database, monitors: int, interval: float, measured: tuple[int, float]) -> None:
    """Per day = raw rows a day x bytes per raw row + rollup rows a day x bytes per rollup row.

    Bytes per row are measured in this database (SQLite: dbstat's b-tree pages / rows;
    PostgreSQL: pg_total_relation_size / rows, indexes and dead row versions included). A day's
    raw rows are monitors x 86,400 / interval; a day's rollup rows are 25 per monitor, whatever
    the interval. The database's own growth over the window, scaled to a day, is printed beside it.
    """
    tables = db.table_sizes()
    raw_b, raw_n = tables.get("results", (0, 0))
    roll_b, roll_n = tables.get("rollups", (0, 0))
    per_raw, per_roll = raw_b / max(raw_n, 1), roll_b / max(roll_n, 1)
    raw_day = monitors * 86_400 / interval * per_raw
    roll_day = monitors * ROLLUP_ROWS_PER_MONITOR_DAY * per_roll
    grown, seconds = measured
    print(f"database: {raw_n:,} raw rows at {per_raw:.1f} B each, {roll_n:,} rollup rows at {per_roll:.0f} B each")
    print(f"  growth per day (rows a day x bytes a row): raw {raw_day / 1e6:,.0f} MB + rollups "
          f"{roll_day / 1e6:,.1f} MB = {(raw_day + roll_day) / 1e6:,.0f} MB/day; with raw_retention 30d the file "
          f"levels off near {(30 * raw_day + 400 * roll_day) / 1e9:,.1f} GB (30 days raw + 400 days rollups)")
    print(f"  measured: the database's bytes in use grew {grown / 1e6:.1f} MB in {seconds:.0f} s "
          f"= {grown / seconds * 86_400 / 1e6:,.0f} MB/day")


def run(folder: Path, db: Database, args) -> None:
    ports = [free_port() for _ in range(TARGET_PORTS)]
    urls = [f"http://127.0.0.1:{ports[i % len(ports)]}/m{i}" for i in range(args.monitors)]
    config, _ = write_probe_config(folder, urls, interval=f"{args.interval:g}s",
                                   timeout=f"{min(10.0, args.interval / 2):g}s", storage=db.storage_toml())
    with nginx(folder, ports), probe_run(config, folder / "probe.log") as probe:
        sampler = Sampler(probe.pid)
        sampler.start()
        begin_ms, loads, steady = now_ms(), [], None
        warm = min(args.interval + 3, args.duration / 2)
        while (elapsed := time.monotonic() - sampler.t0) < args.duration:
            if probe.poll() is not None:
                sys.exit(f"probe run exited: {(folder / 'probe.log').read_text()[-2000:]}")
            sampler.sample_rss()
            if elapsed >= warm and steady is None:
                startup_cpu, startup_wall = sampler.cpu_since()
                steady, steady_ms, steady_bytes = Sampler(probe.pid), now_ms(), db.used_bytes()
                steady.start()
                server0 = db.server_cpu()
                loads.append(load_average())
            if int(elapsed) % 60 == 0:
                loads.append(load_average())
            time.sleep(1)
        cpu, wall = steady.cpu_since()
        server_cpu = db.server_cpu() - server0
        end_ms = now_ms()
        time.sleep(1)  # the last batch commits
        grown = db.used_bytes() - steady_bytes
        late = lateness(db, steady_ms, end_ms)
        checks = count_results(db, steady_ms, end_ms)
        expected = args.monitors * (end_ms - steady_ms) / 1000 / args.interval
        print(f"{args.monitors:,} monitors every {args.interval:g} s for {args.duration:.0f} s on {db.engine} "
              f"(load averages during the run: {' | '.join(dict.fromkeys(loads))})")
        print(f"start-up + first interval ({startup_wall:.0f} s): {startup_cpu / startup_wall * 100:.0f} % of a core")
        print(f"after it ({wall:.0f} s): CPU {cpu / wall * 100:.1f} % of one core (goal <= 50 %); "
              f"{checks:,} checks of {expected:,.0f} due = {cpu / max(checks, 1) * 1000:.3f} ms CPU per check")
        if db.engine == "postgresql":
            print(f"PostgreSQL server: CPU {server_cpu / wall * 100:.1f} % of one core = "
                  f"{server_cpu / max(checks, 1) * 1000:.3f} ms per check")
        print(f"RSS max {sampler.max_rss:.0f} MB (goal <= 200 MB)")
        print(f"start lateness: p50 {pct(late, 0.5):.0f} ms, p99 {pct(late, 0.99):.0f} ms, "
              f"max {late[-1] if late else float('nan'):.0f} ms (goal p99 <= 250 ms)")
        growth(db, args.monitors, args.interval, (grown, (end_ms - steady_ms) / 1000))
        print(f"raw results since start: {count_results(db, begin_ms, end_ms):,}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=30)
    parser.add_argument("--duration", type=float, default=600, help="seconds, start-up included")
    parser.add_argument("--keep", action="store_true", help="keep the database and logs (the folder is printed)")
    parser.add_argument("--engines", default="sqlite", help="sqlite, postgresql, or both in turn: sqlite,postgresql")
    parser.add_argument("--url", help="a PostgreSQL server to use (a database per run is created in it)")
    args = parser.parse_args()
    print(machine())
    names = args.engines.split(",")
    with workdir("scale", keep=args.keep) as folder, engines(names, args.url) as made:
        if args.keep:
            print(f"folder: {folder}")
        for name in names:
            run_folder = folder / name
            run_folder.mkdir()
            db = made.fresh(name, run_folder)
            if name == "postgresql":
                print(f"PostgreSQL {server_version(db.url)} ({args.url or POSTGRES_SETTINGS})")
            run(run_folder, db, args)

if __name__ == "__main__":
    main()
