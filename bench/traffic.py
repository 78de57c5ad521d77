"""Incident traffic: 1,000 monitors with 90 days of history, a crowd on the page, checks running.

    .venv/bin/python bench/traffic.py [--monitors 1000] [--days 90] [--seconds 10] [--interval 60]
                                      [--keep DIR] [--cold-only]
                                      [--engines sqlite,postgresql --rounds 3 [--url URL]]

Generates the history with bench/history.py's fast path (real schema, SQL-generated rows:
90 days of rollups, 2 days of raw results), times the uncached work of `/` and
`/api/v2/summary.json` in-process (first in a new process, then page cache expired), then
starts `probe run` pinned to core 0 with every monitor checking a loopback TCP target (the
server's own port) at `--interval`, loads `/` and `/api/v2/summary.json` from core 1 with
`wrk -t1 -c64`, and reads from the database how late the checks started during the load.

With `--engines` the cold renders only (no wrk), each in a new process, engines alternating
`--rounds` times: the SQLite history is generated as above and copied once into a fresh
PostgreSQL database with `probe storage copy` (bench/engines.py starts a durable cluster,
or uses `--url`'s server), so both engines render the very same history.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from engines import POSTGRES_SETTINGS, engines, server_version  # noqa: E402
from history import generate  # noqa: E402
from page import cold_renders, free_port, load_server, pct, print_cold_renders  # noqa: E402


def history(args) -> tuple[Path, Path, int]:
    """(folder, config, web port) of the SQLite history: generated, or the one `--keep` holds."""
    folder = args.keep or Path(tempfile.mkdtemp(prefix="probe-bench-traffic-"))
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "bench.toml"
    if args.keep and (folder / "probe.db").exists():
        return folder, config, int(config.read_text().split('listen = "127.0.0.1:', 1)[1].split('"', 1)[0])
    port = free_port()
    started = time.perf_counter()
    config, _ = generate(folder, args.monitors, 2, args.days, args.interval, port=port)
    print(f"history: {args.monitors} monitors x {args.days} days generated in {time.perf_counter() - started:.0f} s; "
          f"database {(folder / 'probe.db').stat().st_size / 1e6:.0f} MB")
    return folder, config, port


def copied_to_postgres(config: Path, url: str) -> Path:
    """The same history in PostgreSQL (`probe storage copy`), and a config reading it."""
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "probe", "storage", "copy", "-c", str(config), "--to", url],
                         cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"probe storage copy failed:\n{out.stderr[-3000:]}")
    print(f"copied to PostgreSQL with probe storage copy in {time.perf_counter() - started:.0f} s")
    target = config.with_name("bench-postgresql.toml")
    target.write_text(config.read_text().replace('path = "probe.db"', f'url = "{url}"', 1))
    return target


def renders_in_new_process(config: Path) -> dict[str, list[float]]:
    out = subprocess.run([sys.executable, __file__, "--render", str(config)], capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        sys.exit(f"render failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.splitlines()[-1])


def compare(args) -> None:
    """Cold renders of both engines on one history, alternating, each in a new process."""
    names = args.engines.split(",")
    folder, config, _ = history(args)
    runs: dict[str, list[dict]] = {name: [] for name in names}
    with engines(names, args.url) as made:
        configs = {"sqlite": config}
        if "postgresql" in names:
            db = made.fresh("postgresql", folder)
            print(f"PostgreSQL {server_version(db.url)} ({args.url or POSTGRES_SETTINGS})")
            configs["postgresql"] = copied_to_postgres(config, db.url)
        for round_ in range(1, args.rounds + 1):
            for name in names:
                load = os.getloadavg()[0]
                times = renders_in_new_process(configs[name])
                runs[name].append(times)
                first, rest = times["/"][0], times["/"][1:]
                summary = times["/api/v2/summary.json"][1:]
                print(f"round {round_} {name:10} (load {load:.2f}-{os.getloadavg()[0]:.2f}): `/` first in a new process "
                      f"{first:.0f} ms, page cache expired median {statistics.median(rest):.1f} ms, "
                      f"p95 {pct(rest, 0.95):.1f} ms; summary.json median {statistics.median(summary):.1f} ms")
    for name, times in runs.items():
        print(f"median of {len(times)} runs, {name}: `/` first in a new process "
              f"{statistics.median(t['/'][0] for t in times):.0f} ms; page cache expired "
              f"{statistics.median(statistics.median(t['/'][1:]) for t in times):.1f} ms (goal <= 50 ms)")
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--render":
        print(json.dumps(asyncio.run(cold_renders(Path(sys.argv[2])))))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--monitors", type=int, default=1000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--interval", type=int, default=60)
    parser.add_argument("--keep", type=Path, help="write the database here and keep it (measure it again if it exists; "
                                                  "its newest results are then as old as the database)")
    parser.add_argument("--cold-only", action="store_true", help="only the in-process cold renders, no wrk")
    parser.add_argument("--engines", help="e.g. sqlite,postgresql: cold renders only, engines alternating")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", help="a PostgreSQL server to use (a database is created in it)")
    args = parser.parse_args()
    if args.engines:
        compare(args)
    else:
        folder, config, port = history(args)
        print_cold_renders(config)
        if not args.cold_only:
            load_server(config, port, args.seconds, settle_s=max(5, args.interval / 2))  # past the first round of checks
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"machine: {os.cpu_count()} cpus, python {sys.version.split()[0]}; load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
