"""`source_address`: every check type that opens a connection binds it to the monitor's local
address, so that instances of a [cluster] on one host (or one with several uplinks) check from
where they say. Loopback only: 127.0.0.2-4 are this host's too."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web
from aiohttp.test_utils import TestServer

from probe.checks.dns import DnsCheck, DnsOptions
from probe.checks.http import HttpCheck
from probe.checks.icmp import IcmpCheck, IcmpOptions
from probe.checks.tcp import TcpCheck, TcpOptions
from probe.core.models import Status
from probe.engine.runner import CheckRunner
from tests.peers.dns_server import DnsServer


@dataclass
class Monitor:
    source_address: str
    id: str = "m"
    timeout: float = 2.0
    degraded_latency: float | None = None


async def test_an_http_check_connects_from_its_source_address_and_each_address_has_its_own_session():
    peers = []

    async def handle(request):
        peers.append(request.transport.get_extra_info("peername")[0])
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", handle)
    async with TestServer(app, host="127.0.0.1") as server:
        check = HttpCheck(HttpCheck.Options(url=str(server.make_url("/"))))
        runner = CheckRunner()
        try:
            for source in ("127.0.0.2", "127.0.0.3", ""):
                result = await runner.run(Monitor(source), check)
                assert result.status is Status.UP, result.reason
        finally:
            await runner.close()
    assert peers == ["127.0.0.2", "127.0.0.3", "127.0.0.1"]


async def test_a_tcp_check_connects_from_its_source_address():
    peers = []

    async def accept(reader, writer):
        peers.append(writer.get_extra_info("peername")[0])
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        result = await CheckRunner().run(Monitor("127.0.0.4"), TcpCheck(TcpOptions("127.0.0.1", port)))
        await asyncio.sleep(0.05)
    assert result.status is Status.UP and peers == ["127.0.0.4"]


async def test_a_dns_check_asks_from_its_source_address_over_udp_and_tcp():
    async with DnsServer({("app.test", "A"): ["192.0.2.1"]}) as server:
        for protocol in ("udp", "tcp"):
            check = DnsCheck(DnsOptions(query="app.test", server=server.hostport, protocol=protocol))
            result = await CheckRunner().run(Monitor("127.0.0.3"), check)
            assert result.status is Status.UP, result.reason
    assert server.peers == [("udp", "127.0.0.3"), ("tcp", "127.0.0.3")]


async def test_an_icmp_check_binds_its_socket_to_the_source_address_where_the_os_allows():
    runner = CheckRunner()
    result = await runner.run(Monitor("127.0.0.2"), IcmpCheck(IcmpOptions(host="127.0.0.1", count=1)))
    # Where ICMP sockets are not permitted it says so; where they are, the bound socket pings.
    assert result.status is Status.UP or "not permitted" in result.reason, result.reason
