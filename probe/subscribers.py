"""Subscribers of the status page: visitors by email (double opt-in) and operators' webhooks.

- `[subscribers] email_via` names an `email` [[notifiers]] entry: its SMTP server and From
  address send subscriber mail. Without it nobody can subscribe (the form is not shown).
- A subscribe request stores a pending row and queues a confirmation mail. Nothing else
  is ever sent to that address until the link in that mail is followed (GET shows a
  button, the POST confirms: a mail scanner that prefetches links confirms nothing).
- Links carry signed tokens: HMAC-SHA256 over purpose, subscriber id, expiry and address,
  keyed by a secret generated once and kept in the database (`meta`), so it is in no file
  and never printed. A confirmation link expires after `confirm_within`; an unsubscribe
  link, in every mail, does not (an old mail must still let its reader leave).
- Subscribers are delivery targets of the notifier outbox (probe/notify.py): one outbox row
  per subscriber and event, sent by one worker for all email subscribers and one per
  webhook, with the same retries and "once" guarantee as channels. Only what the public
  page shows reaches them (public monitors' incidents, public maintenance), filtered by the
  groups a subscriber chose.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass

from probe.schema import Duration, load, load_entries, show
from probe.window import SlidingWindow

SECRET_KEY = "subscribe_secret"
EMAIL = re.compile(r"^[^@\s<>,;\"']+@[^@\s<>,;\"']+\.[^@\s<>,;\"']+$")
MAX_EMAIL = 254
PER_ADDRESS, PER_CLIENT, LIMIT_WINDOW_S = 3, 10, 3600.0  # subscribe requests an hour
ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass(frozen=True)
class WebhookSubscriber:
    """One [[subscribers.webhooks]] entry: a URL that receives Statuspage-shaped payloads."""

    id: str
    url: str
    groups: tuple[str, ...] = ()  # only these monitor groups; empty: everything public

    def problems(self):
        if not ID.match(self.id):
            yield "id", f"must match [a-z0-9][a-z0-9_-]* (got {show(self.id)})"
        if not self.url.startswith(("http://", "https://")):
            yield "url", f"must be an http:// or https:// URL (got {show(self.url)})"


@dataclass(frozen=True)
class SubscribersConfig:
    email_via: str = ""  # id of an email [[notifiers]] entry; empty: visitors cannot subscribe
    confirm_within: Duration = 172_800.0  # a confirmation link expires after this (48h)
    webhooks: tuple[WebhookSubscriber, ...] = ()

    @property
    def email(self) -> bool:
        return bool(self.email_via)

    def problems(self):
        if not 300 <= self.confirm_within <= 30 * 86400:
            yield "confirm_within", "must be between 5m and 30d"


def parse_subscribers(table, channels, page, groups: set[str], problems) -> SubscribersConfig:
    """[subscribers] -> config; email_via must name an email notifier, links need [page] url."""
    if not isinstance(table, dict):
        problems.add("", "subscribers", "must be a table ([subscribers])")
        return SubscribersConfig()
    hooks = load_entries(table.get("webhooks", []), "subscribers.webhooks", problems,
                         lambda t, place: _webhook(t, groups, problems, place))
    config = load(SubscribersConfig, {k: v for k, v in table.items() if k != "webhooks"}, problems, "subscribers")
    via_id = table.get("email_via")
    if isinstance(via_id, str) and via_id:
        via = next((c for c in channels if c.id == via_id), None)
        if via is None or via.type != "email":
            problems.add("subscribers", "email_via", f"must name an [[notifiers]] entry of type \"email\" "
                         f"(got {show(via_id)})")
        if not page.url:
            problems.add("subscribers", "email_via", "needs [page] url: the links in subscriber mail point there")
    if config is None:
        return SubscribersConfig()
    return SubscribersConfig(config.email_via, config.confirm_within, hooks)


def _webhook(table: dict, groups: set[str], problems, place: str) -> WebhookSubscriber | None:
    hook = load(WebhookSubscriber, table, problems, place)
    for group in hook.groups if hook else ():
        if group not in groups:
            problems.add(place, "groups", f"names no monitor group (got {show(group)})")
    return hook


# ---- signed tokens ---------------------------------------------------------------------

class TokenError(Exception):
    """A link that cannot be honoured: "invalid" (forged, altered, or its subscription is gone) or "expired"."""


def make_secret() -> str:
    return secrets.token_urlsafe(32)


def sign(secret: str, purpose: str, subscriber_id: int, email: str, expires_s: int) -> str:
    """"c.17.1767225600.<mac>": purpose, subscriber, expiry (0: never) and a MAC that also
    covers the address, so a token dies with its subscription even if the id is reused."""
    body = f"{purpose}.{subscriber_id}.{expires_s}"
    return f"{body}.{_mac(secret, body, email)}"


def _mac(secret: str, body: str, email: str) -> str:
    digest = hmac.new(secret.encode(), f"{body}.{email}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def parse_token(token: str, purpose: str, now_s: float | None = None) -> tuple[int, int, str]:
    """(subscriber id, expiry, mac) of a well-formed, unexpired token; the MAC is checked by `verify`."""
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != purpose or not parts[1].isdigit() or not parts[2].isdigit() \
            or len(parts[1]) > 18 or len(parts[2]) > 12:
        raise TokenError("invalid")
    expires = int(parts[2])
    if expires and expires < (now_s if now_s is not None else time.time()):
        raise TokenError("expired")
    return int(parts[1]), expires, parts[3]


def verify(secret: str, token: str, purpose: str, email: str | None, now_s: float | None = None) -> None:
    """Raise TokenError unless `token` was signed for this purpose and address and is unexpired."""
    subscriber_id, expires, mac = parse_token(token, purpose, now_s)
    expected = _mac(secret, f"{purpose}.{subscriber_id}.{expires}", email or "")
    if email is None or not hmac.compare_digest(mac, expected):
        raise TokenError("invalid")


# ---- rate limit ------------------------------------------------------------------------

class RequestLimiter(SlidingWindow):
    """At most `allowed` subscribe requests an hour per key (an address, a client address).
    In memory: a restart forgives, which is acceptable for a form that only sends one mail."""

    def __init__(self, allowed: int, window_s: float = LIMIT_WINDOW_S, keys: int = 100_000) -> None:
        super().__init__(window_s, keys)
        self.allowed = allowed

    def allow(self, key: str, now: float | None = None) -> bool:
        now = now if now is not None else time.monotonic()
        recent = self.recent(key, now)
        if len(recent) >= self.allowed:
            return False
        recent.append(now)
        return True


def normal_email(text: str) -> str | None:
    address = text.strip().lower()
    return address if len(address) <= MAX_EMAIL and EMAIL.match(address) else None


def groups_json(groups) -> str:
    return json.dumps(sorted(set(groups)), ensure_ascii=False)
