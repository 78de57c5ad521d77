"""HTTP(S) check: one request, status/body/JSON expectations, timing phases, certificate expiry."""
from __future__ import annotations

import errno
import json
import re
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from probe.checks.base import Check, CheckContext, host_problem
from probe.checks.httpsession import (
    CONNECTING,
    Timing,
    display,
    host_port,
    make_session,
)
from probe.checks.tls import (
    NOTIFY_DAYS,
    client_context,
    describe_ssl_error,
    expiry_verdict,
    notify_days_problems,
)
from probe.config.schema import at_least, positive, show
from probe.core.models import CheckResult

_STATUS_RANGE = re.compile(r"^([1-5])xx$|^(\d{3})-(\d{3})$|^(\d{3})$")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 token: methods, header names
_JSON_SEGMENT = re.compile(r"(?:^|\.)([^.\[\]]+)|\[(\d+)\]")
_MISSING = object()


@dataclass(frozen=True)
class HttpOptions:
    url: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    expect_status: tuple[int | str, ...] = ("2xx",)
    expect_text: str | None = None
    expect_regex: str | None = None
    expect_json: dict[str, Any] = field(default_factory=dict)
    follow_redirects: bool = True
    max_redirects: int = 10
    verify_tls: bool = True
    cert_expiry_days: int | None = 14
    cert_expiry_notify: tuple[int, ...] = NOTIFY_DAYS  # days left at which notifiers hear of it
    max_body_bytes: int = 1024 * 1024

    def problems(self):
        yield from _url_problems(self.url)
        if not _TOKEN.match(self.method):
            yield "method", f'must be an HTTP method such as "GET" or "POST" (got {show(self.method)})'
        for name, value in self.headers.items():
            if not _TOKEN.match(name):
                yield f'headers."{name}"', "is not a valid header name"
            elif "\r" in value or "\n" in value:
                yield f'headers."{name}"', "must not contain line breaks"
        yield from _status_problems(self.expect_status)
        if self.expect_text == "":
            yield "expect_text", "must not be empty"
        if self.expect_regex is not None:
            try:
                re.compile(self.expect_regex)
            except re.error as exc:
                yield "expect_regex", f"is not a valid regular expression: {exc} (got {show(self.expect_regex)})"
        for path in self.expect_json:
            if parse_json_path(path) is None:
                yield f'expect_json."{path}"', 'is not a JSON path (use names, dots and [n], e.g. "data.items[0].state")'
        yield from at_least("max_redirects", self.max_redirects, 0)
        yield from positive("max_body_bytes", self.max_body_bytes)
        yield from at_least("cert_expiry_days", self.cert_expiry_days, 0)
        yield from notify_days_problems(self.cert_expiry_notify)


class HttpCheck(Check):
    type = "http"
    # one session, one connection pool, for every HTTP monitor (one per source address)
    needs = {"http": lambda source_address="": make_session(source_address=source_address)}
    Options = HttpOptions
    options: HttpOptions

    def __init__(self, options: HttpOptions) -> None:
        super().__init__(options)
        self._statuses = [r for r in map(status_range, options.expect_status) if r]
        self._regex = re.compile(options.expect_regex) if options.expect_regex is not None else None
        self._json = [(path, parse_json_path(path) or (), value) for path, value in options.expect_json.items()]

    def target(self) -> str:
        return display(URL(self.options.url))

    async def run(self, ctx: CheckContext) -> CheckResult:
        if ctx.http is None:  # run outside the runner (a one-off check): a session of its own
            async with make_session() as session:
                return await self._request(ctx, session)
        return await self._request(ctx, ctx.http)

    async def _request(self, ctx: CheckContext, session: aiohttp.ClientSession) -> CheckResult:
        opts = self.options
        timing = Timing(ctx.progress, URL(opts.url))
        connecting = CONNECTING.set(timing)  # the sockets aiohttp makes for this request are the check's
        try:
            async with session.request(
                opts.method, opts.url, headers=opts.headers or None,
                data=opts.body.encode() if opts.body is not None else None,
                allow_redirects=opts.follow_redirects,
                # aiohttp gives up when it reaches its limit; ours is how many may be followed
                max_redirects=opts.max_redirects + 1,
                # Always passed (not only for https://): a redirect may lead to https.
                ssl=client_context(opts.verify_tls),
                trace_request_ctx=timing,
            ) as resp:
                return await self._judge(resp, timing)
        except TimeoutError:
            raise  # the caller's deadline: it words the result, with the phase we reached
        except (aiohttp.ClientError, OSError) as exc:
            return CheckResult.down(self._error_reason(exc, timing), **timing.details)
        finally:
            CONNECTING.reset(connecting)

    async def _judge(self, resp: aiohttp.ClientResponse, timing: Timing) -> CheckResult:
        details = timing.headers_received(resp)
        if not self._status_ok(resp.status):
            # The body of an error page proves nothing more; do not wait for it.
            return CheckResult.down(f"HTTP {resp.status} (expected {self._expected_status()})",
                                    timing.finished(), **details)
        timing.progress.phase = f"reading the body of {display(resp.url)}"
        body, cut = await self._read_body(resp)
        timing.body_read(len(body), cut)
        latency = timing.finished()
        problem = self._content_problem(body, cut, resp.charset)
        if problem:
            return CheckResult.down(problem, latency, **details)
        expiry = expiry_verdict(details, self.options.cert_expiry_days, latency)
        if expiry:
            return expiry
        # No numbers beyond the status in an "up" reason: the store keeps each distinct reason once.
        return CheckResult.up(f"HTTP {resp.status}", latency, **details)

    async def _read_body(self, resp: aiohttp.ClientResponse) -> tuple[bytes, bool]:
        """At most max_body_bytes of the body, and whether there was more.

        One byte past the limit is read to tell "exactly the limit" from "cut"; an
        endless or huge body is never buffered beyond that.
        """
        limit = self.options.max_body_bytes
        chunks, size = [], 0
        while size <= limit:
            chunk = await resp.content.read(limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        body = b"".join(chunks)
        if size > limit:
            resp.close()  # drop the connection rather than drain the rest
        return body[:limit], size > limit

    def _status_ok(self, status: int) -> bool:
        return any(low <= status <= high for low, high in self._statuses)

    def _expected_status(self) -> str:
        return _or_list([str(entry) for entry in self.options.expect_status])

    def _content_problem(self, body: bytes, cut: bool, charset: str | None) -> str | None:
        opts = self.options
        scope = f"the first {opts.max_body_bytes} bytes" if cut else "the response"
        if opts.expect_text is not None or self._regex is not None:
            text = _decode(body, charset)
            if opts.expect_text is not None and opts.expect_text not in text:
                return f"expected text {opts.expect_text!r} not found in {scope}"
            if self._regex is not None and not self._regex.search(text):
                return f"response does not match /{opts.expect_regex}/" + (f" in {scope}" if cut else "")
        if self._json:
            return self._json_problem(body, cut)
        return None

    def _json_problem(self, body: bytes, cut: bool) -> str | None:
        if cut:
            return (f"response body exceeds max_body_bytes ({self.options.max_body_bytes} bytes); "
                    "cannot check JSON")
        try:
            document = json.loads(body)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return f"response is not JSON ({_json_error(body, exc)})"
        for text, path, expected in self._json:
            actual = _lookup(document, path)
            if actual is _MISSING:
                return f"JSON path {text} missing"
            if not _same(expected, actual):
                return f"JSON {text} is {_show_json(actual)}, expected {_show_json(expected)}"
        return None

    def _error_reason(self, exc: BaseException, timing: Timing) -> str:
        url = display(timing.url)
        if isinstance(exc, aiohttp.TooManyRedirects):
            return f"too many redirects (more than {self.options.max_redirects})"
        if isinstance(exc, aiohttp.ClientConnectorError):
            return _connect_error(exc)
        if isinstance(exc, (aiohttp.ClientResponseError, aiohttp.ServerDisconnectedError,
                            aiohttp.ClientPayloadError)):
            return f"invalid HTTP response from {url}: {_client_error_text(exc)}"
        if isinstance(exc, aiohttp.RedirectClientError):
            return f"invalid redirect from {url}: {exc}"
        if isinstance(exc, ConnectionResetError) or getattr(exc, "errno", None) == errno.ECONNRESET:
            return f"connection to {host_port(timing.url)} reset"
        return f"request to {url} failed: {_client_error_text(exc)}"


def status_range(entry: int | str) -> tuple[int, int] | None:
    """(low, high) for 200, "200", "2xx" or "200-299"; None if the entry is not valid."""
    if isinstance(entry, int):
        return (entry, entry) if 100 <= entry <= 599 else None
    match = _STATUS_RANGE.match(entry.strip().lower())
    if not match:
        return None
    klass, low, high, single = match.groups()
    if klass:
        return int(klass) * 100, int(klass) * 100 + 99
    low, high = (int(single), int(single)) if single else (int(low), int(high))
    return (low, high) if 100 <= low <= high <= 599 else None


def parse_json_path(path: str) -> tuple[str | int, ...] | None:
    """`status`, `$.data.version`, `items[0].state` -> keys and indexes; None if malformed."""
    if path == "$":
        return ()  # the whole document
    text = path[2:] if path.startswith("$.") else path[1:] if path.startswith("$[") else path
    if text.startswith("."):
        return None
    keys: list[str | int] = []
    pos = 0
    while pos < len(text):
        match = _JSON_SEGMENT.match(text, pos)
        if not match:
            return None
        name, index = match.groups()
        keys.append(name if name is not None else int(index))
        pos = match.end()
    return tuple(keys) or None


def _lookup(document: Any, path: tuple[str | int, ...]) -> Any:
    for key in path:
        if isinstance(key, int):
            if not isinstance(document, list) or key >= len(document):
                return _MISSING
        elif not isinstance(document, dict) or key not in document:
            return _MISSING
        document = document[key]
    return document


def _same(expected: Any, actual: Any) -> bool:
    """TOML value == JSON value, where 1 == 1.0 but true is not 1."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, list):
        return (isinstance(actual, list) and len(expected) == len(actual)
                and all(map(_same, expected, actual)))
    if isinstance(expected, dict):
        return (isinstance(actual, dict) and expected.keys() == actual.keys()
                and all(_same(value, actual[key]) for key, value in expected.items()))
    return expected == actual


def _show_json(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _json_error(body: bytes, exc: BaseException) -> str:
    if not body.strip():
        return "empty body"
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, UnicodeDecodeError):
        return "not valid UTF-8"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)


def _decode(body: bytes, charset: str | None) -> str:
    try:
        return body.decode(charset or "utf-8", "replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", "replace")


def _or_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _connect_error(exc: aiohttp.ClientConnectorError) -> str:
    where = f"[{exc.host}]:{exc.port}" if ":" in exc.host else f"{exc.host}:{exc.port}"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"TLS handshake with {where} failed: {describe_ssl_error(exc.certificate_error)}"
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"TLS handshake with {where} failed: {describe_ssl_error(exc.os_error)}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve {exc.host}: {exc.os_error.strerror or exc.os_error}"
    if isinstance(exc.os_error, ConnectionRefusedError):
        return f"connection refused by {where}"
    if isinstance(exc.os_error, ConnectionResetError):
        # Only TLS has a conversation before the connection counts as made; asyncio
        # reports a server that hangs up during the handshake as a reset without errno.
        if exc.os_error.errno is None:
            return f"TLS handshake with {where} failed: the server closed the connection"
        return f"connection to {where} reset"
    return f"cannot connect to {where}: {exc.os_error.strerror or exc.os_error or exc.os_error.__class__.__name__}"


def _client_error_text(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(exc, aiohttp.ClientResponseError):
        return _one_line(exc.message or f"HTTP {exc.status}")
    # ClientPayloadError wraps the parser's error, whose message is the readable part
    return _one_line(getattr(exc.__cause__, "message", None) or str(exc) or exc.__class__.__name__)


def _one_line(text: str, limit: int = 200) -> str:
    """aiohttp's parser errors span lines and point at the spot with a caret; a reason is one line."""
    text = " ".join(line.strip() for line in text.splitlines() if line.strip().strip("^"))
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _url_problems(url: str):
    if not url.lower().startswith(("http://", "https://")):
        yield "url", f"must start with http:// or https:// (got {show(url)})"
        return
    try:
        host = URL(url).raw_host  # IDN names in their ASCII form
    except ValueError as exc:
        yield "url", f"is not a valid URL: {exc} (got {show(url)})"
        return
    if not host:
        yield "url", f"has no host name (got {show(url)})"
    elif host_problem(host):
        yield "url", f"has a host that is neither a host name nor an IP address (got {show(url)})"


def _status_problems(entries: tuple[int | str, ...]):
    if not entries:
        yield "expect_status", "must not be empty"
    for entry in entries:
        if status_range(entry) is None:
            yield "expect_status", ('entries must be a status code (200), a class ("2xx") or a range '
                                    f'("200-299") between 100 and 599 (got {show(entry)})')
