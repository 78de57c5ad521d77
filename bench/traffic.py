"""Incident traffic: 1,000 monitors with 90 days of history, a crowd on the page, checks running.

    .venv/bin/python bench/traffic.py [--monitors 1000] [--days 90] [--seconds 10] [--interval 60]
                                      [--keep DIR] [--cold-only]

Generates the history with bench/history.py's fast path (real schema, SQL-generated rows:
90 days of rollups, 2 days of raw results), times the uncached work of `/` and
`/api/v2/summary.json` in-process (first in a new process, then page cache expired), then
starts `probe run` pinned to core 0 with every monitor checking a loopback TCP target (the
server's own port) at `--interval`, loads `/` and `/api/v2/summary.json` from core 1 with
`wrk -t1 -c64`, and reads from the database how late the checks started during the load.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from history import generate  # noqa: E402
from page import free_port, load_server, print_cold_renders  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--monitors", type=int, default=1000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--interval", type=int, default=60)
    parser.add_argument("--keep", type=Path, help="write the database here and keep it (measure it again if it exists; "
                                                  "its newest results are then as old as the database)")
    parser.add_argument("--cold-only", action="store_true", help="only the in-process cold renders, no wrk")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="probe-bench-traffic-"))
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "bench.toml"
    if args.keep and (folder / "probe.db").exists():
        port = int(config.read_text().split('listen = "127.0.0.1:', 1)[1].split('"', 1)[0])
    else:
        port = free_port()
        started = time.perf_counter()
        config, _ = generate(folder, args.monitors, 2, args.days, args.interval, port=port)
        print(f"history: {args.monitors} monitors x {args.days} days generated in {time.perf_counter() - started:.0f} s; "
              f"database {(folder / 'probe.db').stat().st_size / 1e6:.0f} MB")
    print_cold_renders(config)
    if not args.cold_only:
        load_server(config, port, args.seconds, settle_s=max(5, args.interval / 2))  # past the first round of checks
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"machine: {os.cpu_count()} cpus, python {sys.version.split()[0]}; load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
