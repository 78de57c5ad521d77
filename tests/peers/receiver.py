"""A real HTTP receiver on loopback for notifier tests: records every request and answers
from a script (status, body, headers), or hangs when told to."""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Received:
    method: str
    path_qs: str
    headers: dict[str, str]
    body: bytes
    at: float  # the receiver's clock: time.monotonic() unless the test gave it its own
    wall_ms: int  # time.time(), to compare with stored times

    @property
    def json(self):
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


class Receiver:
    def __init__(self, default: Answer | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.requests: list[Received] = []
        self.clock = clock
        self.script: list[Answer] = []  # answers for the next requests, then `default`
        self.default = default or Answer()
        self.arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    def json_default(self, doc: dict, status: int = 200) -> None:
        self.default = Answer(status, json.dumps(doc), {"Content-Type": "application/json"})

    async def start(self) -> "Receiver":
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)  # hung handlers must not hold up teardown
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(Received(request.method, request.path_qs, dict(request.headers),
                                      await request.read(), self.clock(),
                                      int(time.time() * 1000)))
        self.arrived.set()
        answer = self.script.pop(0) if self.script else self.default
        if answer.hang:
            await asyncio.sleep(3600)
        return web.Response(status=answer.status, text=answer.body, headers=answer.headers)

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} requests, got {len(self.requests)}")
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                pass
        return self.requests
