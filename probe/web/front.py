"""The front: the process that takes page traffic, so that it cannot bend what checks measure.

Checks and the web server used to share one event loop: 1,600 requests a second for `/` made
checks start 200 ms late and an unchanged target's latency read 10x higher, so a monitor with
`degraded_latency` near that would turn degraded from page traffic alone. `probe run` now
serves its application on a private Unix socket and starts this process on `[server] listen`:

- Public responses (`Cache-Control: public, max-age=N`, no cookie, no token) are kept for
  their max-age and answered from here (304 when the client's If-None-Match matches), so a
  crowd on the page costs the probe process one render per URL per N seconds (5 s for the
  page), in this process's own interpreter and CPU, not the checks'.
- Everything else (admin API, forms, /healthz, /metrics, a miss) is passed through, at most
  UPSTREAM_AT_ONCE at a time: a flood of uncached URLs queues here instead of in the loop
  that times the checks.
- Pings for push monitors (/ping/..., /api/push/...) are taken here and handed over in
  batches (Pings): whatever arrived while the last batch was on its way goes in one request,
  and each ping gets the answer the application gave it. Cron jobs by the thousand cost the
  checking process one request per batch, not one per ping; their own limit is per token,
  in the application.
- The client's address goes along in X-Forwarded-For (appended, as any proxy does); the probe
  process trusts that header from its socket only (web/clients.py).
- It runs at a lower CPU priority (nice 10) and answers at most REQUESTS_PER_S a second, so
  that when the CPUs are short the checks, not the crowd, get them.
- What it keeps never outlives a change made by hand: a request that may change something
  (anything but GET and HEAD: the admin API, a form) empties the cache once answered, and the
  probe process writes a line to this one's stdin whenever what the public sees changed
  otherwise (an incident opened by the checks, a reload): the page, v1 and v2 never disagree
  for longer than one render.
- It ends when the probe process does (its stdin closes, `kill -9` included).

bench/load.py measures it: 200 monitors every 2 s, `wrk -c64` on `/` for 30 s.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from yarl import URL

from probe.web import refusals
from probe.web.ping_urls import FROM_THE_FRONT, first_bytes, route_of

log = logging.getLogger("probe.front")

UPSTREAM_AT_ONCE = 16
REQUESTS_PER_S = 2000  # the most this process answers (Pace); a bigger crowd wants a CDN in front
PINGS_PER_S = 20000  # pings are paced apart: they are cheap for the checking process once batched
PINGS_AT_ONCE = 1000  # the most in one batch
PING_METHODS = ("GET", "HEAD", "POST")
SECURITY_HEADERS = ("X-Content-Type-Options", "Referrer-Policy", "Content-Security-Policy")
FRONT_NICENESS = 10  # os.nice: the checks come first when the CPUs are short
CACHE_ENTRIES, CACHE_BYTES = 1000, 64 * 2**20
FOLLOW_EVERY_S = 0.2  # how often the probe process looks whether what the public sees changed
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "content-length", "host"}
PRIVATE_REQUEST = ("Authorization", "Cookie", "If-Modified-Since", "Range")
MAX_AGE = re.compile(r"(?:^|,)\s*max-age=(\d+)")


@dataclass
class Kept:
    expires: float  # time.monotonic()
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    etag: str | None


class Front:
    def __init__(self, upstream_socket: str) -> None:
        self.upstream_socket = upstream_socket
        self.cache: OrderedDict[tuple, Kept] = OrderedDict()
        self.cache_bytes = 0
        self.filling: dict[tuple, asyncio.Future] = {}  # one upstream request per missing key
        self.gate = asyncio.Semaphore(UPSTREAM_AT_ONCE)
        self.session: aiohttp.ClientSession | None = None
        self.pace = Pace(REQUESTS_PER_S)
        self.pings = Pings(self)

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.UnixConnector(path=self.upstream_socket, limit=UPSTREAM_AT_ONCE),
            auto_decompress=False,  # bodies pass as they are, Content-Encoding and all
            timeout=aiohttp.ClientTimeout(total=120))

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/_front/"):  # the front's own way in: never from outside
            return web.Response(status=404, text="not found")
        if request.method in PING_METHODS and route_of(request.path) is not None:
            return self._answer(request, await self.pings.report(request))
        await self.pace.take()
        key = self._key(request)
        if key is None:
            answer = await self._forward(request)
            if request.method not in ("GET", "HEAD"):
                self.forget()  # an operator's change: what was kept may be untrue now
            return self._answer(request, answer)
        kept = self._fresh(key)
        if kept is None:
            kept = await self._fill(key, request)
        return self._answer(request, kept)

    def forget(self) -> None:
        """Drop everything kept (requests already on their way upstream still answer their crowd)."""
        self.cache.clear()
        self.cache_bytes = 0

    def _key(self, request: web.Request) -> tuple | None:
        """Only a plain GET may be answered from the cache; the key carries what responses vary on."""
        if request.method != "GET" or any(h in request.headers for h in PRIVATE_REQUEST):
            return None
        return (request.path_qs, request.headers.get("Accept-Encoding", ""), request.headers.get("Accept", ""),
                request.headers.get("Accept-Language", ""))

    def _fresh(self, key: tuple) -> Kept | None:
        kept = self.cache.get(key)
        if kept is None or kept.expires <= time.monotonic():
            return None
        self.cache.move_to_end(key)
        return kept

    async def _fill(self, key: tuple, request: web.Request) -> Kept:
        waiting = self.filling.get(key)
        if waiting is not None:  # the crowd waits for the one request already on its way
            return await asyncio.shield(waiting)
        future = asyncio.get_running_loop().create_future()
        self.filling[key] = future
        try:
            kept = await self._forward(request, conditional=False)  # for everyone waiting: the whole answer
            self._keep(key, kept)
            future.set_result(kept)
            return kept
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody may be waiting
            raise
        finally:
            del self.filling[key]

    def _keep(self, key: tuple, kept: Kept) -> None:
        if kept.expires <= time.monotonic() or len(kept.body) > CACHE_BYTES // 16:
            return
        old = self.cache.pop(key, None)
        self.cache_bytes -= len(old.body) if old else 0
        self.cache[key] = kept
        self.cache_bytes += len(kept.body)
        while len(self.cache) > CACHE_ENTRIES or self.cache_bytes > CACHE_BYTES:
            _, dropped = self.cache.popitem(last=False)
            self.cache_bytes -= len(dropped.body)

    async def _forward(self, request: web.Request, conditional: bool = True) -> Kept:
        skip = HOP_BY_HOP | {"x-forwarded-for"} | (set() if conditional else {"if-none-match"})
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in skip]
        forwarded = ", ".join([*request.headers.getall("X-Forwarded-For", []), request.remote or "unknown"])
        headers += [("X-Forwarded-For", forwarded), ("Host", request.host)]
        body = await request.read()
        async with self.gate:
            try:
                url = URL("http://probe" + request.raw_path, encoded=True)  # the path as the client sent it
                async with self.session.request(request.method, url, headers=headers, data=body or None,
                                                allow_redirects=False) as upstream:
                    data = await upstream.read()
                    kept_headers = [(k, v) for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP]
                    status, cache_control = upstream.status, upstream.headers.get("Cache-Control", "")
                    etag, cookie = upstream.headers.get("ETag"), "Set-Cookie" in upstream.headers
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                log.error("the probe process did not answer path=%s error=%s", request.path, exc)
                return Kept(0.0, 502, [("Content-Type", "text/plain")], b"502 the probe process did not answer\n",
                            None)
        return Kept(time.monotonic() + _max_age(status, cache_control, cookie), status, kept_headers, data, etag)

    @staticmethod
    def _answer(request: web.Request, kept: Kept) -> web.Response:
        etags = request.headers.get("If-None-Match")
        if kept.etag and etags and kept.status == 200 and (etags.strip() == "*" or kept.etag in etags):
            headers = [(k, v) for k, v in kept.headers if k.lower() not in ("content-type", "content-encoding")]
            return web.Response(status=304, headers=headers)
        # aiohttp sends no body to a HEAD but keeps its length; a HEAD passed through came back empty
        response = web.Response(status=kept.status, body=kept.body if request.method != "HEAD" or kept.body else None)
        response.headers.extend(kept.headers)
        return response


class Pings:
    """Pings handed to the application in batches, one batch on its way at a time, so that a
    job's /start and its success arrive in the order it sent them."""

    def __init__(self, front: Front) -> None:
        self.front = front
        self.pace = Pace(PINGS_PER_S)
        self.waiting: list[tuple[list, asyncio.Future]] = []
        self.sender: asyncio.Task | None = None

    async def report(self, request: web.Request) -> Kept:
        await self.pace.take()
        at_ms = time.time_ns() // 1_000_000  # when it arrived, not when its batch is handed over
        body = await first_bytes(request.content) if request.method == "POST" else b""
        future = asyncio.get_running_loop().create_future()
        self.waiting.append(([request.method, request.raw_path, body.decode("latin-1"), at_ms], future))
        if self.sender is None or self.sender.done():
            self.sender = asyncio.create_task(self._send_all(), name="front-pings")
        return await asyncio.shield(future)

    async def _send_all(self) -> None:
        await asyncio.sleep(0)  # the pings that arrive in this turn of the loop go together
        while self.waiting:
            batch, self.waiting = self.waiting[:PINGS_AT_ONCE], self.waiting[PINGS_AT_ONCE:]
            answers = await self._send([item for item, _ in batch])
            for (_, future), kept in zip(batch, answers):
                if not future.done():
                    future.set_result(kept)

    async def _send(self, items: list[list]) -> list[Kept]:
        try:
            async with self.front.gate:
                async with self.front.session.post("http://probe" + FROM_THE_FRONT, json=items) as upstream:
                    upstream.raise_for_status()
                    answers = await upstream.json()
                    secure = [(k, upstream.headers[k]) for k in SECURITY_HEADERS if k in upstream.headers]
            if len(answers) != len(items):
                raise ValueError(f"{len(answers)} answers to {len(items)} pings")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.error("the probe process did not take %d pings error=%s", len(items), exc)
            return [Kept(0.0, 502, [("Content-Type", "text/plain")], b"502 the probe process did not answer\n", None)
                    ] * len(items)
        return [Kept(0.0, status, [*((k, v) for k, v in headers if k.lower() not in HOP_BY_HOP), *secure],
                     body.encode("latin-1"), None) for status, headers, body in answers]


class Pace:
    """At most `rate` requests a second are answered; the others wait their turn. Answering from
    memory is cheap but not free: unpaced, a crowd on loopback drove this process to 15,000
    requests a second and took the CPUs the checks (and their targets) need."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.next = 0.0

    async def take(self) -> None:
        now = time.monotonic()
        slot = max(now, self.next)
        self.next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


def _max_age(status: int, cache_control: str, cookie: bool) -> float:
    """How long a response may be answered from here: a public 200 for its max-age."""
    if status != 200 or cookie or "public" not in cache_control or "no-store" in cache_control:
        return 0.0
    found = MAX_AGE.search(cache_control)
    return float(found.group(1)) if found else 0.0


# ---- the process ----------------------------------------------------------------------------

async def serve(host: str, port: int, upstream_socket: str) -> int:
    front = Front(upstream_socket)
    await front.start()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", front.handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=3.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, backlog=1024).start()
    except OSError as exc:
        print(f"error: {exc.strerror or exc}", flush=True)
        await runner.cleanup()
        await front.close()
        return 1
    print("ready", flush=True)
    await _until_the_probe_process_ends(front)
    await runner.cleanup()
    await front.close()
    return 0


async def _until_the_probe_process_ends(front: Front) -> None:
    """stdin is a pipe from the probe process: each line it writes says that what the public sees
    changed (FrontProcess.changed); it closes when that process ends, however it ends (the probe
    process closes it to stop this one)."""
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        front.forget()


def main() -> None:
    parser = argparse.ArgumentParser(prog="probe-front")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="the probe process's Unix socket")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    logging.Formatter.converter = time.gmtime
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)sZ %(levelname)s %(name)s: %(message)s", datefmt="%Y-%m-%dT%H:%M:%S")
    refusals.install()
    # Below the checking process in the kernel's eyes: when a crowd keeps this one busy and the
    # CPUs are short, the checks still run (and time their targets) when they are due.
    os.nice(FRONT_NICENESS)
    sys.exit(asyncio.run(serve(args.host, args.port, args.upstream)))


if __name__ == "__main__":
    main()


# ---- the probe process's side -----------------------------------------------------------------

class FrontProcess:
    """Starts the front on [server] listen in front of the application's Unix socket, starts it
    again if it dies, and stops it (first: no new requests) when the probe stops."""

    def __init__(self, host: str, port: int, upstream_socket: str) -> None:
        self.argv = [sys.executable, "-m", "probe.web.front", "--host", host, "--port", str(port),
                     "--upstream", upstream_socket,
                     "--log-level", logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()]
        self.proc: asyncio.subprocess.Process | None = None
        self._keeper: asyncio.Task | None = None
        self._stopping = False

    async def start(self) -> str | None:
        """None once it listens, or why it cannot (the port is taken...)."""
        self.proc = await asyncio.create_subprocess_exec(*self.argv, stdin=asyncio.subprocess.PIPE,
                                                         stdout=asyncio.subprocess.PIPE)
        try:
            async with asyncio.timeout(30):
                line = (await self.proc.stdout.readline()).decode().strip()
        except TimeoutError:
            line = "error: the front process did not start within 30 s"
        if line != "ready":
            await self._end()
            return line.removeprefix("error: ") or f"the front process ended (code {self.proc.returncode})"
        self._keeper = asyncio.create_task(self._keep(), name="web-front")
        return None

    async def _keep(self) -> None:
        while not self._stopping:
            code = await self.proc.wait()
            if self._stopping:
                return
            log.error("the web front process ended code=%s; starting it again", code)
            await asyncio.sleep(1.0)
            problem = await self.start()
            if problem is None:
                return  # the new start keeps it from here
            log.error("cannot start the web front process again: %s", problem)

    def changed(self) -> None:
        """What the public sees changed: the front drops what it keeps."""
        if self.proc is not None and self.proc.returncode is None and not self.proc.stdin.is_closing():
            self.proc.stdin.write(b"changed\n")

    async def follow(self, generation) -> None:
        """Tell the front whenever `generation()` (Probe.public_generation) moves; polled, since an
        incident the checks open is committed by the writer, far from any request."""
        seen = generation()
        while not self._stopping:
            await asyncio.sleep(FOLLOW_EVERY_S)
            now = generation()
            if now != seen:
                seen = now
                self.changed()

    async def stop(self) -> None:
        self._stopping = True
        if self._keeper is not None:
            self._keeper.cancel()
        await self._end()

    async def _end(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.stdin.close()  # the front's cue: finish the requests in flight and exit
        try:
            async with asyncio.timeout(5):
                await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
