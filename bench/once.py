"""Exactly-once as it is: duplicates and losses of webhook messages across `kill -9` (or SIGTERM).

    .venv/bin/python bench/once.py [--rounds 16] [--signal KILL|TERM] [--monitors 16] [--code DIR]

A toggling target (each monitor's URL alternates 200 / 503 every 2 s, each on its own phase)
makes incidents open and resolve all the time; every event goes to one webhook receiver that
answers each request after a random 0-300 ms, so the outbox keeps a backlog. `probe run` is
started, left to run 3-8 s (random), then sent the signal; `--rounds` times. Then the target
settles, a last `probe run` drains the outbox, and the receiver's log is compared with the
database's outbox: a duplicate is a message id received more than once, a loss an outbox row
never received. A message counts as received when its request arrives (the receiver may not
have answered before the kill). `--code DIR` runs the `probe` package found in DIR instead
(e.g. the previous commit, extracted with `git archive`), for a side-by-side figure.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
from aiohttp import web
from common import ROOT, free_port, machine, workdir

PERIOD_S = 4.0  # a monitor's target is down half of it


class Peers:
    """The toggling target and the webhook receiver, in this process."""

    def __init__(self, seed: int) -> None:
        self.settled = False
        self.received: list[str] = []
        self.random = random.Random(seed)

    async def target(self, request: web.Request) -> web.Response:
        phase = (time.time() + int(request.match_info["n"]) * 0.37) % PERIOD_S
        return web.Response(status=200 if self.settled or phase < PERIOD_S / 2 else 503)

    async def hook(self, request: web.Request) -> web.Response:
        self.received.append((await request.json())["id"])
        await asyncio.sleep(self.random.uniform(0.0, 0.3))
        return web.Response(text="ok")

    async def start(self) -> tuple[str, str]:
        app = web.Application()
        app.router.add_get("/t/{n}", self.target)
        app.router.add_post("/hook", self.hook)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        return f"http://127.0.0.1:{port}/t/", f"http://127.0.0.1:{port}/hook"


def config_text(web_port: int, target: str, hook: str, monitors: int) -> str:
    head = f"""[server]
listen = "127.0.0.1:{web_port}"
[storage]
path = "probe.db"
[defaults]
interval = "500ms"
timeout = "400ms"
failure_threshold = 2
reopen_window = "0s"
notify = ["hook"]
[[notifiers]]
id = "hook"
type = "webhook"
url = "{hook}"
timeout = "5s"
"""
    return head + "".join(f'[[monitors]]\nid = "m{i}"\ntype = "http"\nurl = "{target}{i}"\n' for i in range(monitors))


async def healthy(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("probe run did not become healthy")


def spawn(config: Path, code: Path, log) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(code), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.Popen([sys.executable, "-m", "probe", "--log-level", "warning", "run", "-c", str(config)],
                            cwd=code, env=env, stderr=log)


async def wait_exit(proc: subprocess.Popen, timeout: float = 60.0) -> int | None:
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return proc.poll()


def outbox(db: Path) -> tuple[set[str], int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        keys = {k for (k,) in conn.execute("SELECT key FROM deliveries WHERE notifier='hook'")}
        (pending,) = conn.execute("SELECT count(*) FROM deliveries WHERE state='pending'").fetchone()
    return keys, pending


async def run(args) -> None:
    peers = Peers(args.seed)
    target, hook = await peers.start()
    chooser = random.Random(args.seed)
    with workdir("once") as folder:
        port = free_port()
        config = folder / "bench.toml"
        config.write_text(config_text(port, target, hook, args.monitors))
        log = open(folder / "probe.log", "ab")
        for _ in range(args.rounds):
            proc = spawn(config, args.code, log)
            await healthy(port, proc)
            await asyncio.sleep(chooser.uniform(3.0, 8.0))
            proc.send_signal(getattr(signal, f"SIG{args.signal}"))
            await wait_exit(proc)
        backlog = outbox(folder / "probe.db")[1]
        peers.settled = True
        proc = spawn(config, args.code, log)
        await healthy(port, proc)
        while outbox(folder / "probe.db")[1]:
            await asyncio.sleep(0.5)
        await asyncio.sleep(2.0)
        proc.send_signal(signal.SIGTERM)
        await wait_exit(proc)
        keys, _ = outbox(folder / "probe.db")
    await peers.runner.cleanup()
    counts = Counter(peers.received)
    duplicated = sum(n - 1 for n in counts.values() if n > 1)
    lost = len(keys - set(counts))
    print(f"code: {args.code}\nmachine: {machine()}")
    print(f"rounds {args.rounds} (SIG{args.signal}), monitors {args.monitors}, messages {len(keys)}, "
          f"pending at the last signal {backlog}")
    print(f"duplicates {duplicated} (messages received twice or more: {sum(1 for n in counts.values() if n > 1)}), "
          f"lost {lost}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--signal", choices=["KILL", "TERM"], default="KILL")
    parser.add_argument("--monitors", type=int, default=16)
    parser.add_argument("--seed", type=int, default=20261204)
    parser.add_argument("--code", type=Path, default=ROOT, help="the folder holding the probe package to run")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
