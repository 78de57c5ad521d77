"""Idle: `probe run` with 10 HTTP monitors, measured over a few minutes.

    .venv/bin/python bench/idle.py [--monitors 10] [--interval 30] [--seconds 180]

Against a local nginx. After 10 s of start-up, prints the CPU share of one core
(utime + stime from /proc over `--seconds`) and the RSS (sampled each second: max).
Goals: RSS <= 60 MB, CPU about 0. Needs nginx (apt-get install -y nginx).
"""
from __future__ import annotations

import argparse
import sys
import time

from common import (
    Sampler,
    count_results,
    free_port,
    load_average,
    machine,
    nginx,
    now_ms,
    probe_run,
    workdir,
    write_probe_config,
)

STARTUP_S = 10


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--monitors", type=int, default=10)
    parser.add_argument("--interval", type=float, default=30)
    parser.add_argument("--seconds", type=float, default=180)
    args = parser.parse_args()
    print(machine())
    with workdir("idle") as folder:
        port = free_port()
        config, _ = write_probe_config(folder, [f"http://127.0.0.1:{port}/m{i}" for i in range(args.monitors)],
                                       interval=f"{args.interval:g}s", timeout=f"{min(10.0, args.interval / 2):g}s")
        with nginx(folder, [port]), probe_run(config, folder / "probe.log") as probe:
            time.sleep(STARTUP_S)
            if probe.poll() is not None:
                sys.exit(f"probe run exited: {(folder / 'probe.log').read_text()[-2000:]}")
            sampler = Sampler(probe.pid)
            sampler.start()
            start_ms, loads = now_ms(), {load_average()}
            while time.monotonic() - sampler.t0 < args.seconds:
                sampler.sample_rss()
                time.sleep(1)
            cpu, wall = sampler.cpu_since()
            loads.add(load_average())
            end_ms = now_ms()
            time.sleep(1)
        checks = count_results(folder / "probe.db", start_ms, end_ms)
    print(f"{args.monitors} monitors every {args.interval:g} s, {wall:.0f} s measured "
          f"(load averages {' | '.join(sorted(loads))})")
    print(f"CPU {cpu:.2f} s = {cpu / wall * 100:.2f} % of one core over {checks} checks (goal: about 0)")
    print(f"RSS max {sampler.max_rss:.1f} MB (goal <= 60 MB)")


if __name__ == "__main__":
    main()
