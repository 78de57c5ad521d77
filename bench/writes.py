"""Store writes: results written per second at saturation, and the database's size per day.

    .venv/bin/python bench/writes.py [--engines sqlite,postgresql] [--rounds 3] [--monitors 1000]
                                     [--interval 60] [--hours 24] [--url postgresql://...]

Each run is a new process on a fresh database (engines alternate: A B A B ...). It opens the
store `probe run` opens (`Probe(config).store`, the real batching writer), syncs the monitors,
then submits `--hours` of results for every monitor every `--interval` ending now (up with a
latency, `HTTP 200`; one monitor in seven down for 15 minutes, `connection refused`), as fast
as the writer takes them: the queue is kept at two full batches, so every commit is a full
batch of 20,000. Results written per second = results / (first submit .. last commit).
Beside it, the CPU of this process (producer + store) and of the PostgreSQL cluster, per result.

Size: what the database grew by while writing, scaled to a day (SQLite: pages in use, WAL
included; PostgreSQL: pg_database_size, WAL not included), and per table (indexes included)
bytes a row. With the defaults (1,000 monitors every 60 s, 24 hours) it is one day written
through the real writer: 1,440,000 results and 25,000 rollup rows. The batches are bigger than
a live probe's (~3 results every 200 ms at that rate), so PostgreSQL's rollup rows are updated
less often here than live, and hold fewer dead versions; see `bench/scale.py --engines` for a
live run's growth.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, cpu_seconds, load_average, machine, workdir, write_probe_config
from engines import POSTGRES_SETTINGS, Database, engines, server_version

sys.path.insert(0, str(ROOT))
KEEP_QUEUED = 40_000  # two full batches of the store's writer (max_batch 20,000)


def records(monitors: list[str], interval_s: int, hours: float):
    """Each round of checks, oldest first: every monitor once, spread over the interval."""
    from probe.core.models import ResultRecord, Status
    step = interval_s * 1000
    end = int(time.time() * 1000) // step * step
    start = end - int(hours * 3_600_000)
    for t in range(start, end, step):
        batch = []
        for i, key in enumerate(monitors):
            ts = t + i * step // len(monitors)
            minute = (ts // 60_000 - i * 977) % 1440
            if i % 7 == 0 and minute < 15:
                batch.append(ResultRecord(key, ts, ts - i % 40, Status.DOWN, "connection refused", None,
                                          {"error": "connection refused"}))
            else:
                batch.append(ResultRecord(key, ts, ts - i % 40, Status.UP, "HTTP 200", 5 + (i * 37 + t // step) % 20))
        yield batch


async def write_all(config_path: Path, db: Database, interval_s: int, hours: float) -> dict:
    from probe.config.loader import load_config
    from probe.service import Probe
    config = load_config(config_path)
    probe = Probe(config)
    await probe.store.open()
    await probe._load_monitors(config.monitors)
    store, keys = probe.store, [m.id for m in config.monitors]
    before = await asyncio.to_thread(db.used_bytes)  # a query of its own, beside the store's loop
    count = 0
    cpu0, server0, t0 = cpu_seconds(os.getpid()), db.server_cpu(), time.perf_counter()
    for batch in records(keys, interval_s, hours):
        while store.pending_results >= KEEP_QUEUED:
            await asyncio.sleep(0.002)
        for record in batch:
            store.submit_result(record, interval_s)
        count += len(batch)
        await asyncio.sleep(0)
    await store.flush()
    wall, cpu, server = time.perf_counter() - t0, cpu_seconds(os.getpid()) - cpu0, db.server_cpu() - server0
    await store.close()
    return {"results": count, "wall": wall, "cpu": cpu, "server_cpu": server,
            "grown": await asyncio.to_thread(db.used_bytes) - before, "tables": await asyncio.to_thread(db.table_sizes),
            "dropped": store.dropped_results}


def one_run(engine: str, db: Database, folder: Path, args) -> dict:
    """In a new process: the store's imports, caches and collector start empty in every run."""
    config, _ = write_probe_config(folder, [f"http://127.0.0.1:9/m{i}" for i in range(args.monitors)],
                                   interval=f"{args.interval}s", storage=db.storage_toml())
    out = subprocess.run([sys.executable, __file__, "--child", str(config), json.dumps(db.__dict__, default=str),
                          str(args.interval), str(args.hours)], capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        sys.exit(f"{engine} run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.splitlines()[-1])


def report(engine: str, m: dict, hours: float) -> None:
    per_result = m["cpu"] / m["results"] * 1e6
    server = m["server_cpu"] / m["results"] * 1e6
    tables = ", ".join(f"{name} {rows:,} rows at {size / max(rows, 1):.0f} B" for name, (size, rows)
                       in sorted(m["tables"].items()))
    print(f"  {engine:10} {m['results'] / m['wall']:>8,.0f} results/s ({m['results']:,} in {m['wall']:.1f} s); "
          f"probe CPU {per_result:.1f} us/result, server CPU {server:.1f} us/result; "
          f"grew {m['grown'] / 1e6:.0f} MB = {m['grown'] / 1e6 * 24 / hours:.0f} MB/day ({tables})"
          + (f"; DROPPED {m['dropped']}" if m["dropped"] else ""))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        config, db, interval, hours = sys.argv[2:]
        fields = json.loads(db)
        fields["path"] = Path(fields["path"]) if fields["path"] else None
        result = asyncio.run(write_all(Path(config), Database(**fields), int(interval), float(hours)))
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--monitors", type=int, default=1000)
    parser.add_argument("--interval", type=int, default=60)
    parser.add_argument("--hours", type=float, default=24)
    parser.add_argument("--url", help="a PostgreSQL server to use (a database per run is created in it)")
    args = parser.parse_args()
    names = args.engines.split(",")
    print(machine())
    runs: dict[str, list[dict]] = {name: [] for name in names}
    with workdir("writes") as folder, engines(names, args.url) as made:
        for round_ in range(1, args.rounds + 1):
            print(f"round {round_} (load average {load_average()}):")
            for engine in names:
                db = made.fresh(engine, folder)
                if engine == "postgresql" and round_ == 1:
                    print(f"  PostgreSQL {server_version(db.url)} ({POSTGRES_SETTINGS if not args.url else args.url})")
                runs[engine].append(one_run(engine, db, folder, args))
                report(engine, runs[engine][-1], args.hours)
        print(f"medians (load average {load_average()}):")
        for engine, ms in runs.items():
            print(f"  {engine:10} {statistics.median(m['results'] / m['wall'] for m in ms):>8,.0f} results/s; "
                  f"probe CPU {statistics.median(m['cpu'] / m['results'] * 1e6 for m in ms):.1f} us/result; "
                  f"server CPU {statistics.median(m['server_cpu'] / m['results'] * 1e6 for m in ms):.1f} us/result; "
                  f"{statistics.median(m['grown'] for m in ms) / 1e6 * 24 / args.hours:.0f} MB/day")


if __name__ == "__main__":
    main()
