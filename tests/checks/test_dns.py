"""The DNS check against a real DNS server on loopback (tests/peers/dns_server.py)."""
from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import probe.checks.dns
from probe.checks import CheckContext, Progress
from probe.checks.dns import DnsCheck, DnsOptions
from probe.config.loader import ConfigError, load_config
from probe.core.models import Status
from probe.engine.runner import CheckRunner
from tests.peers.dns_server import DnsServer

ZONE = {
    ("app.test.", "A"): ["192.0.2.1", "192.0.2.2"],
    ("app.test.", "AAAA"): ["2001:db8::1"],
    ("app.test.", "TXT"): ['"v=spf1 include:_spf.test " "-all"'],
    ("app.test.", "CAA"): ['0 issue "letsencrypt.org"'],
    ("www.test.", "CNAME"): ["edge.test."],
    ("edge.test.", "CNAME"): ["app.test."],
    ("dangling.test.", "CNAME"): ["elsewhere.example."],
    ("mail.test.", "MX"): ["10 mx1.test.", "20 mx2.test."],
    ("_sip._udp.test.", "SRV"): ["0 5 5060 sip.test."],
    ("1.2.0.192.in-addr.arpa.", "PTR"): ["app.test."],
}


@dataclass
class Monitor:
    id: str = "dns"
    timeout: float = 1.0
    degraded_latency: float | None = None


async def ask(server: DnsServer, query: str, record_type: str = "A", timeout: float = 1.0, **options):
    check = DnsCheck(DnsOptions(query=query, record_type=record_type, server=server.hostport, **options))
    return await check.run(CheckContext(timeout=timeout, progress=Progress()))


async def run_with_deadline(server: DnsServer, timeout: float, **options):
    check = DnsCheck(DnsOptions(query="app.test", server=server.hostport, **options))
    started = time.monotonic()
    result = await CheckRunner().run(Monitor(timeout=timeout), check)
    return result, time.monotonic() - started


def closed_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- right answers ---------------------------------------------------------------------------

async def test_it_is_up_when_the_a_answer_holds_every_expected_address():
    async with DnsServer(ZONE) as server:
        result = await ask(server, "app.test", expect=("192.0.2.2", "192.0.2.1"))
    assert result.status is Status.UP, result.reason
    assert result.reason == "A app.test answered"
    assert result.details["answers"] == ["192.0.2.1", "192.0.2.2"]
    assert result.details["server"] == server.hostport
    assert result.details["protocol"] == "udp"
    assert result.details["rcode"] == "NOERROR"
    assert result.details["ttl"] == 300
    assert result.latency_ms == pytest.approx(result.details["query_ms"], abs=0.001) and result.latency_ms > 0
    assert server.queries == [("udp", "app.test.", "A")]


async def test_it_compares_aaaa_addresses_however_they_are_spelled():
    async with DnsServer(ZONE) as server:
        result = await ask(server, "APP.test.", "AAAA", expect=("2001:DB8:0:0::1",))
    assert result.status is Status.UP, result.reason
    assert result.details["answers"] == ["2001:db8::1"]


async def test_it_matches_mx_by_full_text_or_by_the_exchange_alone():
    async with DnsServer(ZONE) as server:
        result = await ask(server, "mail.test", "MX", expect=("10 mx1.test", "MX2.test."))
    assert result.status is Status.UP, result.reason
    assert sorted(result.details["answers"]) == ["10 mx1.test", "20 mx2.test"]


async def test_it_matches_txt_unquoted_and_joined():
    async with DnsServer(ZONE) as server:
        result = await ask(server, "app.test", "TXT", expect=("v=spf1 include:_spf.test -all",))
    assert result.status is Status.UP, result.reason
    assert result.details["answers"] == ["v=spf1 include:_spf.test -all"]


async def test_it_follows_a_cname_chain_to_the_addresses():
    async with DnsServer(ZONE) as server:
        result = await ask(server, "www.test", expect=("192.0.2.1",))
    assert result.status is Status.UP, result.reason
    assert result.details["cname_chain"] == ["edge.test", "app.test"]
    assert sorted(result.details["answers"]) == ["192.0.2.1", "192.0.2.2"]


async def test_it_answers_a_cname_query_with_the_cname_itself():
    async with DnsServer(ZONE) as server:
        result = await ask(server, "www.test", "CNAME", expect=("edge.test",))
    assert result.status is Status.UP, result.reason
    assert result.details["answers"] == ["edge.test"]


async def test_it_matches_srv_by_full_text_or_by_the_target_alone():
    async with DnsServer(ZONE) as server:
        full = await ask(server, "_sip._udp.test", "SRV", expect=("0 5 5060 sip.test.",))
        target = await ask(server, "_sip._udp.test", "SRV", expect=("sip.test",))
    assert full.status is Status.UP, full.reason
    assert target.status is Status.UP, target.reason


async def test_it_matches_caa_by_full_text_or_by_the_value_alone():
    async with DnsServer(ZONE) as server:
        full = await ask(server, "app.test", "CAA", expect=('0 issue "letsencrypt.org"',))
        value = await ask(server, "app.test", "CAA", expect=("letsencrypt.org",))
    assert full.status is Status.UP, full.reason
    assert value.status is Status.UP, value.reason


async def test_a_ptr_query_may_be_written_as_the_ip_address():
    async with DnsServer(ZONE) as server:
        result = await ask(server, "192.0.2.1", "PTR", expect=("app.test",))
    assert result.status is Status.UP, result.reason
    assert server.queries == [("udp", "1.2.0.192.in-addr.arpa.", "PTR")]


async def test_protocol_tcp_asks_over_tcp():
    async with DnsServer(ZONE) as server:
        result = await ask(server, "app.test", protocol="tcp", expect=("192.0.2.1",))
    assert result.status is Status.UP, result.reason
    assert result.details["protocol"] == "tcp"
    assert server.queries == [("tcp", "app.test.", "A")]


# --- wrong answers ---------------------------------------------------------------------------

async def test_it_is_down_with_both_values_when_the_answer_differs():
    async with DnsServer(ZONE) as server:
        result = await ask(server, "app.test", expect=("192.0.2.1", "192.0.2.7"))
    assert result.status is Status.DOWN
    assert result.reason == "expected 192.0.2.7 in the A answer, got 192.0.2.1, 192.0.2.2"
    assert result.details["answers"] == ["192.0.2.1", "192.0.2.2"]


async def test_it_is_down_for_nxdomain():
    async with DnsServer(ZONE) as server:
        result = await ask(server, "api.test")
    assert result.status is Status.DOWN
    assert result.reason == "no A record for api.test (NXDOMAIN)"
    assert result.details["rcode"] == "NXDOMAIN"


async def test_it_is_up_for_nxdomain_when_nxdomain_is_expected():
    async with DnsServer(ZONE) as server:
        result = await ask(server, "gone.test", expect_rcode="nxdomain")
    assert result.status is Status.UP, result.reason
    assert result.reason == "NXDOMAIN for gone.test A as expected"


async def test_it_is_down_when_nxdomain_is_expected_but_the_name_exists():
    async with DnsServer(ZONE) as server:
        result = await ask(server, "app.test", expect_rcode="NXDOMAIN")
    assert result.status is Status.DOWN
    assert result.reason == f"NOERROR from {server.hostport} for app.test A (expected NXDOMAIN)"


async def test_it_is_down_for_an_empty_answer():
    async with DnsServer(ZONE) as server:
        result = await ask(server, "mail.test", "A")
    assert result.status is Status.DOWN
    assert result.reason == "no A record for mail.test (empty answer)"


async def test_it_is_down_when_a_cname_leads_out_of_the_answer():
    async with DnsServer(ZONE) as server:
        result = await ask(server, "dangling.test", "A")
    assert result.status is Status.DOWN
    assert result.reason == "no A record for dangling.test (only a CNAME to elsewhere.example in the answer)"


async def test_it_is_down_for_servfail_naming_the_server():
    async with DnsServer(ZONE, mode="servfail") as server:
        result = await ask(server, "app.test")
    assert result.status is Status.DOWN
    assert result.reason == f"SERVFAIL from {server.hostport} for app.test A"


# --- hostile and absent servers --------------------------------------------------------------

async def test_a_silent_server_is_down_within_the_timeout():
    async with DnsServer(ZONE, mode="silent") as server:
        result, elapsed = await run_with_deadline(server, timeout=0.5)
    assert result.status is Status.DOWN
    assert result.reason == f"no answer from {server.hostport} within 500ms"
    assert result.details["server"] == server.hostport
    assert elapsed < 0.5 + 2.0  # given up at its timeout (with room for a busy machine), not hung
    assert server.queries == [("udp", "app.test.", "A")]


async def test_dnspython_giving_up_first_reads_like_the_callers_deadline():
    # Without the caller's asyncio.timeout, dnspython's own Timeout must say the same thing.
    async with DnsServer(ZONE, mode="silent") as server:
        started = time.monotonic()
        result = await ask(server, "app.test", protocol="tcp", timeout=0.5)
    assert result.status is Status.DOWN
    assert result.reason == f"no answer from {server.hostport} within 500ms"
    assert time.monotonic() - started < 0.5 + 2.0  # (room for a busy machine)


async def test_a_garbage_answer_is_down_as_malformed():
    async with DnsServer(ZONE, mode="garbage") as server:
        result = await ask(server, "app.test")
    assert result.status is Status.DOWN
    assert result.reason.startswith(f"malformed DNS answer from {server.hostport} (")


async def test_an_answer_with_a_wrong_id_is_down():
    async with DnsServer(ZONE, mode="wrong_id") as server:
        result = await ask(server, "app.test")
    assert result.status is Status.DOWN
    assert result.reason == f"answer from {server.hostport} does not match the query (wrong id or question)"


async def test_a_truncated_udp_answer_is_asked_again_over_tcp():
    async with DnsServer(ZONE, mode="truncate") as server:
        result = await ask(server, "app.test", expect=("192.0.2.1",))
    assert result.status is Status.UP, result.reason
    assert result.details["truncated"] is True
    assert result.details["answers"] == ["192.0.2.1", "192.0.2.2"]
    assert server.queries == [("udp", "app.test.", "A"), ("tcp", "app.test.", "A")]


async def test_a_truncated_udp_answer_is_down_when_tcp_is_refused():
    async with DnsServer(ZONE, mode="truncate", tcp=False) as server:
        result = await ask(server, "app.test")
    assert result.status is Status.DOWN
    assert result.reason == (f"the UDP answer from {server.hostport} was truncated and the TCP retry failed: "
                             f"connection refused by {server.hostport}")
    assert result.details["truncated"] is True


async def test_a_closed_tcp_port_is_down_as_connection_refused():
    port = closed_port(socket.SOCK_STREAM)
    check = DnsCheck(DnsOptions(query="app.test", server=f"127.0.0.1:{port}", protocol="tcp"))
    result = await check.run(CheckContext(timeout=1.0, progress=Progress()))
    assert result.status is Status.DOWN
    assert result.reason == f"connection refused by 127.0.0.1:{port}"


async def test_a_closed_udp_port_is_down_at_once_as_connection_refused():
    # The ICMP "port unreachable" reaches a connected UDP socket as ECONNREFUSED: the reason says
    # it was refused, not that the timeout ran out, so the check did not wait for it.
    port = closed_port(socket.SOCK_DGRAM)
    check = DnsCheck(DnsOptions(query="app.test", server=f"127.0.0.1:{port}"))
    result = await check.run(CheckContext(timeout=30.0, progress=Progress()))
    assert result.status is Status.DOWN
    assert result.reason == f"connection refused by 127.0.0.1:{port}"


def test_without_a_server_it_asks_the_first_nameserver_of_resolv_conf_on_port_53(system_resolver):
    from tests.peers.system_resolver import ZONE
    result = system_resolver["dns_system"]
    assert (result["status"], result["reason"]) == ("up", "A app.test answered"), result
    assert result["details"]["server"] == "127.0.0.1:53"
    assert result["details"]["answers"] == ZONE[("app.test.", "A")]
    assert ["udp", "app.test.", "A"] in system_resolver["queries"]


def test_it_is_down_when_the_system_has_no_resolver(system_resolver):
    result = system_resolver["dns_no_resolver"]
    assert (result["status"], result["reason"]) == (
        "down", "no system resolver configured (/etc/resolv.conf has no nameserver)")


# --- the operating system's resolver ---------------------------------------------------------

def hosts_has_localhost() -> bool:
    try:
        lines = Path("/etc/hosts").read_text().splitlines()
    except OSError:
        return False
    return any(line.split()[:1] == ["127.0.0.1"] and "localhost" in line.split()[1:] for line in lines)


@pytest.mark.skipif(not hosts_has_localhost(), reason="/etc/hosts has no 127.0.0.1 localhost line")
async def test_protocol_system_resolves_localhost_from_etc_hosts():
    check = DnsCheck(DnsOptions(query="localhost", protocol="system", expect=("127.0.0.1",)))
    result = await check.run(CheckContext(timeout=1.0, progress=Progress()))
    assert result.status is Status.UP, result.reason
    assert result.reason == "A localhost answered"
    assert "127.0.0.1" in result.details["answers"]
    assert result.details["server"] == "system"


@pytest.mark.skipif(not hosts_has_localhost(), reason="/etc/hosts has no 127.0.0.1 localhost line")
async def test_protocol_system_is_down_when_localhost_has_another_address():
    check = DnsCheck(DnsOptions(query="localhost", protocol="system", expect=("192.0.2.9",)))
    result = await check.run(CheckContext(timeout=1.0, progress=Progress()))
    assert result.status is Status.DOWN
    assert result.reason.startswith("expected 192.0.2.9 in the A answer, got 127.0.0.1")


# --- configuration ---------------------------------------------------------------------------

def write_config(tmp_path: Path, monitor: str) -> Path:
    path = tmp_path / "cfg.toml"
    path.write_text('[[monitors]]\nid = "dns"\ntype = "dns"\n' + monitor)
    return path


def test_a_valid_dns_monitor_loads_with_its_options(tmp_path):
    path = write_config(tmp_path, 'query = "app.test"\nrecord_type = "MX"\nserver = "[::1]:5353"\n'
                                  'protocol = "tcp"\nexpect = ["mx1.test"]\n')
    (monitor,) = load_config(path).monitors
    assert monitor.options == DnsOptions(query="app.test", record_type="MX", server="[::1]:5353",
                                         protocol="tcp", expect=("mx1.test",))
    assert probe.checks.dns.split_server("[::1]:5353") == ("::1", 5353)
    assert probe.checks.dns.split_server("ns1.example.com") == ("ns1.example.com", 53)


@pytest.mark.parametrize(("toml", "message"), [
    ('query = "app.test"\nserver = "ns1 example"',
     'server must be "host[:port]", e.g. "192.0.2.53", "ns1.example.com:5353" or "[2001:db8::53]:53" '
     '(got "ns1 example")'),
    ('query = "app.test"\nserver = "127.0.0.1:70000"',
     'server port must be between 1 and 65535 (got "127.0.0.1:70000")'),
    ('query = "app.test"\nserver = "127.0.0.1:0"',
     'server port must be between 1 and 65535 (got "127.0.0.1:0")'),
    ('query = "app.test"\nserver = "::1:53"',
     'server must be "host[:port]", e.g. "192.0.2.53", "ns1.example.com:5353" or "[2001:db8::53]:53" '
     '(write an IPv6 address in brackets, e.g. "[::1]:53") (got "::1:53")'),
    ('query = "app.test"\nexpect_rcode = "NOPE"',
     'expect_rcode must be a DNS rcode such as "NOERROR", "NXDOMAIN" or "SERVFAIL" (got "NOPE")'),
    ('query = "app.test"\nrecord_type = "MX"\nprotocol = "system"',
     'protocol "system" can only look up record_type "A" or "AAAA" (got "MX")'),
    ('query = "app.test"\nprotocol = "system"\nserver = "127.0.0.1"',
     'server cannot be set with protocol = "system" (the operating system picks its resolver)'),
    ('query = "app.test"\nexpect = ["192.0.2.1"]\nexpect_rcode = "NXDOMAIN"',
     'expect needs expect_rcode = "NOERROR" (an answer with rcode NXDOMAIN has no records)'),
    ('query = "app.test"\nprotocol = "system"\nexpect_rcode = "SERVFAIL"',
     'expect_rcode must be "NOERROR" or "NXDOMAIN" with protocol = "system" (the operating system reports '
     'no other rcode; got "SERVFAIL")'),
    ('query = "a..test"',
     'query must be a domain name (A DNS label is empty) (got "a..test")'),
    ('query = ""', 'query must not be empty (got "")'),
])
def test_a_bad_dns_monitor_is_refused_naming_the_key(tmp_path, toml, message):
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, toml + "\n"))
    assert caught.value.problems == [f'cfg.toml: monitors[0] "dns": {message}']
