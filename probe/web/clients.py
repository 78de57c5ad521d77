"""Who is asking: the client's address, for the per-address limits (admin tokens, subscribe).

Behind a reverse proxy every request comes from the proxy. `[server] trusted_proxies` names
the proxies: when the peer is one of them, the client is the right-most address of
X-Forwarded-For that is not a trusted proxy (each proxy appends the address it saw, so the
entries left of the last untrusted one are whatever the client chose to send). From any
other peer the header is ignored: anyone can send it. `probe run`'s own front process
(web/front.py) always appends the address it saw, and is trusted: it is the only peer of the
private Unix socket.
"""
from __future__ import annotations

import ipaddress

from aiohttp import web

from probe.web.keys import PROBE


def client_address(request: web.Request) -> str:
    peer = request.remote or "?"
    proxies = request.app[PROBE].config.server.proxies
    if from_the_front(request):  # probe run's own front process (web/front.py): it names the client
        peer = "?"
    elif not proxies or not _listed(peer, proxies):
        return peer
    forwarded = [part.strip() for part in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")]
    for address in reversed([a for a in forwarded if a]):
        if not _listed(address, proxies):
            return address if _is_ip(address) else peer  # garbage in the header: count it on the proxy
    return peer


def from_the_front(request: web.Request) -> bool:
    """A request over the private Unix socket: only the front process can connect there."""
    transport = request.transport
    return transport is not None and isinstance(transport.get_extra_info("sockname"), str)


def _listed(address: str, proxies) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
