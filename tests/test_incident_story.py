"""An operator's resolve stands, against a real `probe run` (issue 14, item 8): resolving by hand
while the monitor still fails is not undone by its next check, nor is a second DOWN sent; once the
monitor has been up again, new failures open a new incident; and an automatic reopen says so, and
why, on the timeline."""
from __future__ import annotations

import asyncio
import signal
import time

import aiohttp

from tests.cli.test_main import free_port, probe_cli
from tests.peers.receiver import Receiver
from tests.test_crash import start_probe

TOKEN = "incident-story-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Service:
    """A TCP service on a fixed loopback port that the test starts and stops."""

    def __init__(self, port: int) -> None:
        self.port, self.server = port, None

    async def up(self) -> None:
        self.server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", self.port)

    async def down(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None


async def incidents(http: aiohttp.ClientSession, base: str) -> list[dict]:
    async with http.get(f"{base}/api/v1/admin/incidents", headers=AUTH) as response:
        return (await response.json())["incidents"]


async def until(check, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def test_a_resolve_by_hand_stands_until_the_monitor_has_been_up_again(write_config):
    port, service_port = free_port(), free_port()
    hook = await Receiver().start()
    service = Service(service_port)
    config = write_config(f"""
        [server]
        listen = "127.0.0.1:{port}"
        admin_token = "{TOKEN}"
        [storage]
        path = "probe.db"
        [[notifiers]]
        id = "hook"
        type = "webhook"
        url = "{hook.url}/in"
        [[monitors]]
        id = "api"
        name = "API"
        type = "tcp"
        host = "127.0.0.1"
        port = {service_port}
        interval = "1s"
        timeout = "900ms"
        failure_threshold = 2
        reopen_window = "5m"
        notify = ["hook"]
    """)
    base = f"http://127.0.0.1:{port}"
    proc = await start_probe(config, port)
    try:
        async with aiohttp.ClientSession() as http:
            first = (await until(lambda: incidents(http, base)))[0]
            code, _, err = await probe_cli("incident", "-c", str(config), "resolve", str(first["id"]))
            assert code == 0, err
            await asyncio.sleep(5)  # five more failing checks
            after_resolve = await incidents(http, base)
            events_then = [r.json["event"] for r in hook.requests]

            await service.up()  # good again...
            await until(lambda: _latest_status(http, base, "up"))
            await service.down()  # ...then failing: a new incident, not the one the operator resolved
            opened = await until(lambda: _open_one(http, base))
            await service.up()  # its checks resolve it
            await until(lambda: _open_none(http, base))
            await service.down()  # failing again within reopen_window: the same incident reopens
            reopened = await until(lambda: _open_one(http, base))
            async with http.get(f"{base}/incidents/{reopened['id']}") as response:
                timeline = await response.text()
            async with http.get(f"{base}/api/v2/incidents.json") as response:
                v2 = {i["id"]: i for i in (await response.json())["incidents"]}
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
        await service.down()
        await hook.close()

    assert [(i["id"], i["status"]) for i in after_resolve] == [(first["id"], "resolved")]
    assert events_then == ["open", "resolve"]  # no reopen, no second DOWN
    assert opened["id"] != first["id"]
    assert reopened["id"] == opened["id"] and [u["kind"] for u in reopened["updates"]] == ["open", "resolve", "reopen"]
    assert "Reopened automatically: the monitor failed again within its reopen window" in timeline
    bodies = [u["body"] for doc in v2.values() for u in doc["incident_updates"]]
    assert any(b.startswith("Reopened automatically") for b in bodies)
    assert [r.json["event"] for r in hook.requests][:2] == ["open", "resolve"]
    assert "reopen" in [r.json["event"] for r in hook.requests]


async def _latest_status(http, base, status):
    async with http.get(f"{base}/api/v1/monitors/api/results?limit=1") as response:
        results = (await response.json())["results"]
    return bool(results) and results[0]["status"] == status


async def _open_one(http, base):
    found = [i for i in await incidents(http, base) if i["status"] != "resolved"]
    return found[0] if found else None


async def _open_none(http, base):
    return not [i for i in await incidents(http, base) if i["status"] != "resolved"]
