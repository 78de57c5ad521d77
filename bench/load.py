"""Page traffic against check timing: lateness and measured latency, idle and under `wrk` on `/`.

    .venv/bin/python bench/load.py [--monitors 200] [--interval 2s] [--seconds 30] [--code DIR]

200 HTTP monitors every 2 s against a local nginx (an unchanged target); `probe run` measures
them for `--seconds` with no page traffic, then for `--seconds` while `wrk -t2 -c64` asks for
`/` as fast as it can. From the database the product wrote: each window's check start
lateness (p50, p99) and measured latency (p50, p99). Goals (issue 15): lateness p99 <= 100 ms
and latency p99 within 1.25x of idle under load. `--code DIR` runs the probe package in DIR
(the previous commit, from `git archive`) for a side-by-side figure.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from common import ROOT, free_port, load_average, machine, nginx, now_ms, pct, process, workdir, write_probe_config


def wait_healthy(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("probe run did not become healthy")


def window(db: Path, start_ms: int, end_ms: int) -> dict[str, float]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT late, latency_us FROM results WHERE ts >= ? AND ts < ? AND latency_us IS NOT NULL",
                            (start_ms, end_ms)).fetchall()
    late, latency = [r[0] for r in rows], [r[1] / 1000 for r in rows]
    return {"checks": len(rows), "late_p50": pct(late, 0.5), "late_p99": pct(late, 0.99),
            "lat_p50": pct(latency, 0.5), "lat_p99": pct(latency, 0.99)}


def show(name: str, w: dict[str, float]) -> str:
    return (f"{name:5} checks {w['checks']:5d}  lateness p50 {w['late_p50']:6.1f} ms  p99 {w['late_p99']:6.1f} ms  "
            f"latency p50 {w['lat_p50']:6.2f} ms  p99 {w['lat_p99']:6.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monitors", type=int, default=200)
    parser.add_argument("--interval", default="2s")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--code", type=Path, default=ROOT)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y wrk")
    with workdir("load") as folder:
        ports = [free_port() for _ in range(4)]
        urls = [f"http://127.0.0.1:{ports[i % 4]}/m{i}" for i in range(args.monitors)]
        config, web_port = write_probe_config(folder, urls, interval=args.interval, timeout="1s")
        env = {**os.environ, "PYTHONPATH": str(args.code), "PYTHONDONTWRITEBYTECODE": "1"}
        with nginx(folder, ports), process([sys.executable, "-m", "probe", "--log-level", "warning", "run", "-c",
                                            str(config)], cwd=args.code, env=env):
            wait_healthy(web_port)
            time.sleep(5)  # first runs are spread over one interval
            idle_start = now_ms()
            time.sleep(args.seconds)
            idle_end = load_start = now_ms()
            wrk = subprocess.run(["wrk", "-t2", f"-c{args.connections}", f"-d{args.seconds}s",
                                  f"http://127.0.0.1:{web_port}/"], capture_output=True, text=True)
            load_end = now_ms()
            time.sleep(3)  # the last results reach the file
            db = folder / "probe.db"
            idle, loaded = window(db, idle_start, idle_end), window(db, load_start, load_end)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", wrk.stdout)
    print(f"code: {args.code}\nmachine: {machine()}")
    print(f"{args.monitors} monitors every {args.interval}; wrk -t2 -c{args.connections} -d{args.seconds}s on /: "
          f"{rate.group(1) if rate else '?'} requests/s; load average after {load_average()}")
    print(show("idle", idle))
    print(show("load", loaded))
    print(f"latency p99 under load / idle: {loaded['lat_p99'] / idle['lat_p99']:.2f}x")


if __name__ == "__main__":
    main()
