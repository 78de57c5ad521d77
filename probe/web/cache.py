"""A few seconds of cache for rendered public responses, so a flood costs one render.

Concurrent misses for the same key share one render (no stampede when an outage sends
everyone to the page at once). Responses carry an ETag and answer 304 to a match. Bodies are gzipped once, at render,
and served compressed to every client that accepts it: under a crowd the work per
request is then a dictionary look-up and a small write.
"""
from __future__ import annotations

import asyncio
import gzip
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

TTL_S = 5.0


@dataclass(frozen=True)
class Rendered:
    body: bytes
    content_type: str
    etag: str
    at: float
    status: int = 200
    gzipped: bytes | None = None  # None when compressing would not pay
    generation: object = None  # what the cache's `generation()` said when the render began


MIN_GZIP_BYTES = 1024


def compress(body: bytes) -> bytes | None:
    if len(body) < MIN_GZIP_BYTES:
        return None
    packed = gzip.compress(body, compresslevel=6, mtime=0)
    return packed if len(packed) < len(body) else None


class RenderCache:
    def __init__(self, ttl: float = TTL_S, generation: Callable[[], object] = lambda: None) -> None:
        """`generation`: a value that changes when what the public sees changes by someone's action
        (an operator's incident or maintenance, a reload): an entry of another generation is stale
        at once, so the page never contradicts an incident just opened. Checks' results do not
        change it: they are what the few seconds of cache are for."""
        self.ttl = ttl
        self.generation = generation
        self._entries: dict[str, Rendered] = {}
        self._pending: dict[str, asyncio.Future] = {}
        self.renders = 0

    async def get(self, key: str, render: Callable[[], Awaitable[tuple[bytes, str]]]) -> Rendered:
        generation = self.generation()
        entry = self._entries.get(key)
        if entry is not None and time.monotonic() - entry.at < self.ttl and entry.generation == generation:
            return entry
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            body, content_type = await render()
            self.renders += 1
            entry = Rendered(body, content_type, '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"',
                             time.monotonic(), gzipped=compress(body), generation=generation)
            if len(self._entries) > 1000:  # query strings are visitor-chosen: bound the memory
                self._entries.clear()
            self._entries[key] = entry
            future.set_result(entry)
            return entry
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs it twice
            raise
        finally:
            del self._pending[key]


def accepts_gzip(request: web.Request) -> bool:
    for part in request.headers.get("Accept-Encoding", "").split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def respond(request: web.Request, entry: Rendered, max_age: int = 5) -> web.Response:
    headers = {"ETag": entry.etag, "Cache-Control": f"public, max-age={max_age}"}
    if entry.gzipped is not None:
        headers["Vary"] = "Accept-Encoding"
    if request.headers.get("If-None-Match") == entry.etag:
        return web.Response(status=304, headers=headers)
    body = entry.body
    if entry.gzipped is not None and accepts_gzip(request):
        body = entry.gzipped
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=body, status=entry.status, headers=headers, content_type=entry.content_type,
                        charset="utf-8")
