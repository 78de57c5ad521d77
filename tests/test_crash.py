"""`kill -9` of a running probe, then a restart: the file is intact and no incident is duplicated or lost."""
import asyncio
import random
import signal
import sqlite3
import sys

import aiohttp

from tests.test_cli import free_port

DOWN_MONITORS, UP_MONITORS = 15, 10


def crash_config(write_config, open_port, closed_port, web_port):
    monitors = []
    for i in range(DOWN_MONITORS):
        monitors.append(f'[[monitors]]\nid = "down-{i}"\ntype = "tcp"\nhost = "127.0.0.1"\nport = {closed_port}\n')
    for i in range(UP_MONITORS):
        monitors.append(f'[[monitors]]\nid = "up-{i}"\ntype = "tcp"\nhost = "127.0.0.1"\nport = {open_port}\n')
    return write_config(f"""
[server]
listen = "127.0.0.1:{web_port}"
[storage]
path = "probe.db"
[defaults]
interval = "400ms"
timeout = "300ms"
failure_threshold = 2
""" + "\n".join(monitors))


async def start_probe(config_path, web_port):
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "probe", "--log-level", "warning", "run",
                                                "-c", str(config_path), stderr=asyncio.subprocess.PIPE)
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            try:
                async with session.get(f"http://127.0.0.1:{web_port}/healthz") as response:
                    if response.status == 200:
                        return proc
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    proc.kill()
    raise AssertionError("probe did not become healthy: " + (await proc.stderr.read()).decode())


def open_incidents_per_monitor(db_path):
    conn = sqlite3.connect(db_path)
    try:
        return dict(conn.execute(
            "SELECT m.key, count(*) FROM incidents i JOIN monitors m ON m.id = i.monitor GROUP BY m.key"))
    finally:
        conn.close()


async def test_kill_9_then_restart_keeps_the_file_intact_and_incidents_single(write_config, tmp_path):
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    open_port = server.sockets[0].getsockname()[1]
    web_port = free_port()
    config = crash_config(write_config, open_port, free_port(), web_port)
    rng = random.Random(7)
    try:
        for round_ in range(4):
            proc = await start_probe(config, web_port)
            await asyncio.sleep(1.2 + rng.random())  # incidents open in the first round
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            incidents = open_incidents_per_monitor(tmp_path / "probe.db")
            assert all(count == 1 for count in incidents.values()), (round_, incidents)
        proc = await start_probe(config, web_port)
        await asyncio.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        assert await proc.wait() == 0
    finally:
        server.close()

    conn = sqlite3.connect(tmp_path / "probe.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        per_monitor = dict(conn.execute(
            "SELECT m.key, count(i.id) FROM monitors m LEFT JOIN incidents i ON i.monitor = m.id GROUP BY m.key"))
        still_open = conn.execute("SELECT count(*) FROM incidents WHERE resolved_ms IS NULL").fetchone()[0]
        results = conn.execute("SELECT count(*) FROM results").fetchone()[0]
    finally:
        conn.close()
    # Every down monitor has exactly the one incident it opened in the first round, still open.
    assert {k: v for k, v in per_monitor.items() if k.startswith("down-")} == \
        {f"down-{i}": 1 for i in range(DOWN_MONITORS)}
    assert all(v == 0 for k, v in per_monitor.items() if k.startswith("up-"))
    assert still_open == DOWN_MONITORS
    assert results > (DOWN_MONITORS + UP_MONITORS) * 5
