"""Detection: from the instant a target starts failing to the incident opening, and to a webhook receiver.

    .venv/bin/python bench/detect.py [--monitors 50] [--interval 5] [--threshold 2] [--span 20]

A target server in a separate process answers /m<i> with 200 until monitor i's known
failure instant, then 503. The instants are spread over `--span` seconds after one
interval of warm-up, so they fall at every phase of the monitors' schedules. `probe run`
checks each monitor every `--interval` with failure_threshold `--threshold` and notifies
a webhook receiver (in this process). The incident counts as open when its row is in the
database (polled every 20 ms, or when its message arrives if that is sooner); delivered when
the receiver has the message.
Goals: open <= threshold x interval + 1 s after the failure; delivery <= 2 s p99 after the open.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import time
from pathlib import Path

from aiohttp import web
from common import (
    free_port,
    load_average,
    machine,
    pct,
    probe_run,
    process,
    wait_for_port,
    workdir,
    write_probe_config,
)

POLL_S = 0.02


def serve_target(port: int, fail_file: str) -> None:
    """The target process: 200 until each monitor's failure instant, 503 after."""
    fail_at = json.loads(Path(fail_file).read_text())

    async def handle(request: web.Request) -> web.Response:
        failing = time.time() >= fail_at.get(request.match_info["name"], float("inf"))
        return web.Response(status=503 if failing else 200, text="failing\n" if failing else "ok\n")

    app = web.Application()
    app.router.add_get("/{name}", handle)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def watch(db: Path, receiver: dict, monitors: int, deadline: float) -> dict[str, float]:
    """Wall-clock instants at which each monitor's incident row first appears."""
    opened: dict[str, float] = {}
    while time.time() < deadline and (len(opened) < monitors or len(receiver) < monitors):
        try:
            with sqlite3.connect(db) as conn:
                rows = conn.execute("SELECT m.key FROM incidents i JOIN monitors m ON m.id = i.monitor").fetchall()
        except sqlite3.OperationalError:  # not created yet
            rows = []
        seen = time.time()
        for (key,) in rows:
            opened.setdefault(key, seen)
        await asyncio.sleep(POLL_S)
    return opened


async def run(args, folder: Path) -> None:
    received: dict[str, float] = {}

    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        received.setdefault(body["monitor"]["id"], time.time())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    hook_port, target_port = free_port(), free_port()
    await web.TCPSite(runner, "127.0.0.1", hook_port).start()

    start = time.time() + args.interval + 5  # after start-up and one interval of good checks
    fail_at = {f"m{i}": start + i * args.span / args.monitors for i in range(args.monitors)}
    (folder / "fail.json").write_text(json.dumps(fail_at))
    extra = (f'[[notifiers]]\nid = "hook"\ntype = "webhook"\nurl = "http://127.0.0.1:{hook_port}/hook"\n'
             'events = ["open"]\n')
    config, _ = write_probe_config(folder, [f"http://127.0.0.1:{target_port}/m{i}" for i in range(args.monitors)],
                                   interval=f"{args.interval:g}s", timeout=f"{min(2.0, args.interval / 2):g}s",
                                   defaults=f'failure_threshold = {args.threshold}\nnotify = ["hook"]', extra=extra)
    with process([sys.executable, __file__, "--target", str(target_port), str(folder / "fail.json")]):
        wait_for_port(target_port)
        with probe_run(config, folder / "probe.log"):
            load = load_average()
            deadline = start + args.span + args.threshold * args.interval + 30
            seen = await watch(folder / "probe.db", received, args.monitors, deadline)
    # A message is sent only after its incident committed: if it arrived before the next
    # poll saw the row, its arrival is the better bound of the open.
    opened = {k: min(t, received.get(k, t)) for k, t in seen.items()}
    await runner.cleanup()
    report(args, fail_at, opened, received, load)
    deciding = deciding_checks(folder / "probe.db")
    line("start of the deciding (threshold-th) failed check -> incident open",
         [(opened[k] - deciding[k]) * 1000 for k in opened if k in deciding])


def deciding_checks(db: Path) -> dict[str, float]:
    """When the check whose result opened each incident started (the event's at_ms)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT m.key, e.at_ms FROM events e JOIN monitors m ON m.id = e.monitor"
                            " WHERE e.kind = 'open'").fetchall()
    return {key: at_ms / 1000 for key, at_ms in rows}


def report(args, fail_at: dict, opened: dict, received: dict, load: str) -> None:
    to_open = [(opened[k] - fail_at[k]) * 1000 for k in fail_at if k in opened]
    to_deliver = [(received[k] - opened[k]) * 1000 for k in fail_at if k in opened and k in received]
    end_to_end = [(received[k] - fail_at[k]) * 1000 for k in fail_at if k in received]
    goal = (args.threshold * args.interval + 1) * 1000
    print(f"{args.monitors} monitors failing at known instants over {args.span:g} s; interval {args.interval:g} s, "
          f"failure_threshold {args.threshold} (load average {load})")
    print(f"opened: {len(to_open)} of {args.monitors}; delivered: {len(to_deliver)} of {args.monitors}")
    line("failure -> incident open", to_open, f"goal: every one <= {goal:.0f} ms",
         bool(to_open) and max(to_open) <= goal)
    line("open -> webhook received", to_deliver, "goal: p99 <= 2000 ms",
         bool(to_deliver) and pct(to_deliver, 0.99) <= 2000)
    line("failure -> webhook received", end_to_end)


def line(label: str, values: list[float], goal: str = "", met: bool = False) -> None:
    figures = (f"p50 {pct(values, 0.5):.0f} ms, p99 {pct(values, 0.99):.0f} ms, min {min(values):.0f} ms, "
               f"max {max(values):.0f} ms" if values else "no samples")
    verdict = f"; {goal}: {'met' if met else 'NOT met'}" if goal else ""
    print(f"{label}: {figures}{verdict}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--target":
        serve_target(int(sys.argv[2]), sys.argv[3])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--monitors", type=int, default=50)
    parser.add_argument("--interval", type=float, default=5)
    parser.add_argument("--threshold", type=int, default=2)
    parser.add_argument("--span", type=float, default=20, help="seconds over which the failures start")
    args = parser.parse_args()
    print(machine())
    with workdir("detect") as folder:
        asyncio.run(run(args, folder))


if __name__ == "__main__":
    main()
