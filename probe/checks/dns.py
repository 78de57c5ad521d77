"""DNS check: one query to a chosen (or the system's) resolver, rcode and answer expectations."""
from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
import time
from dataclasses import dataclass
from typing import Literal

import dns.asyncbackend
import dns.asyncquery
import dns.exception
import dns.flags
import dns.inet
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.reversename
import dns.rrset

from probe.checks.base import Check, CheckContext, host_problem
from probe.config.schema import any_case, show
from probe.core.models import CheckResult
from probe.core.units import format_duration

RecordType = any_case(Literal["A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "SRV", "CAA", "PTR"])

# An empty NS or SOA answer is normal below a zone apex (the SOA comes in the authority
# section); for every other type an empty answer means the record is missing.
_ANSWER_REQUIRED = frozenset({"A", "AAAA", "CNAME", "MX", "TXT", "SRV", "CAA", "PTR"})
_MAX_CNAME_CHAIN = 16
_EDNS_PAYLOAD = 1232  # the DNS Flag Day 2020 size: fits unfragmented almost everywhere
_PORT = re.compile(r"^[0-9]{1,5}$")
_SERVER_FORMAT = 'must be "host[:port]", e.g. "192.0.2.53", "ns1.example.com:5353" or "[2001:db8::53]:53"'


@dataclass(frozen=True)
class DnsOptions:
    query: str
    record_type: RecordType = "A"
    server: str | None = None  # "host[:port]"; None: the system's resolver
    protocol: Literal["udp", "tcp", "system"] = "udp"
    expect: tuple[str, ...] = ()
    expect_rcode: str = "NOERROR"

    def problems(self):
        try:
            question_name(self.query, self.record_type)
        except ValueError as exc:
            yield "query", f"{exc} (got {show(self.query)})"
        if self.server is not None:
            try:
                split_server(self.server)
            except ValueError as exc:
                yield "server", f"{exc} (got {show(self.server)})"
        yield from self._rcode_problems()
        if self.protocol == "system":
            if self.record_type not in ("A", "AAAA"):
                yield "protocol", ('"system" can only look up record_type "A" or "AAAA" '
                                   f"(got {show(self.record_type)})")
            if self.server is not None:
                yield "server", 'cannot be set with protocol = "system" (the operating system picks its resolver)'

    def _rcode_problems(self):
        try:
            rcode = dns.rcode.from_text(self.expect_rcode)
        except dns.rcode.UnknownRcode:
            yield "expect_rcode", ('must be a DNS rcode such as "NOERROR", "NXDOMAIN" or "SERVFAIL" '
                                   f"(got {show(self.expect_rcode)})")
            return
        if self.expect and rcode != dns.rcode.NOERROR:
            yield "expect", f'needs expect_rcode = "NOERROR" (an answer with rcode {dns.rcode.to_text(rcode)} ' \
                            "has no records)"
        if self.protocol == "system" and rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            yield "expect_rcode", ('must be "NOERROR" or "NXDOMAIN" with protocol = "system" (the operating '
                                   f"system reports no other rcode; got {show(self.expect_rcode)})")


def question_name(query: str, record_type: str) -> dns.name.Name:
    """The name to ask about; a PTR query may be written as the IP address itself."""
    if not query.strip():
        raise ValueError("must not be empty")
    if record_type == "PTR" and dns.inet.is_address(query.strip()):
        return dns.reversename.from_address(query.strip())
    try:
        return dns.name.from_text(query.strip())
    except (dns.exception.DNSException, ValueError) as exc:
        raise ValueError(f"must be a domain name ({str(exc).rstrip('.')})") from None


def split_server(text: str) -> tuple[str, int]:
    """("host", port) from "host", "host:port", "[v6]" or "[v6]:port"; port defaults to 53.

    A bare IPv6 address is refused: "::1:53" is itself a valid address, so it would
    silently mean port 53 of a different host than the operator had in mind.
    """
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or ":" not in host or not dns.inet.is_address(host) or (rest and rest[0] != ":"):
            raise ValueError(_SERVER_FORMAT)
        port_text = rest[1:] if rest else None
    elif text.count(":") > 1:
        raise ValueError(_SERVER_FORMAT + ' (write an IPv6 address in brackets, e.g. "[::1]:53")')
    else:
        host, sep, port_text = text.partition(":")
        if host_problem(host) or (sep and not port_text):
            raise ValueError(_SERVER_FORMAT)
        port_text = port_text if sep else None
    if port_text is None:
        return host, 53
    if not _PORT.match(port_text) or not 1 <= int(port_text) <= 65535:
        raise ValueError("port must be between 1 and 65535")
    return host, int(port_text)


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@functools.cache
def _system_nameserver() -> str | None:
    """The first nameserver in /etc/resolv.conf, read once (most monitors never need it)."""
    try:
        nameservers = dns.resolver.Resolver().nameservers
    except (dns.exception.DNSException, OSError):
        return None
    return str(nameservers[0]) if nameservers else None


class _NoAnswer(Exception):
    """The exchange failed; the message is the DOWN reason."""


class DnsCheck(Check):
    type = "dns"
    Options = DnsOptions
    options: DnsOptions

    def target(self) -> str:
        return self.options.query

    @property
    def _what(self) -> str:
        return self.options.query.strip().rstrip(".")

    async def run(self, ctx: CheckContext) -> CheckResult:
        if self.options.protocol == "system":
            return await self._run_system(ctx)
        opts = self.options
        try:
            query = dns.message.make_query(question_name(opts.query, opts.record_type), opts.record_type,
                                           use_edns=0, payload=_EDNS_PAYLOAD)
        except ValueError as exc:  # only when the options skipped validation
            return CheckResult.down(f"query {exc} (got {show(opts.query)})")
        try:
            where, address, port = await self._server(ctx)
        except ValueError as exc:
            return CheckResult.down(f"server {exc} (got {show(opts.server)})")
        except _NoAnswer as exc:
            return CheckResult.down(str(exc))
        details: dict = {"server": where, "protocol": opts.protocol}
        ctx.progress.details = details
        started = time.perf_counter()
        try:
            response = await self._exchange(ctx, query, where, address, port, details)
        except _NoAnswer as exc:
            return CheckResult.down(str(exc), **details)
        latency = (time.perf_counter() - started) * 1000
        details["query_ms"] = round(latency, 3)
        return self._verdict(response, query.question[0].name, where, latency, details)

    async def _server(self, ctx: CheckContext) -> tuple[str, str, int]:
        """(as shown, IP address, port) of the server to ask."""
        if self.options.server is None:
            host, port = _system_nameserver(), 53
            if host is None:
                raise _NoAnswer("no system resolver configured (/etc/resolv.conf has no nameserver)")
        else:
            host, port = split_server(self.options.server)
        if dns.inet.is_address(host):
            return _hostport(host, port), host, port
        ctx.progress.phase = f"resolving the DNS server name {host}"
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            raise _NoAnswer(f"cannot resolve the DNS server {host}: {exc.strerror or exc}") from None
        return _hostport(host, port), infos[0][4][0], port

    async def _exchange(self, ctx: CheckContext, query: dns.message.Message, where: str, address: str,
                        port: int, details: dict) -> dns.message.Message:
        # dnspython gets the caller's deadline too, and its own Timeout reads like the caller's.
        deadline = time.monotonic() + ctx.timeout
        ctx.progress.phase = f"waiting for {where} to answer {self._what} {self.options.record_type}"
        ctx.progress.on_timeout = f"no answer from {where} within {{timeout}}"
        # Bound to the source address, if any (the system resolver cannot be: protocol = "system")
        tcp = functools.partial(dns.asyncquery.tcp, source=ctx.source_address or None)
        udp = functools.partial(_udp, source=ctx.source_address)
        if self.options.protocol == "tcp":
            return await _ask(tcp, query, where, address, port, ctx.timeout)
        response = await _ask(udp, query, where, address, port, ctx.timeout)
        if not response.flags & dns.flags.TC:
            return response
        # Like a real resolver: a truncated UDP answer is asked again over TCP.
        details["truncated"] = True
        ctx.progress.phase = f"retrying over TCP with {where} (the UDP answer was truncated)"
        retry_failed = f"the UDP answer from {where} was truncated and the TCP retry failed: "
        ctx.progress.on_timeout = retry_failed + f"no answer from {where} within {{timeout}}"
        try:
            return await _ask(tcp, query, where, address, port,
                              max(deadline - time.monotonic(), 0), ctx.timeout)
        except _NoAnswer as exc:
            raise _NoAnswer(retry_failed + str(exc)) from None

    def _verdict(self, response: dns.message.Message, qname: dns.name.Name, where: str, latency: float,
                 details: dict) -> CheckResult:
        opts, rtype = self.options, self.options.record_type
        rcode, want = response.rcode(), dns.rcode.from_text(opts.expect_rcode)
        details["rcode"] = dns.rcode.to_text(rcode)
        rrset, cnames = _final_rrset(response, qname, dns.rdatatype.from_text(rtype))
        # Sorted: servers rotate record order, and a DOWN reason must not change with it.
        rdatas = sorted(rrset, key=lambda r: _order(_display(r))) if rrset is not None else []
        details["answers"] = [_display(r) for r in rdatas]
        if rrset is not None:
            details["ttl"] = rrset.ttl
        if cnames:
            details["cname_chain"] = cnames
        if rcode != want:
            return CheckResult.down(self._rcode_reason(rcode, want, where), latency, **details)
        if want != dns.rcode.NOERROR:
            return CheckResult.up(f"{details['rcode']} for {self._what} {rtype} as expected", latency, **details)
        if not rdatas and (opts.expect or rtype in _ANSWER_REQUIRED):
            why = f"only a CNAME to {cnames[-1]} in the answer" if cnames else "empty answer"
            return CheckResult.down(f"no {rtype} record for {self._what} ({why})", latency, **details)
        return self._expect_verdict(details["answers"], [_forms(r) for r in rdatas], latency, details)

    def _expect_verdict(self, answers: list[str], forms: list[list[str]], latency: float,
                        details: dict) -> CheckResult:
        present = {_normal(form) for alternatives in forms for form in alternatives}
        missing = [value for value in self.options.expect if _normal(value) not in present]
        rtype = self.options.record_type
        if missing:
            return CheckResult.down(f"expected {', '.join(missing)} in the {rtype} answer, "
                                    f"got {', '.join(answers) or 'nothing'}", latency, **details)
        # No answers or numbers in an "up" reason: the store keeps each distinct reason once.
        return CheckResult.up(f"{rtype} {self._what} answered", latency, **details)

    def _rcode_reason(self, rcode: dns.rcode.Rcode, want: dns.rcode.Rcode, where: str) -> str:
        rtype, got = self.options.record_type, dns.rcode.to_text(rcode)
        if want != dns.rcode.NOERROR:
            return f"{got} from {where} for {self._what} {rtype} (expected {dns.rcode.to_text(want)})"
        if rcode == dns.rcode.NXDOMAIN:
            return f"no {rtype} record for {self._what} (NXDOMAIN)"
        return f"{got} from {where} for {self._what} {rtype}"

    async def _run_system(self, ctx: CheckContext) -> CheckResult:
        """Ask the operating system (getaddrinfo: /etc/hosts, nsswitch, its resolver)."""
        opts = self.options
        family = socket.AF_INET6 if opts.record_type == "AAAA" else socket.AF_INET
        details: dict = {"server": "system", "protocol": "system"}
        ctx.progress.details = details
        ctx.progress.phase = f"asking the system resolver for {self._what}"
        ctx.progress.on_timeout = f"no answer from the system resolver for {self._what} within {{timeout}}"
        started = time.perf_counter()
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(opts.query.strip(), None, family=family,
                                                                 type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            return self._system_failure(exc, (time.perf_counter() - started) * 1000, details)
        latency = (time.perf_counter() - started) * 1000
        answers = sorted(dict.fromkeys(info[4][0] for info in infos), key=_order)
        details.update(answers=answers, query_ms=round(latency, 3))
        if opts.expect_rcode.upper() == "NXDOMAIN":
            return CheckResult.down(f"expected NXDOMAIN for {self._what} {opts.record_type}, "
                                    f"got {', '.join(answers)}", latency, **details)
        return self._expect_verdict(answers, [[a] for a in answers], latency, details)

    def _system_failure(self, exc: socket.gaierror, latency: float, details: dict) -> CheckResult:
        rtype, text = self.options.record_type, exc.strerror or str(exc)
        not_found = exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME))
        if not_found and self.options.expect_rcode.upper() == "NXDOMAIN":
            return CheckResult.up(f"NXDOMAIN for {self._what} {rtype} as expected", latency, **details)
        if not_found:
            return CheckResult.down(f"no {rtype} record for {self._what} (system resolver: {text})",
                                    latency, **details)
        return CheckResult.down(f"the system resolver cannot resolve {self._what}: {text}", latency, **details)


async def _udp(query: dns.message.Message, address: str, timeout: float, port: int, source: str = ""
               ) -> dns.message.Message:
    # A connected socket hears ICMP "port unreachable" (ConnectionRefusedError) instead of
    # waiting out the timeout, and only accepts datagrams from the server asked.
    backend = dns.asyncbackend.get_default_backend()
    sock = await backend.make_socket(dns.inet.af_for_address(address), socket.SOCK_DGRAM, 0,
                                     (source, 0) if source else None, (address, port))
    async with sock:
        return await dns.asyncquery.udp(query, address, timeout=timeout, port=port, sock=sock)


async def _ask(send, query: dns.message.Message, where: str, address: str, port: int, timeout: float,
               full_timeout: float | None = None) -> dns.message.Message:
    """One exchange; anything the server (or the network) does wrong becomes _NoAnswer."""
    try:
        return await send(query, address, timeout=timeout, port=port)
    except dns.exception.Timeout:
        raise _NoAnswer(f"no answer from {where} within {format_duration(full_timeout or timeout)}") from None
    except dns.query.BadResponse:
        raise _NoAnswer(f"answer from {where} does not match the query (wrong id or question)") from None
    except dns.exception.DNSException as exc:
        raise _NoAnswer(f"malformed DNS answer from {where} ({str(exc).rstrip('.')})") from None
    except ConnectionRefusedError:
        raise _NoAnswer(f"connection refused by {where}") from None
    except (ConnectionResetError, BrokenPipeError, EOFError):
        raise _NoAnswer(f"connection to {where} closed before an answer") from None
    except OSError as exc:
        raise _NoAnswer(f"cannot reach {where}: {exc.strerror or exc}") from None


def _final_rrset(response: dns.message.Message, qname: dns.name.Name,
                 rdtype: dns.rdatatype.RdataType) -> tuple[dns.rrset.RRset | None, list[str]]:
    """The rrset that answers the question, following CNAMEs within the answer section."""
    name, chain = qname, []
    for _ in range(_MAX_CNAME_CHAIN):
        rrset = response.get_rrset(response.answer, name, dns.rdataclass.IN, rdtype)
        if rrset is not None or rdtype == dns.rdatatype.CNAME:
            return rrset, chain
        cname = response.get_rrset(response.answer, name, dns.rdataclass.IN, dns.rdatatype.CNAME)
        if cname is None:
            break
        name = cname[0].target
        chain.append(name.to_text(omit_final_dot=True))
    return None, chain


def _txt(rdata) -> str:
    return b"".join(rdata.strings).decode("utf-8", "replace")


def _display(rdata) -> str:
    if rdata.rdtype == dns.rdatatype.TXT:
        return _txt(rdata)
    return rdata.to_text().rstrip(".")


def _forms(rdata) -> list[str]:
    """The ways an operator may write this record in `expect`."""
    forms = [rdata.to_text()]
    if rdata.rdtype == dns.rdatatype.TXT:
        forms.append(_txt(rdata))
    elif rdata.rdtype == dns.rdatatype.MX:
        forms.append(rdata.exchange.to_text())
    elif rdata.rdtype == dns.rdatatype.SRV:
        forms.append(rdata.target.to_text())
    elif rdata.rdtype == dns.rdatatype.CAA:
        forms.append(rdata.value.decode("utf-8", "replace"))
    return forms


def _order(text: str) -> tuple:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return (1, 0, text)
    return (0, address.version, int(address))


def _normal(text: str) -> str:
    text = " ".join(text.split()).lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(text))  # "2001:DB8:0::1" == "2001:db8::1"
    except ValueError:
        return text
