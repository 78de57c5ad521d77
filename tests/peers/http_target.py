"""HTTP targets for check tests: a well-behaved aiohttp app and raw misbehaving servers.

All of them listen on 127.0.0.1 only, on a port the OS picks.
"""
from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Awaitable, Callable

from aiohttp import web

REQUESTS = web.AppKey("requests", list)  # what the server received, for "sent as configured" tests
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
JSON_DOC = {
    "status": "ok",
    "data": {"version": "1.4.2"},
    "items": [{"state": "up"}, {"state": "down"}],
    "checks": {"db": [1, 2, 3.0]},
    "count": 3,
    "ready": True,
}


def target_app() -> web.Application:
    """Routes that behave like the services a monitor watches (and some that do not)."""
    app = web.Application()
    app[REQUESTS] = []
    app.router.add_get("/", _answer(lambda r: web.Response(text="Welcome to the shop")))
    app.router.add_get("/status/{code}", _answer(lambda r: web.Response(status=int(r.match_info["code"]))))
    app.router.add_get("/json", _answer(lambda r: web.json_response(JSON_DOC)))
    app.router.add_get("/redirect", _answer(lambda r: _redirect("/", 302)))
    app.router.add_get("/moved", _answer(lambda r: _redirect("/", 301)))
    app.router.add_get("/loop", _answer(lambda r: _redirect("/loop", 302)))
    app.router.add_get("/chain/{n}", _answer(_chain))
    app.router.add_get("/bytes/{n}", _answer(lambda r: web.Response(body=b"x" * int(r.match_info["n"]))))
    app.router.add_get("/endless", _endless)
    app.router.add_route("*", "/echo", _echo)
    return app


def _answer(make: Callable[[web.Request], web.StreamResponse]):
    async def handler(request: web.Request) -> web.StreamResponse:
        return make(request)
    return handler


def _redirect(location: str, status: int) -> web.Response:
    return web.Response(status=status, headers={"Location": location})


def _chain(request: web.Request) -> web.Response:
    """/chain/3 -> /chain/2 -> /chain/1 -> /chain/0 (200): exactly n redirects."""
    n = int(request.match_info["n"])
    return web.Response(text="end of chain") if n == 0 else _redirect(f"/chain/{n - 1}", 302)


async def _endless(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    chunk = b"y" * 65536
    while True:  # until the client hangs up
        await response.write(chunk)


async def _echo(request: web.Request) -> web.Response:
    body = await request.text()
    request.app[REQUESTS].append({"method": request.method, "headers": dict(request.headers), "body": body})
    return web.json_response({"method": request.method})


@contextlib.asynccontextmanager
async def raw_server(handler: Handler):
    """A bare TCP server on 127.0.0.1 running `handler` per connection; yields its port."""
    writers: set[asyncio.StreamWriter] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        try:
            await handler(reader, writer)
        except ConnectionError:
            pass  # the client hung up or reset: its side of the story is what tests look at
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:  # a hung client would otherwise keep wait_closed() waiting
            writer.close()
        await server.wait_closed()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept, read the request, never answer (until the client hangs up)."""
    while await reader.read(65536):
        pass


def replying(data: bytes, *, then_stall: bool = False) -> Handler:
    """Read the request, write `data` (whatever it is), then hang up or stall."""
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(data)
        await writer.drain()
        while then_stall and await reader.read(65536):
            pass
    return handler


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
