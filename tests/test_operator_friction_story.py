"""The operator's rough edges, against a real `probe run` (issue 14, item 9): options after the
subcommand, titles and the page's time zone in the CLI, a rejected reload in /healthz and
/metrics, [server] compared with what runs, DNS record types in any case (one log line for a new
database: tests/storage/test_sqlite.py)."""
from __future__ import annotations

import asyncio
import re
import signal
import time

import aiohttp

from tests.cli.test_main import free_port, probe_cli
from tests.test_crash import start_probe

TOKEN = "friction-token"


def config_text(port: int, listen_port: int | None = None, broken: bool = False) -> str:
    return f"""
        [server]
        listen = "127.0.0.1:{listen_port or port}"
        admin_token = "{TOKEN}"
        [storage]
        path = "probe.db"
        [page]
        timezone = "Asia/Tokyo"
        [[monitors]]
        id = "api"
        name = "API"
        type = "tcp"
        host = "127.0.0.1"
        port = {free_port()}
        interval = "1s"
        timeout = "900ms"
        failure_threshold = 2
        [[monitors]]
        id = "resolver"
        type = "dns"
        query = "localhost"
        record_type = "a"
        protocol = "system"
        interval = "{'0s' if broken else '1h'}"
    """


async def get(http, url: str, json: bool = True, headers: dict | None = None):
    async with http.get(url, headers=headers) as response:
        return response.status, await (response.json() if json else response.text())


async def until_reloaded(http, base: str, since_ms: int, rejected: bool = False, timeout: float = 15.0) -> dict:
    """The admin API's health (the public /healthz names no config problem) once the file was
    reloaded after `since_ms` (or, `rejected`, refused)."""
    deadline = time.monotonic() + timeout
    while True:
        _, health = await get(http, f"{base}/api/v1/admin/health", headers={"Authorization": f"Bearer {TOKEN}"})
        config = health["config"]
        if (config["error"] is not None) if rejected else (config["loaded_ms"] > since_ms and not config["error"]):
            return health
        assert time.monotonic() < deadline, health
        await asyncio.sleep(0.2)


async def test_an_operator_meets_no_friction(write_config):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = write_config(config_text(port))
    proc = await start_probe(config, port)
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 20
            while not (await probe_cli("incident", "list", "-c", str(config), "--open"))[1].strip():
                assert time.monotonic() < deadline, "no incident opened"
                await asyncio.sleep(0.3)
            after = await probe_cli("incident", "list", "--token", TOKEN, "--url", base, "-c", "/nowhere.toml")
            before = await probe_cli("incident", "-c", str(config), "list")

            _, health = await get(http, f"{base}/healthz")
            good_reload_ms = health["config"]["loaded_ms"]
            config.write_text(config.read_text().replace('interval = "1h"', 'interval = "0s"'))
            rejected = await until_reloaded(http, base, good_reload_ms, rejected=True)
            status, public = await get(http, f"{base}/healthz")
            _, metrics_bad = await get(http, f"{base}/metrics", json=False)
            config.write_text(config_text(port, listen_port=port + 1))  # [server] changed...
            changed = await until_reloaded(http, base, good_reload_ms)
            config.write_text(config_text(port))  # ...and back: nothing waits for a restart
            reverted = await until_reloaded(http, base, changed["config"]["loaded_ms"])
            _, metrics_good = await get(http, f"{base}/metrics", json=False)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
    log = (config.parent / "probe.log").read_text()

    # Options after the subcommand; the page's title and time zone, not "(automatic title)" and UTC.
    assert after[0] == 0 and after[1] == before[1], after[2]
    (line,) = after[1].splitlines()
    assert line.endswith("API is down") and " JST " in line and "automatic title" not in line
    # A rejected reload: listed in problems, yet 200; exported as Prometheus names its own.
    assert status == 200 and rejected["status"] == "ok" and public["status"] == "ok"
    assert [p for p in public["problems"] if p.startswith("config reload rejected")] != []  # said, without the file's words
    assert not any("interval" in p for p in public["problems"])
    assert any(p.startswith("config reload rejected") and "interval must be greater than 0" in p
               for p in rejected["problems"])
    assert "probe_config_last_reload_successful 0.0" in metrics_bad
    assert "probe_config_last_reload_successful 1.0" in metrics_good
    stamp = float(re.search(r"^probe_config_last_reload_success_timestamp_seconds (\S+)$", metrics_good, re.M).group(1))
    assert stamp * 1000 >= reverted["config"]["loaded_ms"] - 1
    assert reverted["problems"] == []
    # [server] is compared with what runs: changed waits for a restart, reverted does not.
    assert changed["config"]["needs_restart"] == ["[server]"] and reverted["config"]["needs_restart"] == []
    assert log.count("takes effect at the next restart") == 1
    assert "record_type" not in log  # "a" is DNS's "A"
