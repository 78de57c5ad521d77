"""Targets that misbehave on purpose: each must cost one "down" result, in words, within the timeout.

Every case goes through the real CheckRunner (which owns the deadline), against a real
peer on 127.0.0.1 (tests/peers/hostile.py, tests/peers/dns_server.py). The elapsed-time
bound is behaviour, not speed: a check that hangs past its timeout fails it.
"""
from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

import pytest
from aiohttp import web

from probe.checks.dns import DnsCheck, DnsOptions
from probe.checks.http import HttpCheck, HttpOptions
from probe.checks.tcp import TcpCheck, TcpOptions
from probe.core.models import Status
from probe.engine.runner import CheckRunner
from tests.peers import hostile
from tests.peers.dns_server import DnsServer
from tests.peers.http_target import raw_server

TIMEOUT = 1.0
MARGIN = 1.0  # the loaded test machine's scheduling noise; a hang is many times this
RESET = re.compile(r"^connection to 127\.0\.0\.1:\d+ reset$")


@dataclass
class Monitor:
    id: str = "hostile"
    timeout: float = TIMEOUT
    degraded_latency: float | None = None


@pytest.fixture
async def run():
    """run(check) -> (result, seconds taken), through one runner and its shared HTTP session."""
    runner = CheckRunner()

    async def go(check):
        started = time.perf_counter()
        result = await asyncio.wait_for(runner.run(Monitor(), check), TIMEOUT * 10)  # a hang fails, not blocks
        return result, time.perf_counter() - started

    yield go
    await runner.close()


def http(url: str, **options) -> HttpCheck:
    return HttpCheck(HttpOptions(url=url, **options))


def tcp(port: int, **options) -> TcpCheck:
    return TcpCheck(TcpOptions(host="127.0.0.1", port=port, **options))


def assert_one_clear_failure(result, elapsed: float, *words: str) -> None:
    assert result.status is Status.DOWN, result.reason
    for word in words:  # words, or a pattern for the whole reason
        assert word.search(result.reason) if isinstance(word, re.Pattern) else word in result.reason, result.reason
    assert "unexpectedly" not in result.reason  # a stray exception, not a verdict
    assert "\n" not in result.reason
    assert elapsed <= TIMEOUT + MARGIN


# --- HTTP ------------------------------------------------------------------------------------

@pytest.mark.parametrize("peer, scheme, words", [
    ("never_answers", "http", ["timed out after 1s while waiting for the response from"]),
    ("never_answers", "https", ["timed out after 1s while in the TLS handshake with 127.0.0.1:"]),  # no ServerHello
    ("drip", "http", ["timed out after 1s while waiting for the response from"]),
    ("drip_body", "http", ["timed out after 1s while reading the body of"]),
    ("garbage", "http", ["invalid HTTP response from", "Bad status line"]),
    ("garbage", "https", ["TLS handshake with 127.0.0.1:", "failed: wrong version number"]),
    ("hang_up", "http", ["invalid HTTP response from", "the server closed the connection"]),
    ("hang_up", "https", ["TLS handshake with 127.0.0.1:", "failed: the server closed the connection"]),
    ("endless_headers", "http", ["invalid HTTP response from", "Too many headers"]),
    ("giant_headers", "http", ["invalid HTTP response from", "Too many headers"]),
    ("reset_at_once", "http", [RESET]),
    ("reset_after_request", "http", [RESET]),
    ("reset_after_request", "https", [RESET]),
])
async def test_a_hostile_http_peer_costs_one_down_result_with_its_reason(run, peer, scheme, words):
    async with raw_server(hostile.TCP_PEERS[peer]()) as port:
        result, elapsed = await run(http(f"{scheme}://127.0.0.1:{port}/health"))
    assert_one_clear_failure(result, elapsed, *words)


@pytest.mark.parametrize("peer", ["endless_body", "huge_body"])
async def test_reading_an_endless_or_huge_body_stops_at_max_body_bytes(run, peer):
    tally = hostile.Tally()
    async with raw_server(hostile.TCP_PEERS[peer](tally)) as port:
        result, elapsed = await run(http(f"http://127.0.0.1:{port}/", expect_text="healthy", max_body_bytes=65536))
        for _ in range(100):  # the peer notices the hang-up a moment later
            if tally.ended:
                break
            await asyncio.sleep(0.02)
    assert_one_clear_failure(result, elapsed, "expected text 'healthy' not found in the first 65536 bytes")
    assert result.details["body_bytes"] == 65536
    assert result.details["body_truncated"] is True
    assert tally.ended == 1  # the check hung up instead of draining the rest


async def test_a_redirect_loop_stops_at_max_redirects(run, aiohttp_server):
    app = web.Application()
    app.router.add_get("/loop", _redirect_to_self)
    server = await aiohttp_server(app)
    result, elapsed = await run(http(str(server.make_url("/loop")), max_redirects=5))
    assert_one_clear_failure(result, elapsed, "too many redirects (more than 5)")


async def _redirect_to_self(request: web.Request) -> web.Response:
    return web.Response(status=302, headers={"Location": "/loop"})


# --- TCP -------------------------------------------------------------------------------------

@pytest.mark.parametrize("peer, tls, words", [
    ("never_answers", False, ["timed out after 1s while waiting for 'PONG' from 127.0.0.1:"]),
    ("never_answers", True, ["timed out after 1s while in the TLS handshake with 127.0.0.1:"]),
    ("drip", False, ["timed out after 1s waiting for 'PONG'", "got 'H"]),
    ("garbage", True, ["TLS handshake with 127.0.0.1:", "failed: wrong version number"]),
    ("hang_up", False, ["expected 'PONG' from 127.0.0.1:", "got ''"]),
    ("hang_up", True, ["TLS handshake with 127.0.0.1:", "failed: the server closed the connection"]),
    ("reset_at_once", False, [RESET]),
    ("reset_after_request", False, [RESET]),
    ("reset_after_request", True, [RESET]),
])
async def test_a_hostile_tcp_peer_costs_one_down_result_with_its_reason(run, peer, tls, words):
    async with raw_server(hostile.TCP_PEERS[peer]()) as port:
        result, elapsed = await run(tcp(port, tls=tls, send="PING\n", expect="PONG"))
    assert_one_clear_failure(result, elapsed, *words)


async def test_an_endless_stream_is_read_only_up_to_the_expect_limit(run):
    tally = hostile.Tally()
    async with raw_server(hostile.huge_body(tally)) as port:
        result, elapsed = await run(tcp(port, send="PING\n", expect="PONG"))
    assert_one_clear_failure(result, elapsed, "expected 'PONG' from 127.0.0.1:", "got 'HTTP/1.1 200 OK")


# --- DNS -------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode, tcp_open, words", [
    ("silent", True, ["no answer from 127.0.0.1:", "within 1s"]),
    ("garbage", True, ["malformed DNS answer from 127.0.0.1:"]),
    ("truncate", False, ["was truncated and the TCP retry failed: connection refused"]),
    ("truncate_hang", True, ["no answer from 127.0.0.1:", "within 1s"]),
])
async def test_a_hostile_dns_server_costs_one_down_result_with_its_reason(run, mode, tcp_open, words):
    async with DnsServer({("app.test", "A"): ["192.0.2.1"]}, mode=mode, tcp=tcp_open) as server:
        result, elapsed = await run(DnsCheck(DnsOptions(query="app.test", server=server.hostport)))
    assert_one_clear_failure(result, elapsed, *words)
