"""Generic webhook: a documented JSON event, signed per Standard Webhooks when `secret` is set."""
from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass, field

from probe.core.units import iso_utc
from probe.notifiers.base import HttpNotifier, Message, Request, as_json
from probe.notifiers.text import headline


@dataclass(frozen=True)
class WebhookOptions:
    url: str
    secret: str | None = field(default=None, repr=False)  # "whsec_<base64>" or any text
    headers: dict[str, str] = field(default_factory=dict)


def event_document(message: Message) -> dict:
    """The webhook body; its fields are listed in the README ("Webhook events")."""
    return {
        "type": _type(message.event),
        "id": message.key,
        "event": message.event,
        "summary": headline(message),
        "status": message.status,
        "reason": message.reason,
        "body": message.body,
        "monitor": {"id": message.monitor_id, "name": message.monitor_name},
        "affected": [{"id": key, "name": name} for key, name in message.affected.items()],
        "incident": {"id": message.incident_id, "title": message.title, "impact": message.impact,
                     "url": message.url or None},
        "started_at": iso_utc(message.started_ms),
        "resolved_at": iso_utc(message.resolved_ms),
        "duration_s": message.duration_s,
        "at": iso_utc(message.at_ms),
        "cert_expires_at": iso_utc(message.cert_expires_ms),
        "scheduled_until": iso_utc(message.scheduled_until_ms),
        "monitors": [{"id": monitor_id, "name": name} for monitor_id, name in message.covered],
    }


def _type(event: str) -> str:
    if event == "cert_expiring":
        return "certificate.expiring"
    if event.startswith("connectivity_"):
        return f"probe.{event}"  # probe's own network, not an incident
    return f"incident.{event}"


def signature_key(secret: str) -> bytes:
    return base64.b64decode(secret[6:]) if secret.startswith("whsec_") else secret.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(signature_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class Webhook(HttpNotifier):
    type = "webhook"
    Options = WebhookOptions

    def request(self, message: Message) -> Request:
        body = as_json(event_document(message))
        headers = dict(self.options.headers)
        if self.options.secret:
            timestamp = int(time.time())
            headers.update({"webhook-id": message.key, "webhook-timestamp": str(timestamp),
                            "webhook-signature": sign(self.options.secret, message.key, timestamp, body)})
        return Request(self.options.url, body, headers)
