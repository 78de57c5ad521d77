"""The session every HTTP check shares, and how one request's phases are timed on it.

aiohttp's trace hooks tell when DNS, the connection and the request start and end; they do
not split TCP from TLS. The connector's socket factory hands the check its sockets (through
a context variable set for the request), so a timeout can still say whether the stall was
the TCP connect or the TLS handshake.
"""
from __future__ import annotations

import socket
import time
from contextvars import ContextVar
from typing import Any

import aiohttp
from yarl import URL

from probe.checks.base import Progress
from probe.checks.tls import certificate_details

USER_AGENT = "probe (uptime monitor)"


class Timing:
    """One check's timing phases, filled in by the session's trace hooks.

    Handed to aiohttp as `trace_request_ctx`. It writes straight into
    `progress.details` so that a timeout result still shows the phases that finished.
    Durations are summed over redirect hops (as blackbox_exporter does); first_byte_ms
    and total_ms count from the start of the check.
    """

    def __init__(self, progress: Progress, url: URL) -> None:
        self.progress = progress
        self.details = progress.details
        self.url = url  # the hop in flight
        self.started = time.perf_counter()
        self._connect_started = self._dns_started = self.started
        self._dns_s = 0.0
        self.sockets: list[socket.socket] = []  # of the connection being made (the socket factory adds them)
        progress.phase = f"connecting to {host_port(url)}"
        progress.refine = self._refine

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def _add_ms(self, key: str, seconds: float) -> None:
        self.details[key] = round(self.details.get(key, 0) + seconds * 1000, 3)

    def _refine(self, phase: str) -> str:
        """aiohttp makes TCP and TLS one step ("connecting"); a socket that has its peer tells
        that a stall is in the TLS handshake."""
        if self.url.scheme == "https" and phase.startswith("connecting to") and any(map(_has_peer, self.sockets)):
            return f"in the TLS handshake with {host_port(self.url)}"
        return phase

    def connection_started(self) -> None:
        self._connect_started, self._dns_s = time.perf_counter(), 0.0
        self.sockets.clear()
        self.progress.phase = f"connecting to {host_port(self.url)}"

    def dns_started(self, host: str) -> None:
        self._dns_started = time.perf_counter()
        self.progress.phase = f"resolving {host}"

    def dns_done(self) -> None:
        took = time.perf_counter() - self._dns_started
        self._dns_s += took
        self._add_ms("dns_ms", took)
        self.progress.phase = f"connecting to {host_port(self.url)}"

    def connected(self) -> None:
        # aiohttp's "connection created" spans DNS, TCP and TLS and does not split the
        # TLS handshake out, so for https connect_ms is TCP + TLS together.
        self._add_ms("connect_ms", time.perf_counter() - self._connect_started - self._dns_s)

    def request_sent(self, url: URL) -> None:
        self.url = url
        self.progress.phase = f"waiting for the response from {display(url)}"

    def redirected(self, response: aiohttp.ClientResponse) -> None:
        try:
            self.url = self.url.join(URL(response.headers.get("Location", "")))
        except ValueError:
            pass  # aiohttp reports the bad Location itself
        self.details["redirects"] = self.details.get("redirects", 0) + 1

    def headers_received(self, resp: aiohttp.ClientResponse) -> dict[str, Any]:
        self.details["status_code"] = resp.status
        self.details["first_byte_ms"] = round(self.elapsed_ms(), 3)
        self.details.setdefault("redirects", 0)
        self.details.update(getattr(resp, "peer_details", None) or {})
        return self.details

    def body_read(self, size: int, cut: bool) -> None:
        self.details["body_bytes"] = size
        if cut:
            self.details["body_truncated"] = True

    def finished(self) -> float:
        total = self.elapsed_ms()
        self.details["total_ms"] = round(total, 3)
        return total


class _Response(aiohttp.ClientResponse):
    """Notes the peer's address and certificate while the connection is attached.

    A small body arrives together with the headers, and aiohttp then hands the
    connection back (with force_close: closes it) before `request()` returns, so
    `resp.connection` is often None by the time the check could look.
    """

    peer_details: dict[str, Any] | None = None

    async def start(self, connection):
        transport = connection.transport
        if transport is not None:
            peer = transport.get_extra_info("peername")
            self.peer_details = {"address": peer[0]} if peer else {}
            self.peer_details.update(certificate_details(transport.get_extra_info("ssl_object")))
        return await super().start(connection)


def make_session(*, resolver: aiohttp.abc.AbstractResolver | None = None, source_address: str = ""
                 ) -> aiohttp.ClientSession:
    """The ClientSession all HTTP monitors share. Call it with the event loop running.

    `resolver` replaces the system's name lookup (tests resolve names without a network).
    `source_address`: the local address every connection binds to ([cluster] locations on one host).
    """
    connector = aiohttp.TCPConnector(
        limit=0, limit_per_host=0,  # a pool cap would make checks queue, and wait time is not latency
        force_close=True,  # a fresh connection per check, so that the phases measured are real
        use_dns_cache=False,  # likewise for DNS; and a monitor should notice a broken record at once
        resolver=resolver,
        socket_factory=_socket_for_check,
        local_addr=(source_address, 0) if source_address else None,
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),  # monitors must not share (or keep) cookies
        auto_decompress=True,
        timeout=aiohttp.ClientTimeout(),  # no aiohttp deadlines: the caller's timeout governs
        trace_configs=[_trace_config()],
        response_class=_Response,
        headers={"User-Agent": USER_AGENT},
    )


CONNECTING: ContextVar["Timing | None"] = ContextVar("probe_http_connecting", default=None)


def _socket_for_check(addr_info) -> socket.socket:
    """aiohttp's socket factory (called in the request's task, or a task copied from it)."""
    family, type_, proto, _, _ = addr_info
    sock = socket.socket(family=family, type=type_, proto=proto)
    timing = CONNECTING.get()
    if timing is not None:
        timing.sockets.append(sock)
    return sock


def _has_peer(sock: socket.socket) -> bool:
    try:
        sock.getpeername()
    except OSError:  # not connected yet, or closed
        return False
    return True


def _trace_config() -> aiohttp.TraceConfig:
    config = aiohttp.TraceConfig()
    hooks = [
        (config.on_connection_create_start, lambda t, p: t.connection_started()),
        (config.on_dns_resolvehost_start, lambda t, p: t.dns_started(p.host)),
        (config.on_dns_resolvehost_end, lambda t, p: t.dns_done()),
        (config.on_connection_create_end, lambda t, p: t.connected()),
        (config.on_request_headers_sent, lambda t, p: t.request_sent(p.url)),
        (config.on_request_redirect, lambda t, p: t.redirected(p.response)),
    ]
    for signal, hook in hooks:
        signal.append(_only_for_checks(hook))
    return config


def _only_for_checks(hook):
    async def signal_handler(session, trace_config_ctx, params) -> None:
        timing = trace_config_ctx.trace_request_ctx
        if isinstance(timing, Timing):  # other users of a session pass nothing
            hook(timing, params)
    return signal_handler


def host_port(url: URL) -> str:
    host = url.host or ""
    return f"[{host}]:{url.port}" if ":" in host else f"{host}:{url.port}"


def display(url: URL) -> str:
    """The URL without its password: reasons end up on pages and in notifications."""
    return str(url.with_password("***")) if url.password else str(url)
