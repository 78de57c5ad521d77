"""The push routes' URLs, shared by the application (web/push.py) and the front process
(web/front.py), which must tell a ping from other traffic without loading the service."""
from __future__ import annotations

import re

BODY_LIMIT = 10_000  # bytes of a body kept as the message (healthchecks' default)
FROM_THE_FRONT = "/_front/pings"  # the front's batches; answered over the private socket only
# The routes, in this order: "start" and "fail" are not exit statuses. Any text as a token
# (aiohttp's default refuses braces), so that every miss gets push.py's answer.
ROUTES = [("success", re.compile(r"/ping/(?P<token>[^/]+)")),
          ("start", re.compile(r"/ping/(?P<token>[^/]+)/start")),
          ("fail", re.compile(r"/ping/(?P<token>[^/]+)/fail")),
          ("exit_status", re.compile(r"/ping/(?P<token>[^/]+)/(?P<exit_status>[^/]+)")),
          ("kuma", re.compile(r"/api/push/(?P<token>[^/]+)"))]


def route_of(path: str) -> tuple[str, dict[str, str]] | None:
    """The route a (decoded) path takes, as the application's router would pick it."""
    for route, pattern in ROUTES:
        found = pattern.fullmatch(path)
        if found:
            return route, found.groupdict()
    return None


async def first_bytes(content) -> bytes:
    """A ping's body (an aiohttp StreamReader): its first BODY_LIMIT bytes are its message, the
    rest is not read."""
    data = b""
    while len(data) < BODY_LIMIT:
        chunk = await content.read(BODY_LIMIT - len(data))
        if not chunk:
            break
        data += chunk
    return data
