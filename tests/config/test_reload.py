"""Live reload of a running `probe run`: an edit adds a monitor within seconds; a broken edit
changes nothing, keeps the process up and says why (/healthz, admin API); SIGHUP reloads too."""
from __future__ import annotations

import asyncio
import signal
import time

import aiohttp

from tests.cli.test_main import free_port
from tests.test_crash import start_probe

TOKEN = "reload-test-token-0123456789"


def text(web_port: int, monitors: list[str], extra: str = "") -> str:
    body = "".join(f'''
[[monitors]]
id = "{m}"
type = "tcp"
host = "127.0.0.1"
port = {web_port}
interval = "1s"
timeout = "500ms"
''' for m in monitors)
    return f'''[server]
listen = "127.0.0.1:{web_port}"
admin_token = "{TOKEN}"
[storage]
path = "probe.db"
{extra}
{body}'''


async def status_ids(session, web_port) -> list[str]:
    async with session.get(f"http://127.0.0.1:{web_port}/api/v1/status") as response:
        return [m["id"] for m in (await response.json())["monitors"]]


async def until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def test_edits_apply_live_and_broken_edits_change_nothing(tmp_path):
    web_port = free_port()
    path = tmp_path / "probe.toml"
    path.write_text(text(web_port, ["alpha"]))
    proc = await start_probe(path, web_port)
    try:
        async with aiohttp.ClientSession() as session:
            assert await status_ids(session, web_port) == ["alpha"]
            path.write_text(text(web_port, ["alpha", "beta"]))
            started = time.monotonic()
            await until(lambda: _has(session, web_port, "beta"))
            assert time.monotonic() - started < 8  # "within seconds": the file is polled every 2 s

            path.write_text(text(web_port, ["alpha", "beta", "gamma"]).replace(f"port = {web_port}", f'port = "{web_port}"', 1))
            health = await until(lambda: _config_error(session, web_port))
            assert health["status"] == "ok"  # still serving, on the old config
            assert any('monitors[0] "alpha": port must be an integer' in line for line in health["config"]["error"]), health
            assert await status_ids(session, web_port) == ["alpha", "beta"]

            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with session.post(f"http://127.0.0.1:{web_port}/api/v1/admin/config/reload",
                                    headers=headers) as response:
                assert response.status == 422 and (await response.json())["applied"] is False

            # SIGHUP: with the watcher idle (same file content), only the signal can reload.
            path.write_text(text(web_port, ["alpha", "gamma"]))
            proc.send_signal(signal.SIGHUP)
            await until(lambda: _ids_are(session, web_port, ["alpha", "gamma"]))
            async with session.get(f"http://127.0.0.1:{web_port}/api/v1/admin/config", headers=headers) as response:
                assert (await response.json())["error"] is None
        assert proc.returncode is None
    finally:
        proc.terminate()
        await proc.wait()


async def _has(session, web_port, monitor_id) -> bool:
    return monitor_id in await status_ids(session, web_port)


async def _ids_are(session, web_port, ids) -> bool:
    return await status_ids(session, web_port) == ids


async def _config_error(session, web_port):
    async with session.get(f"http://127.0.0.1:{web_port}/api/v1/admin/health",
                           headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        health = await response.json()
    return health if health["config"]["error"] else None


async def test_reloading_with_each_broken_config_of_the_corpus_keeps_the_old_one_running(tmp_path):
    from probe.config.loader import load_config
    from probe.config.reload import ConfigWatcher
    from probe.service import Probe
    from tests.config.test_loader import CORPUS, EXPECTED

    path = tmp_path / "probe.toml"
    good = text(free_port(), ["alpha", "beta"]).encode()
    path.write_bytes(good)
    probe = Probe(load_config(path), flush_interval=0.05)
    await probe.start()
    watcher = ConfigWatcher(probe, path)
    try:
        running = probe.config
        for name, lines in EXPECTED.items():
            path.write_bytes((CORPUS / name).read_bytes())
            assert await watcher.reload("test") is False, name
            assert watcher.error == [f"probe.toml: {line}" for line in lines]
            assert probe.config is running, name
            assert sorted(probe.monitors) == ["alpha", "beta"] and probe.scheduler.monitor_ids() == {"alpha", "beta"}
        assert probe.scheduler.running
        path.write_bytes(good.replace(b'"beta"', b'"gamma"'))
        assert await watcher.reload("fixed") is True and watcher.error is None  # and a good edit still applies
        assert probe.scheduler.monitor_ids() == {"alpha", "gamma"}
    finally:
        await probe.stop()
