"""Discord webhook: one embed coloured by severity. A 429 says in its body when to retry."""
from __future__ import annotations

import json
from dataclasses import dataclass

from probe.core.units import iso_utc
from probe.notifiers.base import (
    HttpNotifier,
    Message,
    NotifyError,
    Request,
    as_json,
    check_status,
    cut_chars,
)
from probe.notifiers.text import headline, render

COLOURS = {"critical": 0xB00020, "error": 0xD93025, "warning": 0xF29900, "info": 0x1E8E3E}


@dataclass(frozen=True)
class DiscordOptions:
    url: str  # https://discord.com/api/webhooks/<id>/<token>


class Discord(HttpNotifier):
    type = "discord"
    Options = DiscordOptions
    limits = ((5, 2.0), (30, 60.0))

    def request(self, message: Message) -> Request:
        embed = {"title": cut_chars(headline(message), 256),
                 "description": cut_chars(render(message, "markdown").split("\n", 2)[-1].strip(), 4096),
                 "color": COLOURS[message.severity], "timestamp": iso_utc(message.at_ms)}
        if message.url:
            embed["url"] = message.url
        return Request(self.options.url, as_json({"content": cut_chars(headline(message), 2000), "embeds": [embed]}))

    def verdict(self, status: int, text: str, headers) -> None:
        if status == 429:
            try:
                retry_after = float(json.loads(text).get("retry_after"))
            except (ValueError, TypeError, AttributeError):
                retry_after = None
            raise NotifyError(f"HTTP 429: {text.strip()[:200]}", retry_after=retry_after)
        check_status(status, text)
