"""Email through an SMTP server (aiosmtplib): text and HTML parts, subject
"[DOWN] Website — HTTP 503". mode: starttls (587), tls (465, RFC 8314's choice) or plain (25)."""
from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Literal

import aiohttp
import aiosmtplib

from probe.config.schema import show
from probe.core.addresses import AddressError, normal_address
from probe.notifiers.base import Message, Notifier, NotifyError
from probe.notifiers.text import email_html, headline, render

PORTS = {"starttls": 587, "tls": 465, "plain": 25}


@dataclass(frozen=True)
class EmailOptions:
    host: str
    to: tuple[str, ...]
    from_: str  # the TOML key is "from"
    mode: Literal["starttls", "tls", "plain"] = "starttls"
    port: int | None = None  # default: 587, 465 or 25 by mode
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None  # a private CA for the server's certificate
    verify_tls: bool = True

    def problems(self):
        if not self.to:
            yield "to", "needs at least one address"
        for address in self.to:
            yield from _address_problem("to", address)
        yield from _address_problem("from", parseaddr(self.from_)[1] or self.from_)  # "Name <a@b>" is fine
        if self.port is not None and not 1 <= self.port <= 65535:
            yield "port", f"must be between 1 and 65535 (got {self.port})"
        if (self.username is None) != (self.password is None):
            yield "password", "username and password go together"


def _address_problem(key: str, address: str):
    try:
        normal_address(address)
    except AddressError as exc:
        yield key, f"must be an email address: {exc} (got {show(address)})"


def compose(message: Message, options: EmailOptions) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = headline(message)
    mail["From"] = options.from_
    mail["To"] = ", ".join(options.to)
    mail["Date"] = formatdate(message.at_ms / 1000, localtime=False)
    mail["Message-ID"] = make_msgid("probe." + message.key.replace(":", "."))
    mail["X-Probe-Event"] = message.key
    mail.set_content(render(message, "text"))
    html = email_html(message)
    mail.add_alternative(f'<!doctype html><html><body style="font-family:sans-serif">{html}</body></html>',
                         subtype="html")
    return mail


class Email(Notifier):
    type = "email"
    Options = EmailOptions
    options: EmailOptions

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.options.ca_file)
        if not self.options.verify_tls:
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        return context

    async def send(self, message: Message, session: aiohttp.ClientSession | None = None) -> str:
        return await self.deliver(compose(message, self.options))

    async def deliver(self, mail: EmailMessage) -> str:
        """Send one composed mail through the configured server (subscriber mail uses this too)."""
        opts = self.options
        tls = opts.mode != "plain"
        try:
            errors, answer = await aiosmtplib.send(
                mail, hostname=opts.host, port=opts.port or PORTS[opts.mode],
                username=opts.username, password=opts.password, use_tls=opts.mode == "tls",
                start_tls=True if opts.mode == "starttls" else False,
                tls_context=self._tls_context() if tls else None, timeout=self.settings.timeout)
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise NotifyError(f"SMTP login refused: {exc.code} {exc.message}", permanent=True) from None
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise NotifyError(f"SMTP refused every recipient: {exc.recipients}", permanent=True) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise NotifyError(f"SMTP {exc.code} {exc.message}", permanent=500 <= exc.code < 600) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise NotifyError(f"SMTP {exc.__class__.__name__}: {exc}") from None
        refused = f"; refused: {', '.join(errors)}" if errors else ""
        return f"SMTP {answer}{refused}"
