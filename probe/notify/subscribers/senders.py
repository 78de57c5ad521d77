"""The senders of subscriber rows in the outbox: mail to visitors, Statuspage payloads to webhooks.

They plug into the dispatcher's workers like channels do (`make()`, `send()`, `limits`),
plus `decode()`: their rows hold a `Parcel` (who and what), not a channel `Message`.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from probe.core.addresses import AddressError, normal_address
from probe.notifiers.base import (
    HttpNotifier,
    Message,
    NotifierSettings,
    NotifyError,
    Request,
    as_json,
)
from probe.notifiers.email import Email
from probe.notifiers.text import email_html, headline, render


@dataclass(frozen=True)
class Parcel:
    """One subscriber row: `kind` confirm (the opt-in mail), notice (an incident or maintenance
    mail; `message` is the notifier Message as a dict) or webhook (`body`, the document)."""

    key: str
    kind: str
    subscriber: int | None = None
    message: dict | None = None
    body: dict | None = None
    expires_s: int = 0  # when the confirmation link of a confirm parcel expires
    lane: str = ""  # parcels in one lane go out in order (outbox.py); "": a lane of its own

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "Parcel":
        return cls(**json.loads(text))


@dataclass(frozen=True)
class Target:
    """A subscriber delivery target, shaped like a NotifierConfig for the dispatcher."""

    settings: NotifierSettings
    factory: Callable[[], object]

    @property
    def id(self) -> str:
        return self.settings.id

    def make(self):
        return self.factory()


class SubscriberMail(Email):
    """Mail to email subscribers through the server of the `email_via` notifier. The address
    is read when the row is sent, so a subscriber who left in the meantime gets nothing."""

    limits = ((10, 1.0),)  # gentle on the operator's own SMTP server

    def __init__(self, settings: NotifierSettings, options, subscriptions) -> None:
        super().__init__(settings, options)
        self.subscriptions = subscriptions

    @staticmethod
    def decode(payload: str) -> Parcel:
        return Parcel.from_json(payload)

    async def send(self, parcel: Parcel, session=None) -> str:
        subscriber = await self.subscriptions.subscriber(parcel.subscriber)
        if subscriber is None:
            raise NotifyError("no longer subscribed; not sent", permanent=True)
        try:  # a row stored before addresses were validated, or by hand: refuse it here, once
            normal_address(subscriber.email)
        except AddressError as exc:
            raise NotifyError(f"not a valid email address: {exc} Not sent.", permanent=True) from None
        if parcel.kind == "confirm":
            return await self.deliver(self.confirmation(subscriber, parcel))
        if subscriber.confirmed_ms is None:  # cannot happen by construction; never mail the unconfirmed
            raise NotifyError("address not confirmed; not sent", permanent=True)
        return await self.deliver(self.notice(subscriber, Message(**parcel.message), parcel.key))

    def _mail(self, subscriber, subject: str, text: str, html: str, key: str) -> EmailMessage:
        unsubscribe = self.subscriptions.link("/unsubscribe", self.subscriptions.token(subscriber, "u"))
        words = _words(self.subscriptions.probe.config.page.language)
        mail = EmailMessage()
        mail["Subject"] = subject
        mail["From"] = self.options.from_
        mail["To"] = subscriber.email
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = make_msgid("probe." + key.replace(":", "."))
        mail["List-Unsubscribe"] = f"<{unsubscribe}>"
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"  # RFC 8058: the mail client POSTs
        mail["X-Probe-Event"] = key
        footer = words["subscribe.mail_footer"].format(title=self.subscriptions.probe.config.page.title)
        mail.set_content(f"{text}\n\n-- \n{footer}\n{words['subscribe.unsubscribe_link']}: {unsubscribe}\n")
        mail.add_alternative(
            f'<!doctype html><html><body style="font-family:sans-serif">{html}<hr><p>{_escape(footer)}<br>'
            f'<a href="{_escape(unsubscribe)}">{_escape(words["subscribe.unsubscribe_link"])}</a></p>'
            f'</body></html>', subtype="html")
        return mail

    def confirmation(self, subscriber, parcel: Parcel) -> EmailMessage:
        probe = self.subscriptions.probe
        page, words = probe.config.page, _words(probe.config.page.language)
        link = self.subscriptions.link("/subscribe/confirm", self.subscriptions.token(subscriber, "c", parcel.expires_s))
        until = datetime.fromtimestamp(parcel.expires_s, page.tz).strftime("%Y-%m-%d %H:%M %Z")
        text = words["subscribe.confirm_mail"].format(title=page.title, until=until)
        html = f"<p>{_escape(text)}</p><p><a href=\"{_escape(link)}\">{_escape(words['subscribe.confirm_button'])}</a></p>"
        return self._mail(subscriber, words["subscribe.confirm_subject"].format(title=page.title),
                          f"{text}\n\n{link}", html, parcel.key)

    def notice(self, subscriber, message: Message, key: str) -> EmailMessage:
        html = email_html(message)
        return self._mail(subscriber, headline(message), render(message, "text"), html, key)


class StatuspageWebhook(HttpNotifier):
    """POST the Statuspage-shaped document of the row, as Statuspage does to its webhook subscribers."""

    @staticmethod
    def decode(payload: str) -> Parcel:
        return Parcel.from_json(payload)

    def request(self, parcel: Parcel) -> Request:
        return Request(self.options.url, as_json(parcel.body))


def _words(language: str) -> dict[str, str]:
    from probe.view.words import texts
    return texts(language)


def _escape(text: str) -> str:
    from markupsafe import escape
    return str(escape(text))
