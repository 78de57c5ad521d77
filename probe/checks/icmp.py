"""ICMP check: a few echo requests; loss and round-trip times."""
from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass, field

from icmplib import (
    AsyncSocket,
    ICMPError,
    ICMPLibError,
    ICMPRequest,
    ICMPSocketError,
    ICMPv4Socket,
    ICMPv6Socket,
    NameLookupError,
    SocketPermissionError,
    TimeoutExceeded,
    async_resolve,
)
from icmplib.utils import unique_identifier

from probe.checks.base import Check, CheckContext, host_problem
from probe.core.models import CheckResult
from probe.core.units import format_duration

INTERVAL = 0.2  # seconds between echo requests, as `ping -i 0.2` (the fastest non-root ping)
_MARGIN = 0.05  # stop this long before the caller's deadline, so the result keeps its counts
_ECHO_REQUEST = {4: 8, 6: 128}  # a raw socket on loopback also reads our own requests
_ECHO_REPLY = {4: 0, 6: 129}
NOT_PERMITTED = ('ICMP not permitted: allow unprivileged ping (sysctl net.ipv4.ping_group_range="0 2147483647") '
                 "or grant CAP_NET_RAW")


@dataclass(frozen=True)
class IcmpOptions:
    host: str
    count: int = 3
    max_loss: float = 0.5  # fraction of packets that may go missing before "down"

    def problems(self):
        problem = host_problem(self.host)
        if problem:
            yield "host", problem
        if not 1 <= self.count <= 100:
            yield "count", f"must be between 1 and 100 (got {self.count})"
        if not 0 <= self.max_loss < 1:
            yield "max_loss", f"must be a fraction from 0 up to (not including) 1, e.g. 0.5 (got {self.max_loss:g})"


class IcmpCheck(Check):
    type = "icmp"
    needs = {"icmp_privileged": lambda *_: detect_icmp_privilege()}  # asked of the kernel once
    Options = IcmpOptions
    options: IcmpOptions

    @classmethod
    def problems_with(cls, settings, options: IcmpOptions):
        # Requests go out INTERVAL apart and the last one needs INTERVAL to be answered.
        need = round(options.count * INTERVAL, 3)
        if settings.timeout < need:
            yield "count", (f"must fit in timeout: {options.count} pings need at least {format_duration(need)} "
                            f"(timeout is {format_duration(settings.timeout)})")

    def target(self) -> str:
        return self.options.host

    async def run(self, ctx: CheckContext) -> CheckResult:
        if ctx.icmp_privileged is None:
            return CheckResult.down(NOT_PERMITTED)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ctx.timeout - _MARGIN
        host = self.options.host
        try:
            address = await _resolve(host, ctx)
        except NameLookupError:
            return CheckResult.down(f"cannot resolve {host}")
        ctx.progress.phase = f"pinging {address}"
        pings = _Pings(address, self.options.count)
        ctx.progress.details = pings.details
        try:
            sock_type = ICMPv6Socket if ":" in address else ICMPv4Socket
            # Bound to the source address where the OS lets an ICMP socket be bound
            with AsyncSocket(sock_type(ctx.source_address or None, privileged=ctx.icmp_privileged)) as sock:
                await pings.exchange(sock, deadline)
        except SocketPermissionError:
            return CheckResult.down(NOT_PERMITTED)
        except ICMPLibError as exc:
            return CheckResult.down(f"cannot ping {host}: {_error_text(exc)}", **pings.details)
        return self._verdict(pings)

    def _verdict(self, pings: "_Pings") -> CheckResult:
        host, count, details = self.options.host, self.options.count, pings.details
        received = len(pings.rtts)
        if received == 0 and pings.send_error and not pings.sent:
            return CheckResult.down(f"cannot send to {host}: {pings.send_error}", **details)
        if received == 0:
            why = f": {pings.icmp_error}" if pings.icmp_error else ""
            return CheckResult.down(f"no reply from {host}{why} ({count} of {count} packets lost)", **details)
        latency, loss = details["rtt_avg_ms"], 1 - received / count
        if loss > self.options.max_loss:
            return CheckResult.down(f"packet loss {loss:.0%} (max {self.options.max_loss * 100:g}%)",
                                    latency, **details)
        if loss > 0:
            return CheckResult.degraded(f"packet loss {loss:.0%}", latency, **details)
        # No numbers beyond the configured count in an "up" reason: the store keeps each distinct one.
        return CheckResult.up(f"{count} of {count} replies", latency, **details)


async def _resolve(host: str, ctx: CheckContext) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        ctx.progress.phase = f"resolving {host}"
        return (await async_resolve(host))[0]


@dataclass
class _Pings:
    """Echo requests sent INTERVAL apart, their replies read as they come (as `ping` does).

    Replies are not awaited one by one: a slow answer does not delay the next request,
    and every request may be answered until the deadline.
    """

    address: str
    count: int
    requests: dict[int, ICMPRequest] = field(default_factory=dict)  # by sequence number
    settled: set[int] = field(default_factory=set)  # answered, or never sent
    sent: int = 0
    rtts: list[float] = field(default_factory=list)
    send_error: str | None = None
    icmp_error: str | None = None  # e.g. "destination host unreachable" from a router
    receive_errors: int = 0
    details: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.family = 6 if ":" in self.address else 4
        self._update()

    async def exchange(self, sock: AsyncSocket, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        ident, next_send = unique_identifier(), loop.time()
        while len(self.settled) < self.count and loop.time() < deadline:
            unsent = len(self.requests) < self.count
            if unsent and loop.time() >= next_send:
                self._send(sock, ICMPRequest(self.address, ident, len(self.requests)))
                next_send += INTERVAL
                continue
            wake = min(next_send, deadline) if unsent else deadline
            try:
                reply = await sock.receive(None, max(wake - loop.time(), 0.001))
            except TimeoutExceeded:
                continue
            except ICMPSocketError as exc:
                self._receive_failed(exc)
                continue
            self._take(reply)

    def _send(self, sock: AsyncSocket, request: ICMPRequest) -> None:
        self.requests[request.sequence] = request
        try:
            sock.send(request)  # unprivileged: the kernel picks the id, and icmplib records it here
            self.sent += 1
        except ICMPLibError as exc:
            self.send_error = _error_text(exc)
            self.settled.add(request.sequence)  # nothing will come back for it
        self._update()

    def _receive_failed(self, exc: ICMPSocketError) -> None:
        # An unprivileged socket reports an ICMP error ("no route to host") as a failed read,
        # once per error; give up only if reads keep failing.
        self.icmp_error = _error_text(exc)
        self.receive_errors += 1
        if self.receive_errors > self.count:
            raise exc

    def _take(self, reply) -> None:
        request = self.requests.get(reply.sequence)
        if (request is None or reply.id != request.id or reply.sequence in self.settled
                or reply.type == _ECHO_REQUEST[self.family]):
            return  # someone else's packet, a duplicate, or our own request seen on a raw socket
        self.settled.add(reply.sequence)
        if reply.type == _ECHO_REPLY[self.family]:
            self.rtts.append((reply.time - request.time) * 1000)
            self._update()
            return
        try:
            reply.raise_for_status()
        except ICMPError as exc:
            self.icmp_error = _error_text(exc)

    def _update(self) -> None:
        rtts = self.rtts
        self.details.update(
            address=self.address, packets_sent=self.sent, packets_received=len(rtts),
            loss=round(1 - len(rtts) / self.count, 4),
            rtt_min_ms=round(min(rtts), 3) if rtts else None,
            rtt_avg_ms=round(sum(rtts) / len(rtts), 3) if rtts else None,
            rtt_max_ms=round(max(rtts), 3) if rtts else None,
            rtts_ms=[round(r, 3) for r in rtts],
        )


def _error_text(exc: BaseException) -> str:
    """icmplib wraps OSError as "[Errno 101] Network is unreachable": keep the words."""
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc)) or exc.__class__.__name__
    return text[0].lower() + text[1:]


def detect_icmp_privilege() -> bool | None:
    """False: unprivileged ICMP sockets work; True: raw sockets needed and allowed; None: neither."""
    for privileged, kind in ((False, socket.SOCK_DGRAM), (True, socket.SOCK_RAW)):
        try:
            socket.socket(socket.AF_INET, kind, socket.IPPROTO_ICMP).close()
        except OSError:
            continue
        return privileged
    return None
