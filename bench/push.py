"""Push monitors under load: pings/s one `probe run` accepts while its HTTP monitors keep their schedule.

    apt-get install -y wrk nginx      # once
    .venv/bin/python bench/push.py    # --monitors 1000 --interval 10 --tokens 2000 --seconds 20

`probe run` (pinned to core 0) holds --monitors HTTP monitors checking a local nginx every
--interval seconds and --tokens push monitors. wrk (core 1, -t1 -c64) sends GET /ping/<token>
round the tokens (a Lua script), so no token passes its rate limit (10/s) unless the total
does: 2,000 tokens allow 20,000/s. Three phases of --seconds each: quiet (no pings), under
wrk round the tokens, and under wrk on one token (what a runaway script costs: all but 10/s
are refused with 429). Every figure but wrk's own is read from the database the process
wrote: pings accepted per second (push results stored), the HTTP checks done against those
due, and how late they started (p50 / p99 / max). Last, for scale, the floor of this
machine at this moment: a bare aiohttp handler answering "OK" on the same core, same wrk.
"""
from __future__ import annotations

import argparse
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from common import (
    Sampler,
    count_results,
    free_port,
    load_average,
    machine,
    nginx,
    now_ms,
    pct,
    process,
    wait_for_port,
    workdir,
    write_probe_config,
)

ROOT = Path(__file__).resolve().parents[1]
TARGET_PORTS = 4
ONE_TOKEN = 'tokens = {"%s"}\nrequest = function() return wrk.format("GET", "/ping/" .. tokens[1]) end\n'
LUA = """
tokens = {%s}
n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/ping/" .. tokens[(n %% #tokens) + 1])
end
"""


BARE = """
from aiohttp import web
async def ok(request):
    return web.Response(text="OK")
app = web.Application()
app.router.add_get("/ping/{token}", ok)
web.run_app(app, host="127.0.0.1", port=%d, access_log=None, print=None)
"""


def token(i: int) -> str:
    return f"bench-push-token-{i:06d}"


def push_monitors(count: int) -> str:
    return "".join(f'[[monitors]]\nid = "p{i}"\ngroup = "jobs"\ntype = "push"\ntoken = "{token(i)}"\n'
                   f'period = "1h"\ngrace = "1h"\n' for i in range(count))


def run_wrk(port: int, script: Path, seconds: int) -> str:
    return subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{seconds}s", "-s", str(script),
                           f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True).stdout


def phase(db: Path, start_ms: int, end_ms: int, monitors: int, interval: float, cpu: float) -> None:
    wall = (end_ms - start_ms) / 1000
    pings = count_results(db, start_ms, end_ms, "monitor IN (SELECT id FROM monitors WHERE type = 'push')")
    checks = count_results(db, start_ms, end_ms, "monitor IN (SELECT id FROM monitors WHERE type = 'http')")
    http_late = _http_lateness(db, start_ms, end_ms)  # a push result is never late: HTTP checks only
    print(f"  pings accepted (push results stored): {pings:,} = {pings / wall:,.0f}/s")
    print(f"  HTTP checks: {checks:,} done of {monitors * wall / interval:,.0f} due; start lateness "
          f"p50 {pct(http_late, 0.5):.0f} ms, p99 {pct(http_late, 0.99):.0f} ms, max "
          f"{http_late[-1] if http_late else float('nan'):.0f} ms")
    print(f"  probe run CPU: {cpu / wall * 100:.0f} % of one core; load average {load_average()}")


def _http_lateness(db: Path, start_ms: int, end_ms: int) -> list[int]:
    with sqlite3.connect(db) as conn:
        return sorted(r[0] for r in conn.execute(
            "SELECT late FROM results WHERE ts >= ? AND ts < ? AND monitor IN"
            " (SELECT id FROM monitors WHERE type = 'http')", (start_ms, end_ms)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--monitors", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=10)
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y wrk")
    print(machine())
    with workdir("push") as folder:
        ports = [free_port() for _ in range(TARGET_PORTS)]
        urls = [f"http://127.0.0.1:{ports[i % len(ports)]}/m{i}" for i in range(args.monitors)]
        config, port = write_probe_config(folder, urls, interval=f"{args.interval:g}s", timeout="5s",
                                          extra=push_monitors(args.tokens))
        scripts = {"quiet": None, "under wrk, round the tokens": folder / "round.lua",
                   "under wrk, one token": folder / "one.lua"}
        scripts["under wrk, round the tokens"].write_text(LUA % ",".join(f'"{token(i)}"' for i in range(args.tokens)))
        scripts["under wrk, one token"].write_text(ONE_TOKEN % token(0))
        db = folder / "probe.db"
        argv = ["taskset", "-c", "0", sys.executable, "-m", "probe", "--log-level", "warning", "run", "-c", str(config)]
        with nginx(folder, ports), process(argv, cwd=ROOT) as probe:
            wait_for_port(port, 120)
            time.sleep(args.interval + 2)  # every monitor has run once: start-up is behind
            for name, script in scripts.items():
                sampler = Sampler(probe.pid)
                sampler.start()
                start = now_ms()
                out = run_wrk(port, script, args.seconds) if script else time.sleep(args.seconds)
                end = now_ms()
                cpu, _ = sampler.cpu_since()
                time.sleep(1.5)  # the last batches commit
                print(f"{name} ({args.seconds} s): {args.monitors:,} HTTP monitors every {args.interval:g} s, "
                      f"{args.tokens:,} push monitors")
                phase(db, start, end, args.monitors, args.interval, cpu)
                if out:
                    print_wrk(out)
        bare = free_port()
        with process(["taskset", "-c", "0", sys.executable, "-c", BARE % bare]):
            wait_for_port(bare)
            print(f"floor: a bare aiohttp handler on core 0, same wrk ({args.seconds} s), load average {load_average()}")
            print_wrk(run_wrk(bare, scripts["under wrk, round the tokens"], args.seconds))


def print_wrk(out: str) -> None:
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    latency = next((line.split()[1:3] for line in out.splitlines() if "Latency" in line), ["?", "?"])
    print(f"  wrk: {float(rate.group(1)):,.0f} requests/s answered, non-2xx: {int(non2xx.group(1)) if non2xx else 0:,}"
          f", latency avg {latency[0]} (stdev {latency[1]})")


if __name__ == "__main__":
    main()
