"""TCP check: connect (optionally with TLS), optionally send bytes and expect a reply."""
from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass

from probe.checks.base import Check, CheckContext, host_problem
from probe.checks.tls import (
    NOTIFY_DAYS,
    certificate_details,
    client_context,
    describe_ssl_error,
    expiry_verdict,
    notify_days_problems,
)
from probe.core.models import CheckResult

_EXPECT_READ_LIMIT = 64 * 1024  # a banner or reply; never read a whole stream


@dataclass(frozen=True)
class TcpOptions:
    host: str
    port: int
    tls: bool = False
    verify_tls: bool = True
    server_name: str | None = None  # SNI / certificate name when `host` is an IP
    cert_expiry_days: int | None = None
    cert_expiry_notify: tuple[int, ...] = NOTIFY_DAYS  # with tls = true: days left at which notifiers hear
    send: str | None = None
    expect: str | None = None

    def problems(self):
        if not 1 <= self.port <= 65535:
            yield "port", f"must be between 1 and 65535 (got {self.port})"
        problem = host_problem(self.host)
        if problem:
            yield "host", problem
        if self.cert_expiry_days is not None and not self.tls:
            yield "cert_expiry_days", "needs tls = true"
        # No "needs tls" here: the default (and a [defaults] value) applies to plain TCP monitors too.
        yield from notify_days_problems(self.cert_expiry_notify)


class TcpCheck(Check):
    type = "tcp"
    Options = TcpOptions
    options: TcpOptions

    def target(self) -> str:
        host = self.options.host
        return f"[{host}]:{self.options.port}" if ":" in host else f"{host}:{self.options.port}"

    async def run(self, ctx: CheckContext) -> CheckResult:
        opts = self.options
        started = time.perf_counter()
        ctx.progress.phase = f"connecting to {self.target()}"
        sslctx = client_context(opts.verify_tls) if opts.tls else None
        try:
            bind = {"local_addr": (ctx.source_address, 0)} if ctx.source_address else {}
            reader, writer = await asyncio.open_connection(opts.host, opts.port, **bind)
            if sslctx:
                await self._handshake(writer, sslctx, ctx)
        except ssl.SSLError as exc:
            return CheckResult.down(f"TLS handshake with {self.target()} failed: {describe_ssl_error(exc)}")
        except OSError as exc:
            return CheckResult.down(self._connect_error(exc))
        connect_ms = (time.perf_counter() - started) * 1000
        details: dict = {"connect_ms": round(connect_ms, 3)}
        ctx.progress.details = details
        try:
            peer = writer.get_extra_info("peername")
            if peer:
                details["address"] = peer[0]
            if sslctx:
                details.update(certificate_details(writer.get_extra_info("ssl_object")))
            reply = await self._exchange(reader, writer, ctx)
        except ConnectionResetError:
            return CheckResult.down(f"connection to {self.target()} reset", **details)
        except (OSError, asyncio.IncompleteReadError) as exc:
            return CheckResult.down(f"connection to {self.target()} failed: {exc.__class__.__name__}: {exc}",
                                    **details)
        finally:
            writer.close()
        latency = (time.perf_counter() - started) * 1000
        return self._verdict(reply, latency, details)

    async def _handshake(self, writer: asyncio.StreamWriter, sslctx: ssl.SSLContext, ctx: CheckContext) -> None:
        """TLS after TCP, as two steps: a server that accepts and then stalls the handshake is
        reported as stalling there, not as a connection that never came."""
        ctx.progress.phase = f"in the TLS handshake with {self.target()}"
        try:
            await writer.start_tls(sslctx, server_hostname=self.options.server_name or self.options.host,
                                   ssl_handshake_timeout=ctx.timeout)
        except BaseException:
            writer.close()
            raise

    async def _exchange(self, reader, writer, ctx: CheckContext) -> bytes | None:
        opts = self.options
        if opts.send is not None:
            ctx.progress.phase = f"sending to {self.target()}"
            writer.write(opts.send.encode())
            await writer.drain()
        if opts.expect is None:
            return None
        ctx.progress.phase = f"waiting for {opts.expect!r} from {self.target()}"
        return await _read_until(reader, opts.expect.encode(), _EXPECT_READ_LIMIT,
                                 on_data=lambda data: self._got_so_far(ctx, data))

    def _got_so_far(self, ctx: CheckContext, data: bytes) -> None:
        # A server that answers something else usually keeps the connection open (Redis
        # "-ERR ...", an HTTP server's 400): if the deadline passes, say what did come.
        got = _show(data).replace("{", "{{").replace("}", "}}")
        ctx.progress.on_timeout = (f"timed out after {{timeout}} waiting for {self.options.expect!r} "
                                   f"from {self.target()}; got {got!r}")

    def _verdict(self, reply: bytes | None, latency: float, details: dict) -> CheckResult:
        opts = self.options
        if opts.expect is not None and opts.expect.encode() not in (reply or b""):
            got = _show(reply or b"")
            return CheckResult.down(f"expected {opts.expect!r} from {self.target()}, got {got!r}",
                                    latency, **details)
        expiry = expiry_verdict(details, opts.cert_expiry_days, latency)
        if expiry:
            return expiry
        what = "TLS connection established" if opts.tls else "connected"
        # No numbers in an "up" reason: the store keeps each distinct reason once.
        return CheckResult.up(f"{what} to {self.target()}", latency, **details)

    def _connect_error(self, exc: OSError) -> str:
        if isinstance(exc, ConnectionRefusedError):
            return f"connection refused by {self.target()}"
        if isinstance(exc, ConnectionResetError) and exc.errno is None and self.options.tls:
            # asyncio's word for a server that hangs up during the TLS handshake
            return f"TLS handshake with {self.target()} failed: the server closed the connection"
        if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
            return f"connection to {self.target()} reset"
        if exc.__class__.__name__ == "gaierror" or "Name or service not known" in str(exc):
            return f"cannot resolve {self.options.host}: {exc.strerror or exc}"
        return f"cannot connect to {self.target()}: {exc.strerror or exc}"


async def _read_until(reader: asyncio.StreamReader, needle: bytes, limit: int, on_data=None) -> bytes:
    """Read until `needle` shows up, the peer closes, or `limit` bytes came."""
    data = b""
    while needle not in data and len(data) < limit:
        chunk = await reader.read(limit - len(data))
        if not chunk:
            break
        data += chunk
        if on_data:
            on_data(data)
    return data


def _show(data: bytes) -> str:
    return data[:60].decode("utf-8", "replace")
