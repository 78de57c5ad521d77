"""What subscribers do (subscribe, confirm, unsubscribe) and what they hear (outbox rows).

The notification dispatcher owns one `Subscriptions`: it asks `targets()` for the workers
to run beside the channels', and `event_deliveries()` / `maintenance_deliveries()` for the
deliveries to queue in the same transaction as the channels'. See probe/subscribers.py for the
rules; probe/subscriber_targets.py sends.
"""
from __future__ import annotations

import dataclasses
import json
import logging

from probe.config.subscribers import SubscribersConfig
from probe.core.models import EventKind, Subscriber
from probe.core.units import now_ms
from probe.notifiers.base import NotifierSettings
from probe.notify.outbox import delivery
from probe.notify.subscribers import rules
from probe.notify.subscribers.senders import (
    Parcel,
    StatuspageWebhook,
    SubscriberMail,
    Target,
)
from probe.storage import NewDelivery
from probe.view.public import incident_is_public, public_ids, public_windows
from probe.view.statuspage import incident_payloads, maintenance_payload

log = logging.getLogger("probe.subscribers")

EMAIL_TARGET = "subscribers:email"  # ":" is not allowed in notifier ids: no clash with [[notifiers]]
WEBHOOK_TARGET = "subscribers:webhook:"
EVENTS = {EventKind.OPENED: "open", EventKind.REOPENED: "open", EventKind.ESCALATED: "escalate",
          EventKind.UPDATED: "update", EventKind.RESOLVED: "resolve"}  # no reminders for the public
SCHEDULED_NOTICE_MS = 86_400_000  # a window is announced a day before it starts
LOOKBACK_MS = 3_600_000  # edges older than this are history, not news (as for the channels)


class SubscribeError(Exception):
    """A refused request; `message` is a key of the page's words (subscribe.error.<key>)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


class Subscriptions:
    def __init__(self, probe, outbox, messages) -> None:
        self.probe = probe
        self.outbox = outbox
        self.messages = messages
        self.secret = ""
        self.per_address = rules.RequestLimiter(rules.PER_ADDRESS)
        self.per_client = rules.RequestLimiter(rules.PER_CLIENT)
        self._built: set[str] = set()  # maintenance edges whose webhook rows are queued

    @property
    def config(self) -> SubscribersConfig:
        return self.probe.config.subscribers

    async def start(self) -> None:
        """The signing secret: made once, kept in `meta` beside the rows it protects."""
        store = self.probe.store
        self.secret = await store.meta_get(rules.SECRET_KEY) or await store.meta_set_default(
            rules.SECRET_KEY, rules.make_secret())

    # ---- what visitors do -------------------------------------------------------------

    def groups(self) -> list[str]:
        """The groups a visitor may choose: those of public monitors, in page order."""
        return list(dict.fromkeys(m.group for m in self.probe.config.monitors if m.public and m.group))

    async def request(self, text: str, groups: list[str], client: str) -> None:
        """A subscribe request: a pending row (or the existing one) and a confirmation mail.
        An address already confirmed gets nothing, and the answer is the same, so the form
        does not tell strangers who subscribes."""
        if not self.config.email:
            raise SubscribeError("disabled", 404)
        address = rules.normal_email(text)
        if address is None:
            raise SubscribeError("invalid_email")
        unknown = [g for g in groups if g not in self.groups()]
        if unknown:
            raise SubscribeError("unknown_group")
        if not self.per_client.allow(client) or not self.per_address.allow(address):
            raise SubscribeError("too_many", 429)
        now = now_ms()
        await self._forget_stale(now)
        found = await self.probe.store.subscriber_by_email(address)
        if found is not None and found.confirmed_ms is not None:
            log.info("subscribe request for a confirmed address ignored subscriber=%d", found.id)
            return
        subscriber = await self.probe.store.subscriber_request(address, tuple(groups), now)
        expires_s = (now + int(self.config.confirm_within * 1000)) // 1000
        parcel = Parcel(f"sub:{subscriber.id}:confirm:{now}", "confirm", subscriber.id, expires_s=expires_s)
        await self.outbox.enqueue([delivery(EMAIL_TARGET, parcel)])
        log.info("confirmation queued subscriber=%d", subscriber.id)

    async def _forget_stale(self, now: int) -> None:
        """Unconfirmed addresses are forgotten once their link has long expired."""
        await self.probe.store.subscribers_forget_unconfirmed(now - 2 * int(self.config.confirm_within * 1000))

    async def check(self, token: str, purpose: str) -> Subscriber:
        """The subscriber a link is for; TokenError if it is forged, expired or outlived."""
        subscriber_id, _, _ = rules.parse_token(token, purpose)
        subscriber = await self.subscriber(subscriber_id)
        rules.verify(self.secret, token, purpose, subscriber.email if subscriber else None)
        return subscriber

    async def confirm(self, token: str) -> Subscriber:
        subscriber = await self.check(token, "c")
        if subscriber.confirmed_ms is None:
            await self.probe.store.subscriber_confirm(subscriber.id, now_ms())
            log.info("subscriber confirmed subscriber=%d", subscriber.id)
        return subscriber

    async def unsubscribe(self, token: str) -> None:
        await self.remove(await self.check(token, "u"))

    async def remove(self, subscriber: Subscriber) -> None:
        """Forget the address, and drop what was queued for it: nothing more is sent."""
        await self.probe.store.subscriber_remove(subscriber.id, EMAIL_TARGET, f"sub:{subscriber.id}:")
        log.info("subscriber left subscriber=%d", subscriber.id)

    def link(self, path: str, token: str) -> str:
        return f"{self.probe.config.page.url.rstrip('/')}{path}?token={token}"

    def token(self, subscriber: Subscriber, purpose: str, expires_s: int = 0) -> str:
        return rules.sign(self.secret, purpose, subscriber.id, subscriber.email, expires_s)

    async def subscriber(self, subscriber_id: int) -> Subscriber | None:
        return await self.probe.store.subscriber(subscriber_id)

    async def everyone(self) -> list[Subscriber]:
        return await self.probe.store.subscribers()

    async def confirmed(self) -> list[Subscriber]:
        return await self.probe.store.subscribers(confirmed_only=True)

    # ---- what subscribers hear --------------------------------------------------------

    def targets(self, config) -> list[Target]:
        """Workers for the dispatcher: one for every email subscriber, one per webhook."""
        out = []
        subs = config.subscribers
        via = next((c for c in config.notifiers if c.id == subs.email_via), None) if subs.email else None
        if via is not None:
            settings = dataclasses.replace(via.settings, id=EMAIL_TARGET, language=None)
            out.append(Target(settings, lambda s=settings, o=via.options: SubscriberMail(s, o, self)))
        for hook in subs.webhooks:
            settings = NotifierSettings(id=WEBHOOK_TARGET + hook.id, type="webhook")
            out.append(Target(settings, lambda s=settings, h=hook: StatuspageWebhook(s, h)))
        return out

    def _public_groups(self, monitor_ids) -> set[str] | None:
        monitors = [self.probe.config.monitor(m) for m in monitor_ids]
        public = [m for m in monitors if m is not None and m.public]
        return {m.group for m in public} if public else None

    async def event_deliveries(self, event) -> list[NewDelivery]:
        """Deliveries for one incident event. A failure here costs the subscribers this event,
        never the operator's channels, whose rows share the intake's transaction."""
        try:
            return await self._event_deliveries(event)
        except Exception:
            log.exception("queueing an event for subscribers failed; they miss it event=%s",
                          getattr(event, "id", None))
            return []

    async def _event_deliveries(self, event) -> list[NewDelivery]:
        """A mail per confirmed subscriber who wants it, a Statuspage payload (and a component
        update) per webhook."""
        if event is None or event.kind not in EVENTS or not (self.config.email or self.config.webhooks):
            return []
        if not incident_is_public(public_ids(self.probe), event.incident):
            return []
        groups = self._public_groups(event.incident.monitor_ids)
        rows = []
        if self.config.email and (via := self._target(EMAIL_TARGET)) is not None:
            message = self._public_message(self.messages.incident(via, event))
            for sub in await self.confirmed():
                if sub.hears(groups):
                    rows.append(delivery(EMAIL_TARGET, Parcel(f"sub:{sub.id}:event:{event.id}", "notice", sub.id,
                                                                message=json.loads(message.to_json()),
                                                                lane=f"sub:{sub.id}:{message.lane}")))
        if self.config.webhooks:
            documents = await incident_payloads(self.probe, event)
            rows += self._webhook_rows(documents, groups, f"incident:{event.incident.id}")
        return rows

    def _public_message(self, message):
        """A check's reason may name a host: it reaches subscribers only with show_target."""
        monitor = self.probe.config.monitor(message.monitor_id) if message.monitor_id else None
        return message if monitor is not None and monitor.show_target else dataclasses.replace(message, reason="")

    def _webhook_rows(self, documents: list[tuple[str, dict]], groups: set[str] | None, lane: str
                      ) -> list[NewDelivery]:
        return [delivery(WEBHOOK_TARGET + hook.id, Parcel(key, "webhook", body=doc, lane=lane))
                for hook in self.config.webhooks if not hook.groups or groups is None or set(hook.groups) & groups
                for key, doc in documents]

    def _target(self, target_id: str) -> Target | None:
        return next((t for t in self.targets(self.probe.config) if t.id == target_id), None)

    async def maintenance_deliveries(self, now: int) -> list[NewDelivery]:
        try:
            return await self._maintenance_deliveries(now)
        except Exception:  # as in event_rows: the channels' notices must not wait on ours
            log.exception("queueing maintenance notices for subscribers failed")
            return []

    async def _maintenance_deliveries(self, now: int) -> list[NewDelivery]:
        """Public maintenance: announced a day ahead, then its start and its end."""
        if not (self.config.email or self.config.webhooks):
            return []
        rows = []
        via = self._target(EMAIL_TARGET) if self.config.email else None
        subscribers = await self.confirmed() if via is not None else []
        for window in public_windows(self.probe, now - LOOKBACK_MS, now + SCHEDULED_NOTICE_MS):
            for edge, at in _edges(window, now):
                groups = self._public_groups(window.monitors)
                if via is not None:
                    message = self.messages.maintenance(via, window, edge, at)
                    rows += [delivery(EMAIL_TARGET, Parcel(f"sub:{s.id}:maintenance-{edge}:{window.id}", "notice",
                                                             s.id, message=json.loads(message.to_json()),
                                                             lane=f"sub:{s.id}:maintenance:{window.id}"))
                             for s in subscribers if s.hears(groups)]
                key = f"maintenance-{edge}:{window.id}"
                if self.config.webhooks and key not in self._built:  # a scan every 30 s: build each once
                    self._built.add(key)
                    rows += self._webhook_rows([(key, await maintenance_payload(self.probe, window, now))], groups,
                                               f"maintenance:{window.id}")
        return rows


def _edges(window, now: int) -> list[tuple[str, int]]:
    edges = []
    if window.start_ms - SCHEDULED_NOTICE_MS <= now < window.start_ms:
        edges.append(("scheduled", now))
    edges += [(edge, at) for edge, at in (("start", window.start_ms), ("end", window.end_ms))
              if now - LOOKBACK_MS <= at <= now]
    return edges
