"""TCP check against real listeners on 127.0.0.1, with trustme certificates for TLS."""
from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
import trustme

from probe.checks.base import CheckContext, Progress
from probe.checks.tcp import TcpCheck, TcpOptions
from probe.config.loader import ConfigError
from probe.core.models import Status
from probe.engine.runner import CheckRunner

NOW = datetime.now(timezone.utc).replace(microsecond=0)


@contextlib.asynccontextmanager
async def serve(handler, tls: ssl.SSLContext | None = None):
    """A listener on 127.0.0.1 and a free port; yields the port."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=tls)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def hold_open(reader, writer):
    """Accepts, says nothing, and waits for the client to leave."""
    await reader.read()
    writer.close()


def answering(reply: bytes, delay: float = 0.0, hang_up: bool = False):
    """Answers "PING\n" with `reply`, then hangs up or waits for the client to leave."""
    async def handler(reader, writer):
        if await reader.readline() == b"PING\n":
            await asyncio.sleep(delay)
            writer.write(reply)
            await writer.drain()
        if not hang_up:
            await reader.read()
        writer.close()
    return handler


async def check(port: int, **options):
    """The check alone; the guard only keeps a broken check from hanging the test run."""
    run = TcpCheck(TcpOptions(host="127.0.0.1", port=port, **options)).run(
        CheckContext(timeout=2.0, progress=Progress()))
    return await asyncio.wait_for(run, 5)


@dataclass
class Monitor:
    id: str = "tcp"
    timeout: float = 0.5
    degraded_latency: float | None = None


async def test_it_is_up_when_the_port_accepts():
    async with serve(hold_open) as port:
        result = await check(port)
    assert (result.status, result.reason) == (Status.UP, f"connected to 127.0.0.1:{port}")
    assert result.details["address"] == "127.0.0.1"
    assert 0 <= result.details["connect_ms"] <= result.latency_ms < 1000


async def test_it_is_down_when_the_port_refuses():
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    result = await check(port)
    assert (result.status, result.reason) == (Status.DOWN, f"connection refused by 127.0.0.1:{port}")


async def test_it_is_up_when_the_expected_reply_comes():
    async with serve(answering(b"PONG\n")) as port:
        result = await check(port, send="PING\n", expect="PONG")
    assert (result.status, result.reason) == (Status.UP, f"connected to 127.0.0.1:{port}")


async def test_it_is_down_when_the_reply_differs_and_says_what_came():
    async with serve(answering(b"ERR unknown command\n", hang_up=True)) as port:
        result = await check(port, send="PING\n", expect="PONG")
    assert result.status is Status.DOWN
    assert result.reason == f"expected 'PONG' from 127.0.0.1:{port}, got 'ERR unknown command\\n'"


async def test_it_says_what_came_when_a_wrong_reply_is_followed_by_silence():
    started = time.perf_counter()
    async with serve(answering(b"-ERR unknown command {PING}\r\n")) as port:
        result = await CheckRunner().run(Monitor(timeout=0.5),
                                         TcpCheck(TcpOptions("127.0.0.1", port, send="PING\n", expect="PONG")))
    assert time.perf_counter() - started < 0.5 + 2.0  # given up at its timeout (room for a busy machine)
    assert result.status is Status.DOWN
    assert result.reason == (f"timed out after 500ms waiting for 'PONG' from 127.0.0.1:{port}; "
                             "got '-ERR unknown command {PING}\\r\\n'")


async def test_it_is_down_when_the_peer_hangs_up_without_the_expected_reply():
    async def hang_up(reader, writer):
        writer.close()

    async with serve(hang_up) as port:
        result = await check(port, expect="220 ")
    assert (result.status, result.reason) == (Status.DOWN, f"expected '220 ' from 127.0.0.1:{port}, got ''")


async def test_it_times_out_saying_what_it_waited_for():
    started = time.perf_counter()
    async with serve(hold_open) as port:
        result = await CheckRunner().run(Monitor(timeout=0.5), TcpCheck(TcpOptions("127.0.0.1", port, expect="PONG")))
    assert time.perf_counter() - started < 0.5 + 2.0  # given up at its timeout (room for a busy machine)
    assert result.status is Status.DOWN
    assert result.reason == f"timed out after 500ms while waiting for 'PONG' from 127.0.0.1:{port}"
    assert "connect_ms" in result.details  # what was measured before the deadline is kept


async def test_a_slow_reply_is_degraded_by_degraded_latency():
    async with serve(answering(b"PONG\n", delay=0.3)) as port:
        result = await CheckRunner().run(Monitor(timeout=2, degraded_latency=0.1),
                                         TcpCheck(TcpOptions("127.0.0.1", port, send="PING\n", expect="PONG")))
    assert result.status is Status.DEGRADED
    assert result.reason.startswith(f"connected to 127.0.0.1:{port}; slow: ")
    assert result.reason.endswith("(degraded above 100 ms)")
    assert result.latency_ms >= 300


# --- TLS -------------------------------------------------------------------------------------

# `ca` and `trusting` (the tcp check trusts the test CA) come from tests/conftest.py.


def server_tls(ca: trustme.CA, **validity) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", **validity).configure_cert(ctx)
    return ctx


async def test_it_is_up_over_tls_and_reads_the_certificate_expiry(trusting, ca):
    not_after = NOW + timedelta(days=90)
    async with serve(hold_open, server_tls(ca, not_after=not_after)) as port:
        result = await check(port, tls=True, cert_expiry_days=14)
    assert (result.status, result.reason) == (Status.UP, f"TLS connection established to 127.0.0.1:{port}")
    assert result.details["cert_expires_at"] == not_after.isoformat()
    assert result.details["cert_expires_ts"] == int(not_after.timestamp())
    assert result.details["tls_version"].startswith("TLS")


async def test_it_is_degraded_when_the_certificate_expires_within_cert_expiry_days(trusting, ca):
    async with serve(hold_open, server_tls(ca, not_after=NOW + timedelta(days=3, hours=1))) as port:
        result = await check(port, tls=True, cert_expiry_days=14)
    assert (result.status, result.reason) == (Status.DEGRADED, "TLS certificate expires in 3 days (threshold 14 days)")


async def test_it_counts_the_last_day_in_hours(trusting, ca):
    async with serve(hold_open, server_tls(ca, not_after=NOW + timedelta(minutes=70))) as port:
        result = await check(port, tls=True, cert_expiry_days=1)
    assert (result.status, result.reason) == (Status.DEGRADED, "TLS certificate expires in 1 hour (threshold 1 day)")


async def test_it_is_down_when_the_certificate_has_expired(trusting, ca):
    validity = {"not_before": NOW - timedelta(days=90), "not_after": NOW - timedelta(days=1)}
    async with serve(hold_open, server_tls(ca, **validity)) as port:
        result = await check(port, tls=True)
    assert result.status is Status.DOWN
    assert result.reason == f"TLS handshake with 127.0.0.1:{port} failed: certificate has expired"


async def test_it_is_down_when_the_certificate_is_not_trusted(trusting):
    async with serve(hold_open, server_tls(trustme.CA())) as port:
        result = await check(port, tls=True)
    assert result.status is Status.DOWN
    assert result.reason.startswith(f"TLS handshake with 127.0.0.1:{port} failed: certificate not trusted (")


async def test_it_still_reads_the_expiry_when_verification_is_off(trusting):
    not_after = NOW + timedelta(days=5, hours=1)
    async with serve(hold_open, server_tls(trustme.CA(), not_after=not_after)) as port:
        result = await check(port, tls=True, verify_tls=False, cert_expiry_days=14)
    assert (result.status, result.reason) == (Status.DEGRADED, "TLS certificate expires in 5 days (threshold 14 days)")
    assert result.details["cert_expires_at"] == not_after.isoformat()


async def test_it_is_down_when_tls_meets_a_plain_tcp_server(trusting):
    async def plain_http(reader, writer):
        await reader.read(1)  # the ClientHello
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async with serve(plain_http) as port:
        result = await check(port, tls=True)
    assert result.status is Status.DOWN
    prefix = f"TLS handshake with 127.0.0.1:{port} failed: "
    assert result.reason.startswith(prefix) and len(result.reason) > len(prefix)  # OpenSSL's words vary


# --- configuration ---------------------------------------------------------------------------

def test_it_loads_a_tcp_monitor(load_monitor):
    options = load_monitor("tcp", 'host = "127.0.0.1"\nport = 5432\n').monitors[0].options
    assert options == TcpOptions(host="127.0.0.1", port=5432)


@pytest.mark.parametrize("body, problem", [
    ('host = "127.0.0.1"\nport = 70000\n', "port must be between 1 and 65535 (got 70000)"),
    ('host = "127.0.0.1"\nport = 0\n', "port must be between 1 and 65535 (got 0)"),
    ('host = "127.0.0.1"\nport = "5432"\n', 'port must be an integer (got "5432")'),
    ('host = "127.0.0.1"\nhots = "db.internal"\nport = 5432\n',
     'unknown key "hots" (did you mean "host"?) for type "tcp"'),
    ('port = 5432\n', "host is required"),
    ('host = "127.0.0.1"\nport = 5432\ncert_expiry_days = 14\n', "cert_expiry_days needs tls = true"),
])
def test_it_rejects_bad_tcp_settings_and_points_at_them(load_monitor, body, problem):
    with pytest.raises(ConfigError) as caught:
        load_monitor("tcp", body)
    assert caught.value.problems == [f'cfg.toml: monitors[0] "m": {problem}']
