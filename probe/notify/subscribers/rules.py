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
import secrets
import time

from probe.core.addresses import AddressError, normal_address
from probe.core.window import SlidingWindow

SECRET_KEY = "subscribe_secret"
PER_ADDRESS, PER_CLIENT, LIMIT_WINDOW_S = 3, 10, 3600.0  # subscribe requests an hour


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
    """The address's one spelling (probe/core/addresses.py), which also keys the rate limit; None if invalid."""
    try:
        return normal_address(text)
    except AddressError:
        return None
