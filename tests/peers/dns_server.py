"""A real DNS server on loopback for tests: UDP and TCP on one port, answering from a dict.

    zone = {("app.test.", "A"): ["192.0.2.1", "192.0.2.2"],
            ("www.test.", "CNAME"): ["app.test."],
            ("mail.test.", "MX"): ["10 mx.test."],
            ("app.test.", "TXT"): ['"v=spf1 " "-all"']}  # values in zone-file syntax
    async with DnsServer(zone) as server:
        ...  # ask 127.0.0.1 on server.port (server.hostport is "127.0.0.1:<port>")

Names not in the zone get NXDOMAIN; a known name without the asked type gets an empty
NOERROR answer; CNAMEs inside the zone are followed into the answer section, as an
authoritative server does. `mode` switches to hostile behaviour:

    "answer"    answer from the zone (default)
    "silent"    read queries, never answer
    "garbage"   answer with the query's id followed by bytes that are no DNS message
    "wrong_id"  answer correctly, but with another message id
    "truncate"  over UDP answer with the TC flag and no records; TCP gives the full answer
    "truncate_hang"  as "truncate" over UDP; over TCP read the query, never answer
    "servfail"  answer SERVFAIL to everything

`tcp=False` leaves the TCP port closed (connections are refused). Every query that
arrives is logged in `queries` as (transport, name, type), e.g. ("udp", "app.test.", "A").
"""
from __future__ import annotations

import asyncio
import socket
from typing import Literal

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

Mode = Literal["answer", "silent", "garbage", "wrong_id", "truncate", "truncate_hang", "servfail"]
HOST = "127.0.0.1"
_PORT_ATTEMPTS = 20


class DnsServer:
    def __init__(self, zone: dict[tuple[str, str], list[str]] | None = None, *, mode: Mode = "answer",
                 tcp: bool = True, ttl: int = 300, port: int = 0) -> None:
        self.zone = {(_canonical(name), rtype.upper()): list(values)
                     for (name, rtype), values in (zone or {}).items()}
        self.names = {name for name, _ in self.zone}
        self.mode = mode
        self.tcp = tcp
        self.ttl = ttl
        self.port = port  # 0: any free port (53 only in a namespace of the test's own)
        self.queries: list[tuple[str, str, str]] = []
        self.peers: list[tuple[str, str]] = []  # (protocol, the asking address)
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def hostport(self) -> str:
        return f"{HOST}:{self.port}"

    async def __aenter__(self) -> "DnsServer":
        loop = asyncio.get_running_loop()
        wanted = self.port
        for _ in range(_PORT_ATTEMPTS if wanted == 0 else 1):
            # UDP picks a free port; TCP must then get the same number, which can be taken.
            self._udp, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self), local_addr=(HOST, wanted))
            self.port = self._udp.get_extra_info("sockname")[1]
            if not self.tcp:
                return self
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, HOST, self.port, family=socket.AF_INET)
                return self
            except OSError:
                self._udp.close()
        raise RuntimeError(f"no port free for both UDP and TCP after {_PORT_ATTEMPTS} attempts")

    async def __aexit__(self, *exc_info) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            for writer in list(self._writers):
                writer.close()
            await self._tcp.wait_closed()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self.peers.append(("tcp", writer.get_extra_info("peername")[0]))
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                reply = self.reply(await reader.readexactly(size), "tcp")
                if reply is not None:
                    writer.write(len(reply).to_bytes(2, "big") + reply)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def reply(self, wire: bytes, transport: str) -> bytes | None:
        """The bytes to send back for one query (None: stay silent)."""
        try:
            query = dns.message.from_wire(wire)
            question = query.question[0]
        except (dns.exception.DNSException, IndexError):
            return None
        self.queries.append((transport, question.name.to_text().lower(), dns.rdatatype.to_text(question.rdtype)))
        if self.mode == "silent" or (self.mode == "truncate_hang" and transport == "tcp"):
            return None
        if self.mode == "garbage":
            return wire[:2] + b"\x81\x80\xde\xad\xbe\xefnot a dns message"
        response = dns.message.make_response(query)
        if self.mode == "servfail":
            response.set_rcode(dns.rcode.SERVFAIL)
        elif self.mode in ("truncate", "truncate_hang") and transport == "udp":
            response.flags |= dns.flags.TC
        else:
            self._answer(response, question.name, question.rdtype)
        if self.mode == "wrong_id":
            response.id = (query.id + 1) % 65536
        return response.to_wire()

    def _answer(self, response: dns.message.Message, name: dns.name.Name, rdtype: int) -> None:
        rtype = dns.rdatatype.to_text(rdtype)
        if name.to_text().lower() not in self.names:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return
        owner = name
        for _ in range(8):
            key = owner.to_text().lower()
            if (key, rtype) in self.zone:
                response.answer.append(self._rrset(owner, rtype, self.zone[key, rtype]))
                return
            target = self.zone.get((key, "CNAME"))
            if target is None or rdtype == dns.rdatatype.CNAME:
                return
            response.answer.append(self._rrset(owner, "CNAME", target))
            owner = dns.name.from_text(target[0])

    def _rrset(self, owner: dns.name.Name, rtype: str, values: list[str]) -> dns.rrset.RRset:
        return dns.rrset.from_text_list(owner, self.ttl, "IN", rtype, values)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.server.peers.append(("udp", addr[0]))
        reply = self.server.reply(data, "udp")
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


def _canonical(name: str) -> str:
    return dns.name.from_text(name).to_text().lower()
