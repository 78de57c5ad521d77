"""Status page under a crowd: 100 monitors with 90 days of history.

    .venv/bin/python bench/page.py [--monitors 100] [--days 90] [--seconds 10]

Prints: the cold render time of / and /api/v2/summary.json (build + template: the first in
a new process, then the median and p95 of 19 more, as when the 5 s page cache expires), cached requests/s with wrk (64 connections) against `probe run` pinned to
one core while its checks keep running, and the start lateness of those checks during
the load. Needs wrk (apt-get install wrk); without it the throughput part is skipped.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from probe.config.loader import load_config  # noqa: E402
from probe.core.models import ResultRecord, Status  # noqa: E402
from probe.service import Probe  # noqa: E402

HISTORY_INTERVAL_S = 1200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(folder: Path, monitors: int, port: int, interval: str) -> Path:
    lines = [f'[server]\nlisten = "127.0.0.1:{port}"\n[storage]\npath = "probe.db"\n'
             f'[page]\ntitle = "Bench Status"\n[defaults]\ninterval = "{interval}"\ntimeout = "5s"\n']
    for i in range(monitors):
        lines.append(f'[[monitors]]\nid = "m{i}"\nname = "Service {i}"\ngroup = "Group {i % 8}"\n'
                     f'type = "tcp"\nhost = "127.0.0.1"\nport = {port}\n')
    path = folder / "bench.toml"
    path.write_text("\n".join(lines))
    return path


async def fill_history(config_path: Path, days: int) -> int:
    """Results every 20 minutes for `days`, with a few outages, through the real engine and store."""
    config = load_config(config_path)
    probe = Probe(config, flush_interval=0.05)
    await probe.store.open()
    await probe._load_monitors(config.monitors)
    await probe.engine.restore(config.monitors)
    rng = random.Random(7)
    now = int(time.time() * 1000)
    count = 0
    for monitor in config.monitors:
        outages = {rng.randrange(days * 72) for _ in range(3)}
        for k in range(days * 72):
            ts = now - days * 86_400_000 + k * HISTORY_INTERVAL_S * 1000
            status = Status.DOWN if k in outages or k - 1 in outages else Status.UP
            probe.record(monitor, ResultRecord(monitor.id, ts, ts, status, "bench", 5 + rng.random() * 20))
            count += 1
        await probe.store.flush()
    await probe.store.close()
    return count


async def cold_renders(config_path: Path, samples: int = 20) -> dict[str, list[float]]:
    """Time the work of an uncached request: building the view and rendering it."""
    from probe.view import public, statuspage
    from probe.web.page import render_index
    from probe.web.render import environment
    from probe.web.rows import RowCache

    config = load_config(config_path)
    probe = Probe(config)
    await probe.store.open()
    await probe._load_monitors(config.monitors)
    env, rows = environment(), RowCache()  # rows persist between renders, as in the server
    times: dict[str, list[float]] = {"/": [], "/api/v2/summary.json": []}
    try:
        for _ in range(samples):
            started = time.perf_counter()
            view = await public.build_view(probe)
            await render_index(env, rows, probe, view)
            times["/"].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            view = await public.build_view(probe, figures=False)
            shape = statuspage.Shape(probe, view, _FakeRequest())
            __import__("json").dumps(statuspage.ROUTES["summary.json"](shape))
            times["/api/v2/summary.json"].append((time.perf_counter() - started) * 1000)
    finally:
        await probe.store.close()
    return times


class _FakeRequest:
    scheme, host = "http", "127.0.0.1"


def wrk(url: str, seconds: int) -> float | None:
    if not shutil.which("wrk"):
        return None
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{seconds}s",
                          "-H", "Accept-Encoding: gzip", url],
                         capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("Requests/sec:"))
    return float(line.split()[1])


def lateness_during(db: Path, start_ms: int, end_ms: int) -> tuple[float, float, int]:
    import sqlite3
    with sqlite3.connect(db) as conn:
        late = sorted(r[0] for r in conn.execute("SELECT late FROM results WHERE ts >= ? AND ts < ?",
                                                 (start_ms, end_ms)))
    if not late:
        return float("nan"), float("nan"), 0
    return late[len(late) // 2], late[min(len(late) - 1, int(len(late) * 0.99))], len(late)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def print_cold_renders(config: Path) -> None:
    for path, values in asyncio.run(cold_renders(config)).items():
        first, rest = values[0], values[1:]
        print(f"cold render {path}: first in a new process {first:.1f} ms; then (page cache expired) "
              f"median {statistics.median(rest):.1f} ms, p95 {pct(rest, 0.95):.1f} ms")


def load_server(config: Path, port: int, seconds: int, settle_s: float, sizes: bool = False) -> None:
    """`probe run` on core 0, wrk on core 1 against / and /api/v2/summary.json, then the
    lateness of the checks that ran during the load."""
    server = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-m", "probe", "--log-level", "warning",
                               "run", "-c", str(config)], cwd=ROOT)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/")
        time.sleep(settle_s)
        if sizes:
            print_sizes(port)
        load_start = int(time.time() * 1000)
        for path in ("/", "/api/v2/summary.json"):
            rps = wrk(f"http://127.0.0.1:{port}{path}", seconds)
            print(f"cached {path}: {rps:,.0f} requests/s (wrk -t1 -c64, server on 1 core)" if rps is not None
                  else "wrk not installed: throughput skipped")
        load_end = int(time.time() * 1000)
        time.sleep(1)  # the last results reach the file
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    p50, p99, n = lateness_during(config.parent / "probe.db", load_start, load_end)
    print(f"check start lateness during the load: p50 {p50:.0f} ms, p99 {p99:.0f} ms ({n} checks); "
          f"load average {os.getloadavg()[0]:.2f}")


def wait_until_up(url: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=5).read()
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"server did not answer {url} within {timeout_s} s")


def print_sizes(port: int) -> None:
    size = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{size_download}", f"http://127.0.0.1:{port}/"],
                          capture_output=True, text=True).stdout
    packed = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{size_download}", "-H",
                             "Accept-Encoding: gzip", f"http://127.0.0.1:{port}/"], capture_output=True, text=True).stdout
    print(f"page size: {int(size or 0) / 1e3:.0f} kB, gzipped {int(packed or 0) / 1e3:.0f} kB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--monitors", type=int, default=100)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="probe-bench-page-"))
    port = free_port()
    config = write_config(folder, args.monitors, port, "10s")
    started = time.perf_counter()
    count = asyncio.run(fill_history(config, args.days))
    print(f"history: {args.monitors} monitors x {args.days} days = {count} results "
          f"in {time.perf_counter() - started:.1f} s; database {(folder / 'probe.db').stat().st_size / 1e6:.1f} MB")
    print_cold_renders(config)

    load_server(config, port, args.seconds, settle_s=3, sizes=True)
    shutil.rmtree(folder, ignore_errors=True)
    print(f"machine: {os.cpu_count()} cpus, python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
