"""Gotify: POST {url}/message with the application token, markdown body, priority by severity."""
from __future__ import annotations

from dataclasses import dataclass, field

from probe.notifiers.base import HttpNotifier, Message, Request, as_json
from probe.notifiers.text import headline, render

PRIORITY = {"critical": 10, "error": 8, "warning": 5, "info": 2}


@dataclass(frozen=True)
class GotifyOptions:
    url: str  # the server, e.g. https://gotify.example.com
    token: str = field(repr=False)  # an application token


class Gotify(HttpNotifier):
    type = "gotify"
    Options = GotifyOptions

    def request(self, message: Message) -> Request:
        extras: dict = {"client::display": {"contentType": "text/markdown"}}
        if message.url:
            extras["client::notification"] = {"click": {"url": message.url}}
        doc = {"title": headline(message), "message": render(message, "markdown").split("\n", 2)[-1].strip(),
               "priority": PRIORITY[message.severity], "extras": extras}
        return Request(self.options.url.rstrip("/") + "/message", as_json(doc), {"X-Gotify-Key": self.options.token})
