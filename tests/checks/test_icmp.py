"""ICMP check against loopback, and inside throwaway network namespaces for the failures.

Nothing here sends a packet off the machine: the plain tests ping 127.0.0.1 and ::1;
the failure tests run in a fresh network namespace (`unshare --net`), whose only
interfaces are its own `lo` and a veth pair with both ends inside it.
"""
from __future__ import annotations

import json
import shlex
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from probe.checks.base import CheckContext, Progress
from probe.checks.icmp import IcmpCheck, IcmpOptions, detect_icmp_privilege
from probe.config.loader import ConfigError
from probe.core.models import Status
from probe.engine.runner import CheckRunner

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def privileged() -> bool:
    mode = detect_icmp_privilege()
    if mode is None:
        pytest.skip("no ICMP socket is permitted here (neither ping_group_range nor CAP_NET_RAW)")
    return mode


def ping(host: str, privileged: bool | None, timeout: float = 2.0, **options):
    check = IcmpCheck(IcmpOptions(host=host, **options))
    return check.run(CheckContext(timeout=timeout, progress=Progress(), icmp_privileged=privileged))


def test_it_detects_which_icmp_socket_this_machine_permits():
    mode = detect_icmp_privilege()
    if mode is None:
        pytest.skip("no ICMP socket is permitted here (neither ping_group_range nor CAP_NET_RAW)")
    assert mode in (True, False)
    kind = socket.SOCK_RAW if mode else socket.SOCK_DGRAM
    socket.socket(socket.AF_INET, kind, socket.IPPROTO_ICMP).close()  # the mode it chose really opens


async def test_it_gets_every_reply_from_loopback(privileged):
    result = await ping("127.0.0.1", privileged, count=3)
    assert (result.status, result.reason) == (Status.UP, "3 of 3 replies")
    details = result.details
    assert details["address"] == "127.0.0.1"
    assert (details["packets_sent"], details["packets_received"], details["loss"]) == (3, 3, 0.0)
    assert len(details["rtts_ms"]) == 3
    assert 0 < details["rtt_min_ms"] <= details["rtt_avg_ms"] <= details["rtt_max_ms"] < 100
    assert result.latency_ms == details["rtt_avg_ms"]


async def test_it_pings_ipv6_loopback(privileged):
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe_socket:
            probe_socket.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    result = await ping("::1", privileged, count=2)
    assert (result.status, result.reason, result.details["packets_received"]) == (Status.UP, "2 of 2 replies", 2)


@dataclass
class Monitor:
    id: str = "ping"
    timeout: float = 2.0
    degraded_latency: float | None = None


async def test_the_runner_hands_the_check_the_detected_socket_mode(privileged):
    result = await CheckRunner().run(Monitor(), IcmpCheck(IcmpOptions(host="127.0.0.1", count=2)))
    assert (result.status, result.reason) == (Status.UP, "2 of 2 replies")


async def test_it_says_plainly_when_icmp_is_not_permitted():
    result = await ping("127.0.0.1", privileged=None)
    assert result.status is Status.DOWN
    assert result.reason == ('ICMP not permitted: allow unprivileged ping '
                             '(sysctl net.ipv4.ping_group_range="0 2147483647") or grant CAP_NET_RAW')


# --- configuration ---------------------------------------------------------------------------

def test_it_loads_an_icmp_monitor_with_defaults(load_monitor):
    options = load_monitor("icmp", 'host = "127.0.0.1"\n').monitors[0].options
    assert (options.host, options.count, options.max_loss) == ("127.0.0.1", 3, 0.5)


@pytest.mark.parametrize("body, problem", [
    ('host = "127.0.0.1"\nmax_loss = 1.5\n',
     "max_loss must be a fraction from 0 up to (not including) 1, e.g. 0.5 (got 1.5)"),
    ('host = "127.0.0.1"\nmax_loss = 1\n',
     "max_loss must be a fraction from 0 up to (not including) 1, e.g. 0.5 (got 1)"),
    ('host = "127.0.0.1"\ncount = 0\n', "count must be between 1 and 100 (got 0)"),
    ('host = "127.0.0.1"\ncount = 101\ntimeout = "30s"\n', "count must be between 1 and 100 (got 101)"),
    ('host = ""\n', "host must not be empty"),
    ('host = "127.0.0.1"\ncount = 10\ntimeout = "1s"\n',
     "count must fit in timeout: 10 pings need at least 2s (timeout is 1s)"),
    ('host = "127.0.0.1"\ncount = 3\ntimeout = "500ms"\n',
     "count must fit in timeout: 3 pings need at least 600ms (timeout is 500ms)"),
])
def test_it_rejects_icmp_settings_that_cannot_work(load_monitor, body, problem):
    with pytest.raises(ConfigError) as caught:
        load_monitor("icmp", body)
    assert caught.value.problems == [f'cfg.toml: monitors[0] "m": {problem}']


def test_it_accepts_a_timeout_that_just_fits_the_pings(load_monitor):
    settings = load_monitor("icmp", 'host = "127.0.0.1"\ncount = 3\ntimeout = "600ms"\n').monitors[0].settings
    assert settings.timeout == 0.6


# --- failures, inside a network namespace of our own ---------------------------------------------
#
# One namespace serves every scenario below, run side by side (so that the lot costs one
# interpreter start and one timeout). Its interfaces: `lo`, with TEST-NET-1 (192.0.2.0/24)
# routed to it, and a veth pair with both ends inside. Nothing it sends can reach another host.

NETNS_SETUP = """
ip link set lo up
ip route add 192.0.2.0/24 dev lo
ip link add veth0 type veth peer name veth1
ip addr add 10.9.0.1/24 dev veth0
ip link set veth0 up
ip link set veth1 up
sysctl -q -w net.ipv4.neigh.veth0.retrans_time_ms=50 net.ipv4.neigh.veth0.mcast_solicit=1
sysctl -q -w net.ipv4.ping_group_range="0 0"
"""

SCENARIOS = {
    # no route at all: sendto() fails at once
    "unreachable": {"host": "198.51.100.1"},
    # routed to lo, but no interface has the address: the kernel drops the requests
    "silent": {"host": "192.0.2.1"},
    # 192.0.2.x gets its address once `answer_after` requests were dropped
    "one_lost": {"host": "192.0.2.2", "answer_after": 1},
    "two_lost": {"host": "192.0.2.3", "answer_after": 2},
    "one_lost_none_allowed": {"host": "192.0.2.4", "answer_after": 1, "max_loss": 0.0},
    "half_lost": {"host": "192.0.2.5", "answer_after": 1, "count": 2},
    # on the veth link nobody answers ARP for 10.9.0.2, so the kernel reports "host unreachable"
    "icmp_error": {"host": "10.9.0.2"},
    # ping_group_range "0 0" (only gid 0 exists in the namespace) permits ping sockets
    "unprivileged": {"host": "127.0.0.1", "privileged": False},
    # no DNS server is reachable from the namespace
    "unresolvable": {"host": "no-such-host.invalid"},
}

NETNS_PROGRAM = r"""
import asyncio, json, socket, subprocess, sys
from probe.checks.base import CheckContext, Progress
from probe.checks.icmp import IcmpCheck, IcmpOptions

async def add_address_after(progress, sent, address):
    # Requests sent before the address exists are dropped; later ones are answered.
    while progress.details.get("packets_sent", 0) < sent:
        await asyncio.sleep(0.005)
    subprocess.run(["ip", "addr", "add", address, "dev", "lo"], check=True)

async def scenario(options):
    privileged = options.pop("privileged", True)
    answer_after = options.pop("answer_after", 0)
    ctx = CheckContext(timeout=0.6, progress=Progress(), icmp_privileged=privileged)
    helpers = [add_address_after(ctx.progress, answer_after, options["host"])] if answer_after else []
    result, *_ = await asyncio.gather(IcmpCheck(IcmpOptions(**options)).run(ctx), *helpers)
    return {"status": result.status.label, "reason": result.reason, "details": result.details}

async def main():
    scenarios = json.loads(sys.argv[1])
    outcomes = await asyncio.gather(*(scenario(dict(options)) for options in scenarios.values()))
    print(json.dumps({"interfaces": sorted(name for _, name in socket.if_nameindex()),
                      **dict(zip(scenarios, outcomes))}))

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def netns() -> dict:
    """The outcome of every scenario, run in a fresh network namespace."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare and ip (util-linux, iproute2) to make a private network namespace")
    command = ["unshare", "--net", "--map-root-user", "sh", "-ec"]
    trial = subprocess.run([*command, "ip link add veth0 type veth peer name veth1"], capture_output=True, text=True)
    if trial.returncode:
        pytest.skip(f"cannot create a network namespace with a veth pair here: {trial.stderr.strip()}")
    program = shlex.join([sys.executable, "-c", NETNS_PROGRAM, json.dumps(SCENARIOS)])
    proc = subprocess.run([*command, f"{NETNS_SETUP}\nexec {program}"], capture_output=True, text=True,
                          cwd=ROOT, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_namespace_has_no_way_off_the_machine(netns):
    assert netns["interfaces"] == ["lo", "veth0", "veth1"]


def test_it_is_down_when_the_network_is_unreachable(netns):
    outcome = netns["unreachable"]
    assert (outcome["status"], outcome["reason"]) == ("down", "cannot send to 198.51.100.1: network is unreachable")
    assert (outcome["details"]["packets_sent"], outcome["details"]["packets_received"]) == (0, 0)


def test_it_is_down_when_no_reply_comes(netns):
    outcome = netns["silent"]
    assert (outcome["status"], outcome["reason"]) == ("down", "no reply from 192.0.2.1 (3 of 3 packets lost)")
    details = outcome["details"]
    assert (details["packets_sent"], details["packets_received"], details["loss"]) == (3, 0, 1.0)
    assert details["rtt_avg_ms"] is None and details["rtts_ms"] == []


@pytest.mark.parametrize("scenario, sent, lost, status, reason", [
    ("one_lost", 3, 1, "degraded", "packet loss 33%"),
    ("two_lost", 3, 2, "down", "packet loss 67% (max 50%)"),
    ("half_lost", 2, 1, "degraded", "packet loss 50%"),  # max_loss itself is still tolerated
    ("one_lost_none_allowed", 3, 1, "down", "packet loss 33% (max 0%)"),
])
def test_it_weighs_packet_loss_against_max_loss(netns, scenario, sent, lost, status, reason):
    outcome = netns[scenario]
    assert (outcome["status"], outcome["reason"]) == (status, reason)
    details = outcome["details"]
    assert (details["packets_sent"], details["packets_received"]) == (sent, sent - lost)
    assert details["loss"] == round(lost / sent, 4)
    assert len(details["rtts_ms"]) == sent - lost


def test_it_reports_an_icmp_error_in_words(netns):
    outcome = netns["icmp_error"]
    assert (outcome["status"], outcome["reason"]) == (
        "down", "no reply from 10.9.0.2: destination host unreachable (3 of 3 packets lost)")


def test_it_pings_with_an_unprivileged_socket_where_ping_group_range_allows(netns):
    outcome = netns["unprivileged"]
    assert (outcome["status"], outcome["reason"]) == ("up", "3 of 3 replies")
    assert outcome["details"]["packets_received"] == 3


def test_it_is_down_when_the_name_does_not_resolve(netns):
    outcome = netns["unresolvable"]
    assert (outcome["status"], outcome["reason"]) == ("down", "cannot resolve no-such-host.invalid")
