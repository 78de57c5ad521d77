"""Cost per check: CPU time of `probe run` per HTTP check, beside blackbox_exporter, same target, same run.

    .venv/bin/python bench/cost.py [--sizes 1000,10000] [--seconds 60]
                                   [--engines sqlite,postgresql] [--rounds 3] [--url URL] [--no-blackbox]

For each size: `probe run` with that many HTTP monitors against a local nginx
(interval 10 s up to 1,000 monitors, 30 s above: 100 and 333 checks/s). After one full
interval of warm-up (every monitor has run once), for `--seconds` the probe's CPU time
(utime + stime from /proc, all threads: checks, store writer, incident engine, web
server) is divided by the checks it stored in that window. Meanwhile a separate
process asks blackbox_exporter (http_2xx) for /probe?target=... at the same rate, over
keep-alive, and the exporter's CPU time is divided by the probes it answered.
With `--engines sqlite,postgresql` each size runs on each engine in turn, `--rounds` times
(A B A B ...), each run on a fresh database; for PostgreSQL the CPU of the cluster (all its
processes, bench/engines.py) is measured over the same window and reported apart.
Needs nginx and prometheus-blackbox-exporter (apt-get install -y nginx prometheus-blackbox-exporter).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from common import (
    Sampler,
    count_results,
    free_port,
    load_average,
    machine,
    nginx,
    now_ms,
    probe_run,
    process,
    wait_for_port,
    workdir,
    write_probe_config,
)
from engines import POSTGRES_SETTINGS, Database, engines, server_version

BLACKBOX = "prometheus-blackbox-exporter"
BLACKBOX_CONFIG = """\
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
"""
TARGET_PORTS = 8
CHECK_TIMEOUT_S = 5


def interval_for(size: int) -> int:
    return 10 if size <= 1000 else 30


async def drive(url: str, targets: list[str], rate: float, seconds: float) -> dict:
    """Ask the exporter for one probe every 1/rate s (open loop, like a scheduler), for `seconds`."""
    import aiohttp
    counts = {"sent": 0, "ok": 0, "failed": 0}

    async def one(session, target):
        try:
            async with session.get(url, params={"target": target, "module": "http_2xx"}) as resp:
                text = await resp.text()
            counts["ok" if "probe_success 1" in text else "failed"] += 1
        except aiohttp.ClientError:
            counts["failed"] += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        started, tasks = time.monotonic(), set()
        while (elapsed := time.monotonic() - started) < seconds:
            while counts["sent"] < elapsed * rate:
                task = asyncio.create_task(one(session, targets[counts["sent"] % len(targets)]))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                counts["sent"] += 1
            await asyncio.sleep(0.01)
        await asyncio.gather(*tasks)
    return counts


def measure(run: Path, db: Database, size: int, seconds: float, ports: list[int], bb: tuple[int, int] | None) -> dict:
    """One run of `size` monitors writing to `db`; `bb` the exporter's (port, pid), or None to skip it."""
    interval = interval_for(size)
    urls = [f"http://127.0.0.1:{ports[i % len(ports)]}/m{i}" for i in range(size)]
    run.mkdir()
    config, _ = write_probe_config(run, urls, interval=f"{interval}s", timeout=f"{CHECK_TIMEOUT_S}s",
                                   storage=db.storage_toml())
    with probe_run(config, run / "probe.log") as probe:
        time.sleep(interval + 3)  # every monitor has run once: start-up is not in the figure
        if probe.poll() is not None:
            sys.exit(f"probe run exited: {(run / 'probe.log').read_text()[-2000:]}")
        mine = Sampler(probe.pid)
        if bb:
            theirs = Sampler(bb[1])
            driver = subprocess.Popen([sys.executable, __file__, "--drive", f"http://127.0.0.1:{bb[0]}/probe",
                                       str(size / interval), str(seconds), *urls[:200]],
                                      stdout=subprocess.PIPE, text=True)
            theirs.start()
        start_ms, server0 = now_ms(), db.server_cpu()
        mine.start()
        load = load_average()
        time.sleep(seconds)
        probe_cpu, wall = mine.cpu_since()
        server_cpu, end_ms = db.server_cpu() - server0, now_ms()
        bb_counts, bb_cpu = ({"ok": 0, "failed": 0}, 0.0)
        if bb:
            bb_counts = json.loads(driver.communicate(timeout=60)[0])
            bb_cpu, _ = theirs.cpu_since()  # the driver waited for its last answers: they count
        rss = mine.sample_rss()
        time.sleep(CHECK_TIMEOUT_S + 1)  # every check started in the window has its result stored
        checks = count_results(db, start_ms, end_ms)
        failed = count_results(db, start_ms, end_ms, "status != 0")
    return {"engine": db.engine, "size": size, "interval": interval, "wall": wall, "checks": checks, "failed": failed,
            "probe_cpu": probe_cpu, "server_cpu": server_cpu, "rss": rss, "bb": bb_counts if bb else None,
            "bb_cpu": bb_cpu, "load": f"{load} - {load_average()}"}


def report(m: dict) -> None:
    per_check = m["probe_cpu"] / max(m["checks"], 1) * 1000
    print(f"{m['size']:,} monitors every {m['interval']} s on {m['engine']}, {m['wall']:.0f} s window "
          f"(load average {m['load']}):")
    due = m["size"] * m["wall"] / m["interval"]
    print(f"  probe: {m['checks']:,} checks of {due:,.0f} due ({m['failed']} failed), {m['probe_cpu']:.2f} s CPU "
          f"({m['probe_cpu'] / m['wall'] * 100:.0f} % of a core) = {per_check:.3f} ms CPU per check; RSS {m['rss']:.0f} MB")
    if m["engine"] == "postgresql":
        print(f"  PostgreSQL server: {m['server_cpu']:.2f} s CPU = {m['server_cpu'] / max(m['checks'], 1) * 1000:.3f} ms "
              f"per check; probe + server {(m['probe_cpu'] + m['server_cpu']) / max(m['checks'], 1) * 1000:.3f} ms")
    if m["bb"] is None:
        return
    bb_done = m["bb"]["ok"] + m["bb"]["failed"]
    per_probe = m["bb_cpu"] / max(bb_done, 1) * 1000
    print(f"  blackbox_exporter: {bb_done:,} probes ({m['bb']['failed']} failed), {m['bb_cpu']:.2f} s CPU "
          f"= {per_probe:.3f} ms CPU per probe")
    verdict = "met" if per_check <= 0.5 and per_check < per_probe else "NOT met"
    print(f"  goal (<= 0.5 ms per check and below blackbox_exporter): {verdict}")


def summary(runs: list[dict]) -> None:
    """Medians per size and engine, and PostgreSQL's probe CPU per check against SQLite's (goal <= 1.2x)."""
    medians: dict[tuple[int, str], float] = {}
    for key in dict.fromkeys((m["size"], m["engine"]) for m in runs):
        mine = [m for m in runs if (m["size"], m["engine"]) == key]
        medians[key] = statistics.median(m["probe_cpu"] / max(m["checks"], 1) * 1000 for m in mine)
        server = statistics.median(m["server_cpu"] / max(m["checks"], 1) * 1000 for m in mine)
        print(f"median of {len(mine)}: {key[0]:,} monitors on {key[1]}: probe {medians[key]:.3f} ms per check"
              + (f", PostgreSQL server {server:.3f} ms" if key[1] == "postgresql" else ""))
    for size in dict.fromkeys(m["size"] for m in runs):
        if (size, "sqlite") in medians and (size, "postgresql") in medians:
            ratio = medians[(size, "postgresql")] / medians[(size, "sqlite")]
            print(f"{size:,} monitors: probe's CPU per check on PostgreSQL / on SQLite = {ratio:.2f} "
                  f"(goal <= 1.2: {'met' if ratio <= 1.2 else 'NOT met'})")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--drive":
        url, rate, seconds, *targets = sys.argv[2:]
        print(json.dumps(asyncio.run(drive(url, targets, float(rate), float(seconds)))))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--engines", default="sqlite", help="sqlite, postgresql, or both in turn: sqlite,postgresql")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each size on each engine, alternating")
    parser.add_argument("--url", help="a PostgreSQL server to use (a database per run is created in it)")
    parser.add_argument("--no-blackbox", action="store_true", help="probe alone (e.g. to compare the engines)")
    args = parser.parse_args()
    if not args.no_blackbox and not shutil.which(BLACKBOX):
        sys.exit(f"{BLACKBOX} is not installed: apt-get install -y {BLACKBOX} (or --no-blackbox)")
    print(machine())
    names, runs = args.engines.split(","), []
    with workdir("cost") as folder, engines(names, args.url) as made, ExitStack() as stack:
        ports = [free_port() for _ in range(TARGET_PORTS)]
        stack.enter_context(nginx(folder, ports))
        bb = None
        if not args.no_blackbox:
            bb_port = free_port()
            (folder / "blackbox.yml").write_text(BLACKBOX_CONFIG)
            exporter = stack.enter_context(process([BLACKBOX, f"--config.file={folder / 'blackbox.yml'}",
                                                    f"--web.listen-address=127.0.0.1:{bb_port}", "--log.level=warn"],
                                                   stderr=subprocess.DEVNULL))
            wait_for_port(bb_port)
            bb = (bb_port, exporter.pid)
        for round_ in range(args.rounds):
            for size in (int(s) for s in args.sizes.split(",")):
                for engine in names:
                    db = made.fresh(engine, folder)
                    if engine == "postgresql" and not round_:
                        print(f"PostgreSQL {server_version(db.url)} ({args.url or POSTGRES_SETTINGS})")
                    runs.append(measure(folder / f"run{len(runs)}", db, size, args.seconds, ports, bb))
                    report(runs[-1])
        if args.rounds > 1 or len(names) > 1:
            summary(runs)


if __name__ == "__main__":
    main()
