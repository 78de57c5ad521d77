"""What every channel shares: the message, the error that carries retry intent, the base
classes, and the common [[notifiers]] keys.

A channel is a small class: `type`, an `Options` dataclass (its own keys, always with a
URL so a test can point it at a local receiver), and either `send()` or, for the HTTP
channels, `request()` plus, for robots that answer 200 to a rejection, `accept()`.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal, get_args
from zoneinfo import ZoneInfo

import aiohttp
import yarl

from probe.config.schema import Duration, at_least, positive

Event = Literal["open", "escalate", "update", "resolve", "remind", "maintenance", "cert_expiring",
                "connectivity_lost", "connectivity_restored"]
EVENTS: tuple[str, ...] = get_args(Event)  # what a notifier's `events` may list (default: all)
ANSWER_LIMIT = 64 * 1024  # read at most this much of a channel's answer


@dataclass(frozen=True)
class Message:
    """What happened, in words a channel turns into its own format. Stored as JSON in the
    outbox when it is queued, so a delivery after a restart says what it said then."""

    key: str  # unique per notifier: "event:41", "remind:7:3", "cert:web:1796000000:7", "test:..."; the webhook-id
    event: str  # open | escalate | reopen | update | resolve | remind | maintenance_start | maintenance_end
    #             | cert_expiring | connectivity_lost | connectivity_restored | test
    status: str  # down | degraded | up | maintenance
    title: str  # "Website is down" (or the operator's title)
    monitor_id: str | None
    monitor_name: str
    reason: str
    impact: str  # none | minor | major | critical
    body: str  # the operator's words, or the default text for the incident's status
    incident_id: int | None
    started_ms: int
    at_ms: int
    resolved_ms: int | None = None
    url: str = ""  # the incident on the status page, when [page] url is set
    language: str = "en"
    timezone: str = "UTC"
    cert_expires_ms: int | None = None  # cert_expiring: the certificate's notAfter
    # the other monitors an incident concerns (id -> name): those depending on its monitor that
    # failed with it (engine/dependencies.py)
    affected: dict[str, str] = field(default_factory=dict)
    scheduled_until_ms: int | None = None  # maintenance: when the window is planned to end
    covered: tuple[tuple[str, str], ...] = ()  # maintenance: (id, name) of the monitors it covers

    @property
    def lane(self) -> str:
        """Messages in one lane go out in order, one at a time; a channel sends several lanes at
        once (its `concurrency`). One incident is one lane, so its story arrives in order."""
        if self.incident_id is not None:
            return f"incident:{self.incident_id}"
        if self.key.startswith("maintenance-"):  # maintenance-start:<window>, maintenance-end:<window>
            return "maintenance:" + self.key.partition(":")[2]
        if self.event.startswith("connectivity_"):  # lost, then restored: never the other way round
            return "connectivity"
        return self.key

    @property
    def duration_s(self) -> float | None:
        return None if self.resolved_ms is None else (self.resolved_ms - self.started_ms) / 1000

    @property
    def severity(self) -> str:
        """critical | error | warning | info: the colour and priority of the message."""
        if self.event == "cert_expiring":
            return "warning"  # whatever the monitor's status: there is still time to act
        if self.event in ("resolve", "test") or self.status in ("up", "maintenance"):
            return "info"
        if self.impact == "critical":
            return "critical"
        return "error" if self.status == "down" or self.impact == "major" else "warning"

    def local_time(self, ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, ZoneInfo(self.timezone)).strftime("%Y-%m-%d %H:%M:%S %Z")

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "Message":
        return cls(**json.loads(text))


class NotifyError(Exception):
    """A failed delivery. `permanent`: retrying cannot help (bad token, 4xx), stop at once.
    `retry_after`: the channel said when to come back (429 Retry-After, a robot's throttle)."""

    def __init__(self, message: str, permanent: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message, self.permanent, self.retry_after = message, permanent, retry_after


@dataclass(frozen=True)
class NotifierSettings:
    """The keys every [[notifiers]] entry has, whatever its type."""

    id: str
    type: str
    events: tuple[Event, ...] = EVENTS
    min_impact: Literal["minor", "major"] = "minor"
    language: Literal["en", "zh-CN"] | None = None  # default: [page] language
    remind_every: Duration | None = None  # while an incident stays open; off by default
    timeout: Duration = 10.0  # one attempt
    retry_for: Duration = 86400.0  # transient failures are retried this long, then recorded as failed
    concurrency: int = 4  # messages in flight at once, of different incidents (one incident's go in order)

    def problems(self):
        yield from positive("timeout", self.timeout, duration=True)
        if not 1 <= self.concurrency <= 64:
            yield "concurrency", f"must be between 1 and 64 (got {self.concurrency})"
        yield from at_least("remind_every", self.remind_every, 60, duration=True)
        yield from positive("retry_for", self.retry_for, duration=True)


@dataclass
class Request:
    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    # The URL is already percent-encoded exactly as the channel wants it (a signature in
    # the query): sent byte for byte, not normalised ("%2F" would otherwise become "/").
    encoded: bool = False


class Notifier:
    type: ClassVar[str]
    Options: ClassVar[type]
    # (messages, seconds) the platform allows per target, e.g. DingTalk ((20, 60),)
    limits: ClassVar[tuple[tuple[int, float], ...]] = ()
    # Events the channel can express; a paging service has no use for maintenance notices.
    handles: ClassVar[frozenset[str]] = frozenset(EVENTS)

    def __init__(self, settings: NotifierSettings, options: Any) -> None:
        self.settings, self.options = settings, options

    @property
    def id(self) -> str:
        return self.settings.id

    async def send(self, message: Message, session: aiohttp.ClientSession) -> str:
        """Deliver one message; return what the channel answered. Raises NotifyError."""
        raise NotImplementedError


class HttpNotifier(Notifier):
    """POST a JSON body; 2xx is success unless `accept` says otherwise."""

    def request(self, message: Message) -> Request:
        raise NotImplementedError

    def accept(self, status: int, text: str) -> None:
        """Raise NotifyError when a 2xx answer is still a rejection (the chat robots)."""

    def verdict(self, status: int, text: str, headers) -> None:
        """Raise NotifyError unless the answer means delivered. Channels that say "come back
        later" in the body (Discord, Telegram) override this."""
        check_status(status, text, headers.get("Retry-After"))
        self.accept(status, text)

    async def send(self, message: Message, session: aiohttp.ClientSession) -> str:
        req = self.request(message)
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "probe-notifier"}
        headers.update(req.headers)
        try:
            url = yarl.URL(req.url, encoded=True) if req.encoded else req.url
            async with session.post(url, data=req.body, headers=headers, allow_redirects=False,
                                    timeout=aiohttp.ClientTimeout(total=self.settings.timeout)) as resp:
                text = (await resp.content.read(ANSWER_LIMIT)).decode("utf-8", "replace")
                status, answer_headers = resp.status, resp.headers
        except (TimeoutError, asyncio.TimeoutError):
            raise NotifyError(f"no answer within {self.settings.timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise NotifyError(f"connection failed: {exc.__class__.__name__}: {exc}") from None
        self.verdict(status, text, answer_headers)
        return f"HTTP {status} {text.strip()[:300]}".strip()


def check_status(status: int, text: str, retry_after: str | None = None) -> None:
    """The HTTP verdict every channel shares: 429 and 5xx are worth retrying, other 4xx not."""
    if 200 <= status < 300:
        return
    detail = f"HTTP {status}: {text.strip()[:300]}" if text.strip() else f"HTTP {status}"
    if status == 429:
        raise NotifyError(detail, retry_after=parse_retry_after(retry_after))
    if status >= 500 or status == 408:
        raise NotifyError(detail)
    raise NotifyError(detail, permanent=True)


def parse_retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare from these APIs; the backoff decides instead


def answer_json(text: str) -> dict:
    try:
        doc = json.loads(text)
    except ValueError:
        raise NotifyError(f"answer is not JSON: {text.strip()[:200]}", permanent=True) from None
    if not isinstance(doc, dict):
        raise NotifyError(f"answer is not a JSON object: {text.strip()[:200]}", permanent=True)
    return doc


def robot_verdict(channel: str, code: Any, words: str, throttled: tuple, retry_after: float) -> None:
    """The chat robots answer 200 to everything: code 0 is delivered, a throttling code is
    worth retrying after `retry_after`, any other code is a rejection to fix in the config."""
    if code == 0:
        return
    detail = f"{channel} {code}: {words}"
    if code in throttled:
        raise NotifyError(detail, retry_after=retry_after)
    raise NotifyError(detail, permanent=True)


def as_json(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def cut_bytes(text: str, limit: int, marker: str = "…") -> str:
    """`text` cut to at most `limit` UTF-8 bytes, on a character boundary (a Chinese
    character is three bytes: robots that count bytes hold a third as many)."""
    data = text.encode()
    if len(data) <= limit:
        return text
    room = limit - len(marker.encode())
    return data[:room].decode("utf-8", "ignore") + marker


def cut_chars(text: str, limit: int, marker: str = "…") -> str:
    return text if len(text) <= limit else text[:limit - len(marker)] + marker
