"""Misbehaving TCP peers for the hostile-target tests, on 127.0.0.1 only.

Each factory returns a connection handler for `tests.peers.http_target.raw_server`,
or, run as a program, all of them at once in a process of their own (so that their
work does not land on the event loop of the probe under test):

    python -m tests.peers.hostile      # prints one JSON line {"name": port, ...}, then serves

The handlers keep what a test may want to assert in a `Tally` (bytes sent, connections).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import struct
import sys
from dataclasses import dataclass

from aiohttp import web

from tests.peers.dns_server import DnsServer
from tests.peers.http_target import raw_server, replying, silent

CHUNK = b"z" * 65536
GARBAGE = random.Random(6).randbytes(4096)  # the same noise every run
DRIP_EVERY_S = 1.0
OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"


@dataclass
class Tally:
    connections: int = 0
    bytes_sent: int = 0
    ended: int = 0  # connections the client has left (the handler returned)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0: the kernel sends a RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def never_answers():
    """Accepts, reads whatever comes, never says a word."""
    return silent


def drip(head: bytes = b"", data: bytes = OK_HEAD + b"Content-Length: 2\r\n\r\nok",
         every: float = DRIP_EVERY_S, tally=None):
    """Reads the request, sends `head` at once, then `data` one byte per `every` seconds."""
    tally = tally or Tally()

    async def handler(reader, writer):
        tally.connections += 1
        await reader.read(65536)
        writer.write(head)
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            tally.bytes_sent += 1
            await asyncio.sleep(every)
    return handler


def drip_body(tally=None):
    """Headers at once, then a body of 100 bytes one byte a second."""
    return drip(OK_HEAD + b"Content-Length: 100\r\n\r\n", b"x" * 100, tally=tally)


def endless(head: bytes, body_chunk: bytes, tally=None):
    """Reads the request, sends `head`, then `body_chunk` over and over until the client leaves."""
    tally = tally or Tally()

    async def handler(reader, writer):
        tally.connections += 1
        await reader.read(65536)
        writer.write(head)
        try:
            while True:
                writer.write(body_chunk)
                await writer.drain()
                tally.bytes_sent += len(body_chunk)
        except ConnectionError:
            tally.ended += 1  # the client hung up: what a well-behaved check does
    return handler


def endless_chunked_body(tally=None):
    chunk = b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK)
    return endless(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n", chunk, tally)


def huge_body(tally=None):
    """Announces a terabyte with Content-Length and starts sending it."""
    return endless(OK_HEAD + b"Content-Length: 1000000000000\r\n\r\n", CHUNK, tally)


def endless_headers(tally=None):
    """A status line, then header lines that never end."""
    lines = b"".join(b"X-Filler-%d: %s\r\n" % (n, b"v" * 64) for n in range(512))
    return endless(b"HTTP/1.1 200 OK\r\n", lines, tally)


def giant_header_block(count: int = 20_000):
    """A finite but enormous header block: many short headers, each under any per-line limit."""
    block = b"".join(b"X-Filler-%d: v\r\n" % n for n in range(count))
    return replying(OK_HEAD + block + b"Content-Length: 2\r\n\r\nok", then_stall=True)


def garbage():
    """Answers the request (or a TLS ClientHello) with noise, then waits for the client to go."""
    return replying(GARBAGE, then_stall=True)


def hang_up_after_hello():
    """Reads the first flight (a ClientHello, a request) and closes cleanly without a word."""
    async def handler(reader, writer):
        await reader.read(65536)
    return handler


def reset_at_once():
    """Accepts and resets the connection before reading anything."""
    async def handler(reader, writer):
        _reset(writer)
    return handler


def reset_after_request():
    """Reads the request (or ClientHello), then resets."""
    async def handler(reader, writer):
        await reader.read(65536)
        _reset(writer)
    return handler


TCP_PEERS = {
    "never_answers": never_answers,
    "drip": drip,
    "drip_body": drip_body,
    "endless_body": endless_chunked_body,
    "huge_body": huge_body,
    "endless_headers": endless_headers,
    "giant_headers": giant_header_block,
    "garbage": garbage,
    "hang_up": hang_up_after_hello,
    "reset_at_once": reset_at_once,
    "reset_after_request": reset_after_request,
}
DNS_MODES = ("silent", "garbage", "truncate_hang")


async def _healthy_app() -> web.AppRunner:
    app = web.Application()
    app.router.add_get("/", lambda request: _ok())
    app.router.add_get("/loop", lambda request: _loop())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    return runner


async def _ok() -> web.Response:
    return web.Response(text="ok")


async def _loop() -> web.Response:
    return web.Response(status=302, headers={"Location": "/loop"})


async def serve_all() -> None:
    """Every peer on its own port; one JSON line names them all. Runs until killed."""
    ports: dict[str, int] = {}
    async with contextlib.AsyncExitStack() as stack:
        for name, factory in TCP_PEERS.items():
            ports[name] = await stack.enter_async_context(raw_server(factory()))
        for mode in DNS_MODES:
            server = DnsServer({("app.test", "A"): ["192.0.2.1"]}, mode=mode)
            ports[f"dns_{mode}"] = (await stack.enter_async_context(server)).port
        runner = await _healthy_app()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        ports["healthy"] = site._server.sockets[0].getsockname()[1]
        print(json.dumps(ports), flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(serve_all())
    except KeyboardInterrupt:
        sys.exit(0)
