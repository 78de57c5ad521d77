"""Delivery across stops and a failing disk: a message the channel answered is never sent again
because the process was stopped (SIGTERM waits for deliveries in flight) or because the
database could not record the answer (the answer is journalled beside it)."""
from __future__ import annotations

import asyncio
import signal
import time

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.cli.test_main import free_port
from tests.notify.test_dispatcher import disk_breaking_hook, hook_notifier, started, until, write
from tests.test_crash import spawn, wait_healthy
from tests.test_service import Target

ANSWER_AFTER_S = 2.0


class SlowHook:
    """A webhook receiver that answers each request ANSWER_AFTER_S after it arrives."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.arrived = asyncio.Event()
        app = web.Application()
        app.router.add_post("/in", self.handle)
        self.server = TestServer(app, host="127.0.0.1")

    async def handle(self, request: web.Request) -> web.Response:
        self.ids.append((await request.json())["id"])
        self.arrived.set()
        await asyncio.sleep(ANSWER_AFTER_S)
        return web.Response(text="ok")


def process_config(write_config, web_port: int, hook_url: str):
    return write_config(f"""
        [server]
        listen = "127.0.0.1:{web_port}"
        [storage]
        path = "probe.db"
        [[notifiers]]
        id = "hook"
        type = "webhook"
        url = "{hook_url}"
        timeout = "5s"
        [[monitors]]
        id = "closed"
        type = "tcp"
        host = "127.0.0.1"
        port = 9
        interval = "300ms"
        timeout = "200ms"
        failure_threshold = 1
        notify = ["hook"]
    """)


async def test_sigterm_lets_a_delivery_in_flight_finish_and_records_it_so_a_restart_does_not_resend(
        write_config, tmp_path):
    hook = SlowHook()
    async with hook.server:
        port = free_port()
        config = process_config(write_config, port, str(hook.server.make_url("/in")))
        proc = await spawn(config, tmp_path / "probe.log")
        try:
            await wait_healthy(proc, port, tmp_path / "probe.log")
            await asyncio.wait_for(hook.arrived.wait(), 15)
            proc.send_signal(signal.SIGTERM)  # the channel has the message and has not answered yet
            assert await asyncio.wait_for(proc.wait(), 30) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
        first = list(hook.ids)
        proc = await spawn(config, tmp_path / "probe.log")
        try:
            await wait_healthy(proc, port, tmp_path / "probe.log")
            await asyncio.sleep(2 * ANSWER_AFTER_S)  # time to send it again, were it still pending
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 30)
    assert first and hook.ids == first, (first, hook.ids)  # once: nothing was re-sent after the restart


async def test_an_answer_the_database_cannot_record_is_not_sent_again_after_a_restart(write_config):
    """The channel answers, then the database takes no writes, and the process is stopped while it
    still takes none: the answer must survive (it used to be sent again at the next start)."""
    received, probes = [], []
    async with Target() as target, disk_breaking_hook(received, probes) as hook:
        target.healthy = False
        config = write(write_config, target.url, hook_notifier(hook, 'events = ["open"]'), '["hook"]')
        probes.append(await started(config))
        try:
            await until(lambda: _received(received))
            await asyncio.sleep(0.5)  # the worker has the answer and tries to record it
        finally:
            await probes[-1].stop(flush_timeout=1.0)  # the disk is still refusing writes
        probes.append(await started(config))
        try:
            started_at = time.monotonic()
            rows = await probes[-1].notify.deliveries("hook")
            assert [r["state"] for r in rows] == ["sent"], rows
            await asyncio.sleep(1.5)
            assert time.monotonic() - started_at >= 1.5
        finally:
            await probes[-1].stop()
    assert len(received) == 1, received


async def _received(received) -> bool:
    return bool(received)
